"""Helpers shared by the `tresen` command groups: settings, errors, logging, one DB session."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any, NoReturn

import typer

from tresen.settings import Settings, SettingsError, ensure_secret_key, load_settings


def fail(message: str, code: int = 2) -> NoReturn:
    """Print `error: message` to stderr and exit with `code`."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def cli_settings(data_dir: Path | None = None) -> Settings:
    """Settings from the environment (with a secret key), or a clear error."""
    try:
        settings = load_settings()
    except SettingsError as exc:
        fail(str(exc))
    if data_dir is not None:
        settings = settings.with_overrides(data_dir=data_dir)
    return ensure_secret_key(settings)


def setup_logging(level: str = "INFO") -> None:
    """Log to stderr; keep libraries that print URLs with credentials quiet."""
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    # httpx logs full URLs at INFO; some providers put credentials in URLs (Telegram bot tokens).
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)


async def with_session(settings: Settings, work: Any) -> Any:
    """Migrate, then run `await work(session)` in one transaction."""
    from tresen.db.migrate import upgrade_to_head
    from tresen.runtime import Runtime

    runtime = Runtime.create(settings)
    try:
        await upgrade_to_head(runtime.engine)
        async with runtime.sessions() as session, session.begin():
            return await work(session)
    finally:
        await runtime.close()
