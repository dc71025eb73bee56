"""`tresen privacy ...`: export (Art. 15/20), erasure (Art. 17) and retention runs."""

from __future__ import annotations

import asyncio
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from sqlalchemy import select

from tresen.clitools import cli_settings, fail, setup_logging

privacy_app = typer.Typer(no_args_is_help=True, help="Export, erase, retention.")
retention_app = typer.Typer(no_args_is_help=True, help="Delete data past its retention period.")
privacy_app.add_typer(retention_app, name="retention")


async def _workspace_of(runtime: Any, contact_id: str) -> str:
    from tresen.db.tables import Contact

    async with runtime.sessions() as session:
        ws = await session.scalar(select(Contact.workspace_id).where(Contact.id == contact_id))
    if ws is None:
        raise LookupError(f"no contact with the id {contact_id!r}")
    return str(ws)


def _run(work: Any) -> Any:
    """Run `await work(runtime)` on a migrated database; lookups that fail exit 2."""
    from tresen.db.migrate import upgrade_to_head
    from tresen.runtime import Runtime

    settings = cli_settings()

    async def main() -> Any:
        runtime = Runtime.create(settings)
        try:
            await upgrade_to_head(runtime.engine)
            return await work(runtime)
        finally:
            await runtime.close()

    try:
        return asyncio.run(main())
    except LookupError as exc:
        fail(str(exc).strip("'\""))


@privacy_app.command("export")
def export(
    contact_id: Annotated[str, typer.Argument(help="The contact's id.")],
    out: Annotated[Path, typer.Option("--out", help="Where to write the ZIP.")],
) -> None:
    """Write everything stored about a contact to a ZIP (JSON, HTML, files); audited."""
    from tresen.privacy.export import export_contact

    if out.exists() and out.is_dir():
        fail(f"--out {out} is a directory; name a file such as export.zip")

    async def work(runtime: Any) -> Any:
        ws = await _workspace_of(runtime, contact_id)
        return await export_contact(
            runtime.sessions,
            workspace_id=ws,
            contact_id=contact_id,
            data_dir=runtime.settings.data_dir,
            out=out,
            actor_id=None,
            via="cli",
        )

    summary = _run(work)
    typer.echo(f"wrote {out} ({summary.messages} messages, {summary.files} files)")


@privacy_app.command("erase")
def erase(
    contact_id: Annotated[str, typer.Argument(help="The contact's id.")],
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
) -> None:
    """Erase a contact everywhere (messages, files, search, queued sends); keeps only proof."""
    from tresen.privacy.erasure import erase as erase_now

    setup_logging("WARNING")
    if not yes:
        typer.confirm(
            f"Erase contact {contact_id} with all messages, notes and files? This cannot be undone",
            abort=True,
        )

    async def work(runtime: Any) -> Any:
        ws = await _workspace_of(runtime, contact_id)
        async with runtime.sessions() as session:
            return await erase_now(
                runtime.engine,
                session,
                secret_key=runtime.settings.secret_key,
                data_dir=runtime.settings.data_dir,
                workspace_id=ws,
                contact_id=contact_id,
                actor_id=None,
                via="cli",
            )

    report = _run(work)
    parts = ", ".join(f"{v} {k}" for k, v in report.counts().items())
    typer.echo(f"erased contact {contact_id}: {parts}")


@retention_app.command("run")
def retention_run(
    now: Annotated[
        str | None, typer.Option(help="Pretend it is this UTC time (ISO 8601), for testing.")
    ] = None,
) -> None:
    """Apply every workspace's retention periods now."""
    from datetime import UTC

    from tresen.privacy.retention import RetentionError, run

    when = None
    if now:
        try:
            when = datetime.fromisoformat(now)
        except ValueError:
            fail(f"--now {now!r} is not an ISO 8601 time such as 2027-01-31T12:00:00")
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)

    async def work(runtime: Any) -> Any:
        return await run(
            runtime.sessions, runtime.settings.secret_key, runtime.settings.data_dir, when
        )

    try:
        result = _run(work)
    except RetentionError as exc:
        fail(str(exc))
    for ws, report in result.workspaces.items():
        parts = ", ".join(f"{v} {k}" for k, v in report.counts().items())
        typer.echo(f"{ws}\t{parts}")
    typer.echo(f"orphan files removed: {result.orphan_files}")
