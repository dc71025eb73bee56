"""`tresen backup` and `tresen restore`: the database through the engine's own tool, the data
dir's files with a checksummed manifest (on S3: a manifest of the bucket's objects), and the key
fingerprints the operator keeps apart."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import make_url

from tresen import __version__
from tresen.db.migrate import code_head
from tresen.ops.keys import encryption_fingerprints, secret_fingerprint
from tresen.settings import Settings
from tresen.storage import StorageError, location, open_store

MANIFEST = "manifest.json"
FILES = "files"
PG_DUMP = "database.pgdump"
SQLITE_COPY = "database.sqlite"
LEFT_OUT = {"tresen.db", "tresen.db-wal", "tresen.db-shm", "tresen.db-journal", "secret_key"}
"""Data-dir files a backup does not copy: the database (dumped apart) and the key (kept apart)."""


class BackupError(RuntimeError):
    """A backup or restore could not be made; nothing was changed where it says so."""


@dataclass(frozen=True)
class BackupReport:
    """What a backup holds."""

    path: Path
    database: str
    files: int
    bytes: int
    keys: dict[str, str]
    objects: int = 0
    """Objects listed in the object-store manifest (TRESEN_STORAGE=s3)."""


def _libpq_url(settings: Settings) -> str:
    url = make_url(settings.effective_database_url).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _run(command: list[str], what: str) -> None:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=3600, check=False)
    except FileNotFoundError as exc:
        raise BackupError(
            f"{command[0]} is not installed; install the PostgreSQL client tools ({what})"
        ) from exc
    if done.returncode != 0:
        first = (done.stderr.strip().splitlines() or ["no message"])[-1]
        raise BackupError(f"{command[0]} failed ({what}): {first}")


def key_fingerprints(settings: Settings) -> dict[str, str]:
    """The keys a restore needs, by name → fingerprint (never the keys themselves)."""
    keys = {"TRESEN_SECRET_KEY": secret_fingerprint(settings)}
    for key_id, print_ in encryption_fingerprints(settings).items():
        keys[f"TRESEN_ENCRYPTION_KEYS:{key_id}"] = print_
    return keys


def _data_files(data_dir: Path) -> list[Path]:
    if not data_dir.is_dir():
        return []
    return sorted(
        p
        for p in data_dir.rglob("*")
        if p.is_file() and not (p.parent == data_dir and p.name in LEFT_OUT)
    )


def backup(settings: Settings, target: Path) -> BackupReport:
    """Write a backup into the new directory `target`."""
    if target.exists() and any(target.iterdir()):
        raise BackupError(f"{target} exists and is not empty; name a new directory")
    target.mkdir(parents=True, exist_ok=True)
    os.chmod(target, 0o700)
    if settings.uses_postgres:
        database = "postgresql"
        _run(
            ["pg_dump", "--format=custom", "--no-owner", "--file", str(target / PG_DUMP),
             "--dbname", _libpq_url(settings)],
            "database dump",
        )  # fmt: skip
    else:
        database = "sqlite"
        source = Path(make_url(settings.effective_database_url).database or "")
        if not source.is_file():
            raise BackupError(f"no SQLite database at {source}")
        with sqlite3.connect(source) as live, sqlite3.connect(target / SQLITE_COPY) as copy:
            live.backup(copy)  # a consistent copy while the install keeps running
        copy_path = target / SQLITE_COPY
        os.chmod(copy_path, 0o600)
    data_dir = settings.data_dir.resolve()
    entries = []
    total = 0
    for path in _data_files(data_dir):
        relative = path.relative_to(data_dir)
        destination = target / FILES / relative
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, destination)
        size = destination.stat().st_size
        total += size
        entries.append({"path": relative.as_posix(), "bytes": size, "sha256": _sha256(destination)})
    dump = target / (PG_DUMP if database == "postgresql" else SQLITE_COPY)
    keys = key_fingerprints(settings)
    objects = object_manifest(settings)
    manifest = {
        "tresen": __version__,
        "schema_revision": code_head(),
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "database": {"kind": database, "file": dump.name, "sha256": _sha256(dump)},
        "files": entries,
        **({"object_store": objects} if objects else {}),
        "keys_to_store_separately": keys,
        "note": "This backup holds no keys. Restoring needs the keys with these fingerprints; "
        "without them encrypted data and erasure records cannot be used.",
    }
    (target / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    listed = len(objects["objects"]) if objects else 0
    return BackupReport(target, database, len(entries), total, keys, listed)


def object_manifest(settings: Settings) -> dict[str, Any] | None:
    """On S3: the bucket's media and export objects (key, size), which the backup does not copy."""
    if settings.storage != "s3":
        return None
    files = open_store(settings)
    try:
        listed = [
            {"key": o.key, "bytes": o.size}
            for prefix in ("media/", "exports/")
            for o in files.listing(prefix)
        ]
    except StorageError as exc:
        raise BackupError(str(exc)) from exc
    return {
        "where": files.describe(),
        "location": location(settings),
        "objects": listed,
        "note": "The objects are not copied: back the bucket up with its own versioning or "
        "replication. `tresen restore` checks that each listed object is in the bucket.",
    }


