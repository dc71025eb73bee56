"""Bring the schema up to date with Alembic, one process at a time."""

from __future__ import annotations

import logging
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
MIGRATION_LOCK = 0x7472_6573_656E  # "tresen": the PostgreSQL advisory lock id of migrating

log = logging.getLogger(__name__)


class SchemaTooNew(RuntimeError):
    """The database was migrated by a newer tresen than this one."""


def alembic_config(url: str) -> Config:
    """An Alembic config pointing at the packaged migrations."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url)
    return cfg


def code_head() -> str:
    """The newest migration this code knows."""
    head = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
    assert head is not None
    return head


def _known_revisions() -> set[str]:
    scripts = ScriptDirectory.from_config(alembic_config("sqlite://"))
    return {script.revision for script in scripts.walk_revisions()}


async def current_revision(connection: AsyncConnection) -> str | None:
    """The revision the database is at; None when it was never migrated."""

    def read(sync_connection: object) -> str | None:
        return MigrationContext.configure(sync_connection).get_current_revision()  # type: ignore[arg-type]

    return await connection.run_sync(read)


def refuse_newer(revision: str | None) -> None:
    """Raise SchemaTooNew when the database is at a revision this code does not know."""
    if revision is not None and revision not in _known_revisions():
        raise SchemaTooNew(
            f"the database schema is at revision {revision}, newer than this tresen "
            f"(which knows up to {code_head()}); upgrade tresen on this machine before starting it"
        )


async def _take_migration_lock(connection: AsyncConnection) -> None:
    """Hold the migration lock until the transaction ends; waits for a migration in progress."""
    if connection.dialect.name != "postgresql":
        return  # SQLite: the transaction began with BEGIN IMMEDIATE, which excludes other writers
    got = await connection.scalar(
        text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK}
    )
    if not got:
        log.info("another process is migrating the database; waiting for it")
        await connection.execute(
            text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK}
        )


async def upgrade_to_head(engine: AsyncEngine) -> str:
    """Apply every migration not yet applied, holding the migration lock; returns the revision."""
    cfg = alembic_config(engine.url.render_as_string(hide_password=False))
    head = code_head()

    def _upgrade(connection: object) -> None:
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, "head")

    async with engine.begin() as connection:
        await _take_migration_lock(connection)
        before = await current_revision(connection)
        if before == head:
            return head
        refuse_newer(before)
        log.info("migrating the database from %s to %s", before or "empty", head)
        await connection.run_sync(_upgrade)
    return head
