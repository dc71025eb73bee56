"""A throw-away database for one benchmark run: a new PostgreSQL database or a SQLite file."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from tresen.settings import normalise_database_url


async def admin_sql(url: str, sql: str) -> None:
    """Run one statement outside a transaction (CREATE / DROP DATABASE)."""
    engine = create_async_engine(url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            await conn.execute(text(sql))
    finally:
        await engine.dispose()


@dataclass(frozen=True)
class ScratchDatabase:
    """Where a run's data lives, and what to drop afterwards."""

    url: str
    kind: str  # "postgresql" or "sqlite"
    admin_url: str = ""
    name: str = ""

    async def drop(self) -> None:
        """Drop the PostgreSQL database (a SQLite file goes with its temp dir)."""
        if self.name:
            await admin_sql(self.admin_url, f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


async def create_scratch(database_url: str, tmp: Path, run: str) -> ScratchDatabase:
    """A new `tresen_bench_<run>` database on the given server, or a SQLite file in `tmp`."""
    if database_url and not database_url.startswith("sqlite"):
        admin_url = normalise_database_url(database_url)
        name = f"tresen_bench_{run}"
        await admin_sql(admin_url, f'CREATE DATABASE "{name}"')
        url = admin_url.rsplit("/", 1)[0] + "/" + name
        return ScratchDatabase(url, "postgresql", admin_url, name)
    return ScratchDatabase(f"sqlite+aiosqlite:///{tmp / 'tresen.db'}", "sqlite")
