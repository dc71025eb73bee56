"""Start-up: one secret key per install, migrations under a lock, one-line database errors."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import create_async_engine

from tests.ops.conftest import free_port, start, tresen_env
from tresen.clitools import cli_settings
from tresen.db.crypto import new_key
from tresen.db.engine import make_engine, make_sessionmaker
from tresen.db.migrate import SchemaTooNew, code_head, upgrade_to_head
from tresen.db.tables import InstallKey, ProcessBeat
from tresen.ops.keys import KeyMismatch, check_install_keys
from tresen.ops.startup import StartupError, prepare_database
from tresen.runtime import Runtime
from tresen.settings import Settings, SettingsError, ensure_secret_key


def test_postgres_without_secret_key_is_refused(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, database_url="postgresql://db/tresen")
    with pytest.raises(SettingsError, match="TRESEN_SECRET_KEY is not set"):
        ensure_secret_key(settings)
    assert not (tmp_path / "secret_key").exists()
    on_sqlite = ensure_secret_key(Settings(data_dir=tmp_path))
    assert (tmp_path / "secret_key").read_text() == on_sqlite.secret_key


@pytest.mark.slow
def test_two_processes_in_other_directories_without_key_are_refused(
    tmp_path: Path, postgres_url: str
) -> None:
    for where in ("a", "b"):
        (tmp_path / where).mkdir()
        proc = start(["migrate"], tresen_env(database_url=postgres_url), tmp_path / where)
        output = proc.communicate(timeout=60)[0].decode()
        assert proc.returncode == 2, output
        assert (
            output.startswith("error: TRESEN_SECRET_KEY is not set") and "Traceback" not in output
        )
        assert not (tmp_path / where / "tresen-data").exists()


async def test_a_process_with_another_secret_key_is_refused(runtime: Runtime) -> None:
    async with runtime.sessions() as session, session.begin():
        await check_install_keys(session, runtime.settings)
    other = runtime.settings.with_overrides(secret_key="another-key")
    async with runtime.sessions() as session, session.begin():
        with pytest.raises(KeyMismatch, match="not the key this install was set up with"):
            await check_install_keys(session, other)
    async with runtime.sessions() as session, session.begin():
        await check_install_keys(session, runtime.settings)  # the right key still starts


async def test_encryption_keys_cannot_go_missing_or_change_under_one_id(runtime: Runtime) -> None:
    encrypted = runtime.settings.with_overrides(encryption_keys=f"k1={new_key()}")
    async with runtime.sessions() as session, session.begin():
        await check_install_keys(session, encrypted)
    async with runtime.sessions() as session, session.begin():
        with pytest.raises(KeyMismatch, match="TRESEN_ENCRYPTION_KEYS is not set"):
            await check_install_keys(session, runtime.settings)
    swapped = runtime.settings.with_overrides(encryption_keys=f"k1={new_key()}")
    async with runtime.sessions() as session, session.begin():
        with pytest.raises(KeyMismatch, match="encryption key 'k1'"):
            await check_install_keys(session, swapped)
    rotated = runtime.settings.with_overrides(
        encryption_keys=f"k2={new_key()},{encrypted.encryption_keys}"
    )
    async with runtime.sessions() as session, session.begin():
        await check_install_keys(session, rotated)
        names = set(await session.scalars(select(InstallKey.name)))
    assert names == {"secret_key", "encryption:k1", "encryption:k2"}


@pytest.mark.postgres
async def test_concurrent_migrations_on_an_empty_postgres_database(empty_postgres: str) -> None:
    engines = [create_async_engine(empty_postgres) for _ in range(4)]
    try:
        async with asyncio.timeout(120):
            revisions = await asyncio.gather(*(upgrade_to_head(e) for e in engines))
        assert revisions == [code_head()] * 4
        async with engines[0].connect() as conn:
            assert await conn.scalar(text("SELECT count(*) FROM alembic_version")) == 1
    finally:
        for engine in engines:
            await engine.dispose()


async def test_a_schema_newer_than_the_code_is_refused(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'tresen.db'}")
    settings = Settings(data_dir=tmp_path, secret_key="k")
    try:
        await upgrade_to_head(engine)
        async with engine.begin() as conn:
            await conn.execute(text("UPDATE alembic_version SET version_num = '0999_future'"))
        with pytest.raises(SchemaTooNew, match="0999_future, newer than this tresen"):
            await upgrade_to_head(engine)
        with pytest.raises(StartupError, match="upgrade tresen on this machine"):
            await prepare_database(engine, make_sessionmaker(engine), settings, migrate=False)
    finally:
        await engine.dispose()


@pytest.mark.slow
def test_a_missing_database_is_one_line_naming_the_fix(tmp_path: Path, postgres_url: str) -> None:
    url = postgres_url.rsplit("/", 1)[0] + "/tresen_no_such_db"
    proc = start(["migrate"], tresen_env(database_url=url, secret_key="k"), tmp_path)
    output = proc.communicate(timeout=60)[0].decode()
    assert proc.returncode == 2
    assert output.strip().splitlines() == [
        'error: database "tresen_no_such_db" does not exist on 127.0.0.1:5432; create it '
        "(createdb -h 127.0.0.1 -p 5432 -U postgres tresen_no_such_db) and start again"
    ]
    closed = f"postgresql://postgres@127.0.0.1:{free_port()}/x"
    proc = start(["worker"], tresen_env(database_url=closed, secret_key="k"), tmp_path)
    lines = proc.communicate(timeout=60)[0].decode().strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and "cannot reach PostgreSQL" in lines[0]


@pytest.mark.slow
def test_web_and_workers_started_together_on_an_empty_database_all_start(
    tmp_path: Path, empty_postgres: str
) -> None:
    port = free_port()
    env = tresen_env(
        database_url=empty_postgres, secret_key="one-key", data_dir=str(tmp_path / "data")
    )
    procs = [
        start(["serve", "--no-worker", "--port", str(port)], env, tmp_path),
        start(["worker"], env, tmp_path),
        start(["worker"], env, tmp_path),
    ]
    try:
        deadline = time.monotonic() + 90
        while True:
            assert all(p.poll() is None for p in procs), [
                p.stdout.read().decode()
                for p in procs
                if p.poll() is not None  # type: ignore[union-attr]
            ]
            assert time.monotonic() < deadline, "not all processes reported in"
            if asyncio.run(_roles(empty_postgres)) == ["web", "worker", "worker"]:
                break
            time.sleep(0.5)
        assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200
    finally:
        for proc in procs:
            proc.terminate()
        outputs = [proc.communicate(timeout=30)[0].decode() for proc in procs]
    assert all("Traceback" not in out and "UniqueViolation" not in out for out in outputs), outputs


async def _roles(url: str) -> list[str]:
    engine = make_engine(url)
    try:
        async with engine.connect() as conn:
            exists = await conn.scalar(text("SELECT to_regclass('process_heartbeats')"))
            if exists is None:
                return []
            rows = await conn.scalars(select(ProcessBeat.role).order_by(ProcessBeat.role))
            return list(rows)
    finally:
        await engine.dispose()


def test_the_demo_stays_on_sqlite_whatever_the_environment_says(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRESEN_DATABASE_URL", "postgresql://db.invalid/tresen")
    monkeypatch.delenv("TRESEN_SECRET_KEY", raising=False)
    settings = cli_settings(tmp_path / "demo", sqlite_only=True)
    assert not settings.uses_postgres and settings.secret_key
    assert (tmp_path / "demo" / "secret_key").is_file()
