"""`tresen doctor`: check one install's settings, database, Redis, files, keys and processes."""

from __future__ import annotations

import asyncio
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import redis.asyncio as redis
from sqlalchemy import make_url, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from tresen.db.engine import make_engine, make_sessionmaker
from tresen.db.migrate import code_head, current_revision
from tresen.db.outbox import consumer_trouble
from tresen.db.tables import InstallKey, ProcessBeat
from tresen.ops.keys import (
    ENCRYPTION,
    SECRET,
    encryption_fingerprints,
    encryption_summary,
    secret_fingerprint,
)
from tresen.ops.processes import RUNS_JOBS, alive
from tresen.ops.startup import describe_database_error
from tresen.settings import Settings
from tresen.storage import open_store

OK, WARN, ERROR = "ok", "warn", "error"
MAX_LISTED = 20
"""Files named one by one before the doctor only counts them."""


@dataclass(frozen=True)
class Finding:
    """One line of the doctor's report."""

    level: str
    topic: str
    text: str

    def line(self) -> str:
        """`error  database: ...`."""
        return f"{self.level:<6} {self.topic}: {self.text}"


def check_settings(settings: Settings) -> list[Finding]:
    """Keys and paths the settings name, before anything is opened."""
    found: list[Finding] = []
    if settings.secret_key:
        found.append(Finding(OK, "secret key", f"set (fingerprint {secret_fingerprint(settings)})"))
    else:
        found.append(
            Finding(
                ERROR if settings.uses_postgres else WARN,
                "secret key",
                "TRESEN_SECRET_KEY is not set"
                + (
                    "; every process of a PostgreSQL install needs the same one"
                    if settings.uses_postgres
                    else f"; using the file {settings.data_dir.resolve() / 'secret_key'}"
                ),
            )
        )
    summary = encryption_summary(settings)
    found.append(
        Finding(OK, "encryption", f"keys {summary}" if summary else "off (TRESEN_ENCRYPTION_KEYS)")
    )
    if settings.uses_postgres and not settings.data_dir.is_absolute():
        found.append(
            Finding(
                WARN,
                "data dir",
                f"TRESEN_DATA_DIR is relative ({settings.data_dir} = {settings.data_dir.resolve()}); "
                "give every process the same absolute path on shared storage",
            )
        )
    found.extend(check_base_url(settings))
    return found


