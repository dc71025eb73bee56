"""What every process does before it serves: migrate under a lock, check keys, clear errors."""

from __future__ import annotations

from sqlalchemy import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from tresen.db.migrate import (
    SchemaTooNew,
    code_head,
    current_revision,
    refuse_newer,
    upgrade_to_head,
)
from tresen.ops.keys import KeyMismatch, check_install_keys
from tresen.settings import Settings


class StartupError(RuntimeError):
    """Why this process cannot start, in one line an operator can act on."""


def describe_database_error(exc: BaseException, url: str) -> str:
    """One line naming what is wrong with the database and the fix."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return (
            f"cannot open the SQLite database {parsed.database}: {_reason(exc)}; "
            "check that TRESEN_DATA_DIR exists and this user may write there"
        )
    where = f"{parsed.host or 'localhost'}:{parsed.port or 5432}"
    cause = getattr(exc, "orig", None) or exc
    cause_name = type(getattr(cause, "__cause__", None) or cause).__name__
    if cause_name == "InvalidCatalogNameError":
        return (
            f'database "{parsed.database}" does not exist on {where}; create it '
            f"(createdb -h {parsed.host or 'localhost'} -p {parsed.port or 5432} "
            f"{'-U ' + parsed.username + ' ' if parsed.username else ''}{parsed.database}) "
            "and start again"
        )
    if cause_name in ("InvalidPasswordError", "InvalidAuthorizationSpecificationError"):
        return f"PostgreSQL at {where} refused user {parsed.username!r}: {_reason(exc)}"
    if isinstance(exc, OSError):
        return (
            f"cannot reach PostgreSQL at {where} ({_reason(exc)}); is it running, "
            "and does TRESEN_DATABASE_URL name the right host and port?"
        )
    return f"the database at {where} failed: {_reason(exc)}"


def _reason(exc: BaseException) -> str:
    cause = getattr(exc, "orig", None) or exc
    return (str(cause).strip().splitlines() or [type(cause).__name__])[0]


async def prepare_database(
    engine: AsyncEngine,
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    *,
    migrate: bool = True,
) -> str:
    """Migrate (or check the schema is current) and check the keys; returns the schema revision."""
    url = engine.url.render_as_string(hide_password=True)
    try:
        if migrate:
            revision = await upgrade_to_head(engine)
        else:
            async with engine.connect() as connection:
                found = await current_revision(connection)
            refuse_newer(found)
            if found != code_head():
                raise StartupError(
                    f"the database schema is at {found or 'nothing'}, this tresen needs "
                    f"{code_head()}; run `tresen migrate` first"
                )
            revision = found
        async with sessions() as session, session.begin():
            await check_install_keys(session, settings)
    except (SchemaTooNew, KeyMismatch) as exc:
        raise StartupError(str(exc)) from exc
    except (DBAPIError, OSError) as exc:
        raise StartupError(describe_database_error(exc, url)) from exc
    return revision
