"""`tresen keys`: the fingerprints of this install's keys, and a deliberate secret key change."""

from __future__ import annotations

import asyncio
from typing import Any, NoReturn

import typer
from sqlalchemy import select

from tresen.db.engine import make_engine, make_sessionmaker
from tresen.db.tables import InstallKey
from tresen.ops.keys import KeyMismatch, fingerprint, rotate_secret, secret_fingerprint
from tresen.ops.startup import describe_database_error
from tresen.settings import Settings, SettingsError, load_settings, secret_key_from_file

keys_app = typer.Typer(no_args_is_help=True, help="Key fingerprints and secret key rotation.")


def fail(message: str) -> NoReturn:
    """Print `error: message` to stderr and exit with 2."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


def _settings() -> Settings:
    try:
        settings = load_settings()
    except SettingsError as exc:
        fail(str(exc))
    return settings if settings.uses_postgres else secret_key_from_file(settings)


async def _in_session(settings: Settings, work: Any) -> Any:
    """Run `await work(session)` in one transaction, without the start-up key check."""
    try:
        engine = make_engine(settings.effective_database_url)
    except OSError as exc:
        fail(describe_database_error(exc, settings.effective_database_url))
    try:
        async with make_sessionmaker(engine)() as session, session.begin():
            return await work(session)
    except OSError as exc:
        fail(describe_database_error(exc, settings.effective_database_url))
    finally:
        await engine.dispose()


@keys_app.command("show")
def show() -> None:
    """The fingerprints the install recorded and the ones of this environment (never keys)."""
    settings = _settings()

    async def work(session: Any) -> dict[str, str]:
        return {r.name: r.fingerprint for r in await session.scalars(select(InstallKey))}

    recorded = asyncio.run(_in_session(settings, work))
    for name, print_ in sorted(recorded.items()):
        typer.echo(f"install      {name}  {print_}")
    typer.echo(f"environment  TRESEN_SECRET_KEY  {secret_fingerprint(settings) or 'not set'}")
    for key in settings.suppression_keys[1:]:
        typer.echo(f"environment  TRESEN_PREVIOUS_SECRET_KEYS  {fingerprint(key.encode())}")


@keys_app.command("rotate-secret")
def rotate_secret_command(
    yes: bool = typer.Option(False, "--yes", help="Do not ask for confirmation."),
) -> None:
    """Make TRESEN_SECRET_KEY the install's key; the old one goes in TRESEN_PREVIOUS_SECRET_KEYS.

    Stop every process first, then start them all with the new key and the previous keys.
    """
    settings = _settings()
    if not yes:
        typer.confirm(
            "Signed-in sessions and signed links (files, web chat) made with the old key stop "
            "working. Go on",
            abort=True,
        )

    async def work(session: Any) -> tuple[str, str]:
        return await rotate_secret(session, settings)

    try:
        old, new = asyncio.run(_in_session(settings, work))
    except KeyMismatch as exc:
        fail(str(exc))
    if old == new:
        typer.echo(f"the install already uses this key ({new}); nothing changed")
        return
    typer.echo(f"the install's secret key is now {new} (was {old})")
    typer.echo(
        "keep the old key in TRESEN_PREVIOUS_SECRET_KEYS of every process: erased people "
        "stay suppressed only with it"
    )
