"""The data dir, the SQLite database (and its WAL) and media files are for the owner only."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from sqlalchemy import text

from tresen.db.engine import make_engine
from tresen.media import store
from tresen.settings import Settings, ensure_secret_key
from tresen.storage import LocalStore


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_database_data_dir_and_media_are_private(tmp_path: Path) -> None:
    old = os.umask(0o022)  # a typical login shell's umask: files would be 0644
    try:
        data = tmp_path / "data"
        ensure_secret_key(Settings(data_dir=data))
        engine = make_engine(f"sqlite+aiosqlite:///{data / 'tresen.db'}")
        async with engine.begin() as connection:
            await connection.execute(text("CREATE TABLE t (x TEXT)"))
            await connection.execute(text("INSERT INTO t VALUES ('a')"))
        saved = store.save(LocalStore(data), "ws1", "m1", b"GIF89a" + b"\0" * 20, "image/gif", 1000)
        files = [data / "tresen.db", data / "tresen.db-wal", data / "secret_key", data / saved.path]
        for path in files:
            assert path.exists(), path
            assert _mode(path) & 0o077 == 0, f"{path.name} is {oct(_mode(path))}"
        for folder in (data, data / "media", (data / saved.path).parent):
            assert _mode(folder) & 0o077 == 0, f"{folder} is {oct(_mode(folder))}"
        await engine.dispose()
    finally:
        os.umask(old)
