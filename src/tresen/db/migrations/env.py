"""Alembic environment: runs migrations over the async engine tresen uses."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection

from tresen.db.engine import make_engine
from tresen.db.tables import Base

config = context.config
target_metadata = Base.metadata


# Search structures live outside the ORM metadata (migration 0002_search); autogenerate must keep them.
_SEARCH_OBJECTS = (
    "search_tsv",
    "messages_fts",
    "contacts_fts",
    "ix_contact_identities_search_tsv",
    "ix_contacts_search_tsv",
    "ix_conversations_search_order",
    "ix_jobs_send_message",  # an expression index (migration 0012)
    "ix_conversations_status_order",
    "ix_messages_search_tsv",
    "ix_messages_workspace_created",
)


def _include(
    obj: object, name: str | None, type_: str, reflected: bool, compare_to: object
) -> bool:
    return not (
        reflected and compare_to is None and name is not None and name.startswith(_SEARCH_OBJECTS)
    )


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        include_object=_include,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_async(url: str) -> None:
    engine = make_engine(url)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run)
            await connection.commit()
    finally:
        await engine.dispose()


def run_migrations_online() -> None:
    """Run migrations against the configured database."""
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    asyncio.run(_run_async(config.get_main_option("sqlalchemy.url") or ""))


run_migrations_online()
