"""Bring the schema up to date with Alembic."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.ext.asyncio import AsyncEngine

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def alembic_config(url: str) -> Config:
    """An Alembic config pointing at the packaged migrations."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url)
    return cfg


async def upgrade_to_head(engine: AsyncEngine) -> None:
    """Apply every migration not yet applied, on the given engine."""
    cfg = alembic_config(engine.url.render_as_string(hide_password=False))

    def _upgrade(connection: object) -> None:
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, "head")

    async with engine.begin() as connection:
        await connection.run_sync(_upgrade)