def check_objects(settings: Settings, manifest: dict[str, Any]) -> None:
    """BackupError unless every object the backup lists is in this install's bucket, same size."""
    listed = manifest.get("object_store")
    if not listed:
        return
    if settings.storage != "s3":
        raise BackupError(
            f"this backup's files are in object storage ({listed['where']}); set TRESEN_STORAGE=s3 "
            "and the TRESEN_S3_* settings of that bucket (or a copy of it) first"
        )
    files = open_store(settings)
    try:
        present = {o.key: o.size for p in ("media/", "exports/") for o in files.listing(p)}
    except StorageError as exc:
        raise BackupError(str(exc)) from exc
    missing = [o["key"] for o in listed["objects"] if present.get(o["key"]) != o["bytes"]]
    if missing:
        raise BackupError(
            f"{len(missing)} objects the backup lists are missing or differ in "
            f"{files.describe()} (e.g. {missing[0]}); restore the bucket first"
        )


def read_manifest(source: Path) -> dict[str, Any]:
    """The manifest of a backup, its files checked against their checksums."""
    try:
        manifest: dict[str, Any] = json.loads((source / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BackupError(f"{source} has no readable {MANIFEST}: {exc}") from exc
    dump = source / manifest["database"]["file"]
    if not dump.is_file() or _sha256(dump) != manifest["database"]["sha256"]:
        raise BackupError(f"{dump} is missing or damaged (checksum differs)")
    for entry in manifest["files"]:
        path = source / FILES / entry["path"]
        if not path.is_file() or _sha256(path) != entry["sha256"]:
            raise BackupError(f"{path} is missing or damaged (checksum differs)")
    return manifest


def restore(settings: Settings, source: Path, *, force: bool = False) -> dict[str, Any]:
    """Restore a backup into this install's (empty) database and data dir."""
    manifest = read_manifest(source)
    kind = manifest["database"]["kind"]
    if kind != ("postgresql" if settings.uses_postgres else "sqlite"):
        raise BackupError(f"this backup is of a {kind} database; TRESEN_DATABASE_URL names another")
    ours = key_fingerprints(settings)
    for name, print_ in manifest["keys_to_store_separately"].items():
        if print_ and ours.get(name) != print_:
            raise BackupError(
                f"{name.split(':')[0]} must hold the key with fingerprint {print_}"
                f"{' (key id ' + name.split(':')[1] + ')' if ':' in name else ''}; "
                f"this environment has {ours.get(name) or 'none'}"
            )
    check_objects(settings, manifest)
    data_dir = settings.data_dir.resolve()
    clashes = [e["path"] for e in manifest["files"] if (data_dir / e["path"]).exists()]
    if clashes and not force:
        raise BackupError(
            f"{len(clashes)} files exist already in {data_dir} (e.g. {clashes[0]}); "
            "restore into an empty data dir, or pass --force to overwrite"
        )
    dump = source / manifest["database"]["file"]
    if kind == "postgresql":
        _run(
            ["pg_restore", "--no-owner", "--exit-on-error", *(["--clean", "--if-exists"] if force else []),
             "--dbname", _libpq_url(settings), str(dump)],
            "database restore",
        )  # fmt: skip
    else:
        target = Path(make_url(settings.effective_database_url).database or "")
        if target.exists() and not force:
            raise BackupError(f"{target} exists; restore into a new data dir, or pass --force")
        target.parent.mkdir(parents=True, exist_ok=True)
        for suffix in ("-wal", "-shm"):
            target.with_name(target.name + suffix).unlink(missing_ok=True)
        shutil.copyfile(dump, target)
        os.chmod(target, 0o600)
    for entry in manifest["files"]:
        destination = data_dir / entry["path"]
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source / FILES / entry["path"], destination)
    return manifest
