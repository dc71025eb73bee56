"""Engines and sessions for SQLite (WAL) and PostgreSQL."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

# aiosqlite logs every statement with its parameters (phone numbers, message text) at DEBUG.
logging.getLogger("aiosqlite").setLevel(logging.INFO)


def make_engine(url: str, *, pool_size: int = 10) -> AsyncEngine:
    """An async engine; SQLite gets WAL, a busy timeout and immediate write transactions."""
    if url.startswith("sqlite"):
        db_path = url.split("///", 1)[-1]
        if db_path and db_path != ":memory:":
            Path(db_path).parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        engine = create_async_engine(url, connect_args={"timeout": 30})
        _configure_sqlite(engine, db_path)
        return engine
    return create_async_engine(
        url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=False
    )


def _configure_sqlite(engine: AsyncEngine, db_path: str) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy emit BEGIN itself so writers take the lock up front (no upgrade deadlocks).
        dbapi_conn.isolation_level = None
        if db_path and db_path != ":memory:" and Path(db_path).exists():
            # Before the WAL exists: SQLite gives the -wal and -shm files the database's mode.
            os.chmod(db_path, 0o600)
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        # Deleted rows are overwritten with zeros, so an erased person's data leaves the file.
        cursor.execute("PRAGMA secure_delete=ON")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def make_sessionmaker(
    engine: AsyncEngine, info: dict[str, Any] | None = None
) -> async_sessionmaker[AsyncSession]:
    """Sessions that keep loaded objects usable after commit (`info` lands in `session.info`)."""
    return async_sessionmaker(engine, expire_on_commit=False, info=dict(info or {}))