def check_base_url(settings: Settings) -> list[Finding]:
    """The public address links, webhooks and widgets are built from."""
    parts = urlsplit(settings.base_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return [Finding(ERROR, "base URL", f"{settings.base_url!r} is not an http(s) URL")]
    if parts.path not in ("", "/") or parts.query:
        return [Finding(ERROR, "base URL", f"{settings.base_url!r} must not have a path or query")]
    local = parts.hostname in ("127.0.0.1", "localhost", "::1")
    if local and settings.uses_postgres:
        return [
            Finding(
                WARN,
                "base URL",
                f"{settings.base_url} is this machine only; providers cannot reach webhooks there "
                "(set TRESEN_BASE_URL to the public https address)",
            )
        ]
    if parts.scheme == "http" and not local:
        return [Finding(WARN, "base URL", f"{settings.base_url} is not https")]
    return [Finding(OK, "base URL", settings.base_url)]


def check_data_dir(path: Path) -> list[Finding]:
    """The data dir exists, this user may write it, and others may not read it."""
    resolved = path.resolve()
    if not resolved.exists():
        return [
            Finding(WARN, "data dir", f"{resolved} does not exist yet (created at first start)")
        ]
    if not resolved.is_dir():
        return [Finding(ERROR, "data dir", f"{resolved} is not a directory")]
    if not os.access(resolved, os.W_OK | os.X_OK):
        return [Finding(ERROR, "data dir", f"{resolved} is not writable by this user")]
    found = [Finding(OK, "data dir", f"{resolved} is writable")]
    mode = stat.S_IMODE(resolved.stat().st_mode)
    if mode & 0o007:
        found.append(
            Finding(
                WARN,
                "data dir",
                f"{resolved} is open to every user of the machine (mode {mode:o}); chmod o-rwx",
            )
        )
    for sub in ("media", "exports"):
        child = resolved / sub
        if child.exists() and not os.access(child, os.W_OK | os.X_OK):
            found.append(Finding(ERROR, "data dir", f"{child} is not writable by this user"))
    found.extend(_readable_by_others(resolved))
    return found


def _readable_by_others(data_dir: Path) -> list[Finding]:
    """Files and folders under the data dir that other users of the machine may read."""
    wrong = [p for p in sorted(data_dir.rglob("*")) if stat.S_IMODE(p.lstat().st_mode) & 0o077]
    found = [
        Finding(
            ERROR,
            "data dir",
            f"{p} is readable by others (mode {stat.S_IMODE(p.lstat().st_mode):o})",
        )
        for p in wrong[:MAX_LISTED]
    ]
    if len(wrong) > MAX_LISTED:
        found.append(Finding(ERROR, "data dir", f"... and {len(wrong) - MAX_LISTED} more"))
    if wrong:
        found.append(Finding(ERROR, "data dir", f"fix with: chmod -R go= {data_dir}"))
    return found


async def check_redis(url: str) -> list[Finding]:
    """Redis answers PING when configured."""
    if not url:
        return [Finding(OK, "redis", "not configured (fine for a single web process)")]
    client = redis.Redis.from_url(url, socket_connect_timeout=2.0, socket_timeout=2.0)
    try:
        await asyncio.wait_for(client.ping(), 3.0)
    except (redis.RedisError, OSError, TimeoutError) as exc:
        return [Finding(ERROR, "redis", f"TRESEN_REDIS_URL does not answer: {exc or 'timeout'}")]
    finally:
        await client.aclose()
    return [Finding(OK, "redis", "answers")]


async def check_database(engine: AsyncEngine, settings: Settings) -> list[Finding]:
    """Reachable, schema current, keys as recorded, processes agreeing with each other."""
    url = engine.url.render_as_string(hide_password=True)
    try:
        async with engine.connect() as connection:
            revision = await current_revision(connection)
    except (DBAPIError, OSError) as exc:
        return [Finding(ERROR, "database", describe_database_error(exc, url))]
    found = [Finding(OK, "database", f"{engine.dialect.name} answers")]
    head = code_head()
    if revision is None:
        found.append(Finding(WARN, "schema", "empty database; run `tresen migrate`"))
        return found
    if revision != head:
        found.append(
            Finding(
                ERROR,
                "schema",
                f"at {revision}, this tresen needs {head}: run `tresen migrate`, "
                "or upgrade tresen here if the database is newer",
            )
        )
        return found
    found.append(Finding(OK, "schema", f"current ({head})"))
    sessions = make_sessionmaker(engine)
    async with sessions() as session:
        recorded = {r.name: r.fingerprint for r in await session.scalars(select(InstallKey))}
        processes = await alive(session)
        trouble = await consumer_trouble(session)
    found.extend(_compare_keys(recorded, settings))
    found.extend(_compare_processes(processes, settings))
    found.extend(Finding(WARN, "events", t.reason()) for t in trouble)
    return found


def _compare_keys(recorded: dict[str, str], settings: Settings) -> list[Finding]:
    if not recorded:
        return [
            Finding(WARN, "install keys", "none recorded yet (a process records them at start)")
        ]
    ours = secret_fingerprint(settings)
    found = []
    if recorded.get(SECRET) and recorded[SECRET] != ours:
        found.append(
            Finding(
                ERROR,
                "install keys",
                f"the install's secret key is {recorded[SECRET]}, this environment's "
                f"{ours or 'none'}",
            )
        )
    prints = encryption_fingerprints(settings)
    for name, print_ in recorded.items():
        if not name.startswith(ENCRYPTION):
            continue
        key_id = name[len(ENCRYPTION) :]
        if key_id not in prints:
            found.append(
                Finding(WARN, "install keys", f"encryption key {key_id!r} is not configured here")
            )
        elif prints[key_id] != print_:
            found.append(
                Finding(
                    ERROR, "install keys", f"encryption key {key_id!r} differs from the install's"
                )
            )
    return found or [Finding(OK, "install keys", "this environment's keys match the install's")]


def _compare_processes(processes: list[ProcessBeat], settings: Settings) -> list[Finding]:
    if not processes:
        return [
            Finding(WARN, "processes", "no web process or worker has reported in the last minute")
        ]
    found = []
    for p in processes:
        found.append(
            Finding(
                OK,
                "process",
                f"{p.role} {p.host} pid {p.pid} tresen {p.version} schema {p.schema_revision} "
                f"secret {p.secret_fingerprint or 'none'} encryption {p.encryption_fingerprint or 'off'} "
                f"data {p.data_dir}",
            )
        )
    secrets_seen = {p.secret_fingerprint for p in processes}
    if len(secrets_seen) > 1 or secret_fingerprint(settings) not in secrets_seen:
        found.append(
            Finding(ERROR, "processes", f"run with different secret keys: {sorted(secrets_seen)}")
        )
    encryption_seen = {p.encryption_fingerprint for p in processes}
    if len(encryption_seen) > 1:
        found.append(
            Finding(
                ERROR,
                "processes",
                f"run with different encryption keys: {sorted(encryption_seen)} "
                "(fine only while a key rotation is being rolled out)",
            )
        )
    dirs = {(p.host, p.data_dir) for p in processes}
    if len({d for _, d in dirs}) > 1:
        found.append(
            Finding(
                WARN,
                "processes",
                "use different data dirs or file stores: "
                + ", ".join(f"{h}:{d}" for h, d in sorted(dirs))
                + "; media live there, so every process needs the same one "
                "(one shared data dir, or TRESEN_STORAGE=s3 with the same bucket)",
            )
        )
    versions = {p.version for p in processes}
    if len(versions) > 1:
        found.append(
            Finding(WARN, "processes", f"run different tresen versions: {sorted(versions)}")
        )
    if not any(p.role in RUNS_JOBS for p in processes):
        found.append(
            Finding(ERROR, "processes", "no worker is running: no message is sent, no job is run")
        )
    return found


def check_storage(settings: Settings) -> list[Finding]:
    """The file store answers: the data dir is writable, or the bucket takes and gives a file."""
    files = open_store(settings)
    problem = files.check()
    if problem != "ok":
        return [Finding(ERROR, "file store", f"{files.describe()}: {problem}")]
    done = "took, gave back and deleted a probe object" if settings.storage == "s3" else "writable"
    return [Finding(OK, "file store", f"{files.describe()}: {done}")]


async def run_doctor(settings: Settings) -> list[Finding]:
    """Every check, in the order an operator reads them."""
    found = check_settings(settings)
    found.extend(check_data_dir(settings.data_dir))
    found.extend(await asyncio.to_thread(check_storage, settings))
    found.extend(await check_redis(settings.redis_url))
    url = settings.effective_database_url
    if not settings.uses_postgres and not Path(make_url(url).database or "").exists():
        found.append(Finding(WARN, "database", "no SQLite file yet (`tresen migrate` makes it)"))
        return found
    engine = make_engine(url, pool_size=1)
    try:
        found.extend(await check_database(engine, settings))
    finally:
        await engine.dispose()
    return found
