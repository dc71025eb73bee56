"""Dialect-aware INSERT ... ON CONFLICT DO NOTHING."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession


def insert_ignore(session: AsyncSession, table: Table) -> Any:
    """An INSERT that silently skips rows violating a unique constraint."""
    if session.bind.dialect.name == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing()
    return sqlite.insert(table).on_conflict_do_nothing()
