"""Helpers shared by the `tresen` command groups: settings, errors, logging, one DB session."""

from __future__ import annotations

from pathlib import Path
from typing import Any, NoReturn

import typer

from tresen.db import crypto
from tresen.db.engine import make_engine, make_sessionmaker
from tresen.logs import setup_logging as configure_logging
from tresen.ops.startup import StartupError, describe_database_error, prepare_database
from tresen.settings import Settings, SettingsError, ensure_secret_key, load_settings


def fail(message: str, code: int = 2) -> NoReturn:
    """Print `error: message` to stderr and exit with `code`."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def cli_settings(data_dir: Path | None = None, *, sqlite_only: bool = False) -> Settings:
    """Settings from the environment (with a secret key), or a clear error; `sqlite_only`
    keeps the database in the data dir whatever TRESEN_DATABASE_URL says (the demo)."""
    try:
        settings = load_settings()
    except SettingsError as exc:
        fail(str(exc))
    if data_dir is not None:
        settings = settings.with_overrides(data_dir=data_dir)
    if sqlite_only:
        settings = settings.with_overrides(database_url="")
    try:
        return ensure_secret_key(settings)
    except SettingsError as exc:
        fail(str(exc))


def setup_logging(level: str | None = None, fmt: str | None = None) -> None:
    """Log to stderr at the level and in the format of the settings (or the ones given)."""
    settings = load_settings()
    try:
        configure_logging(level or settings.log_level, fmt or settings.log_format)
    except ValueError as exc:
        fail(f"TRESEN_LOG_LEVEL / TRESEN_LOG_FORMAT: {exc}")


async def with_session(settings: Settings, work: Any) -> Any:
    """Migrate, then run `await work(session)` in one transaction."""
    crypto.use(crypto.parse_keys(settings.encryption_keys))
    try:
        engine = make_engine(settings.effective_database_url)
    except OSError as exc:
        fail(describe_database_error(exc, settings.effective_database_url))
    try:
        sessions = make_sessionmaker(engine, info={"base_url": settings.base_url})
        try:
            await prepare_database(engine, sessions, settings)
        except StartupError as exc:
            fail(str(exc))
        async with sessions() as session, session.begin():
            return await work(session)
    finally:
        await engine.dispose()
