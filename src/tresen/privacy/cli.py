"""`tresen privacy ...`: export (Art. 15/20), erasure (Art. 17) and retention runs."""

from __future__ import annotations

import asyncio
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from sqlalchemy import select

from tresen.clitools import cli_settings, fail, setup_logging
from tresen.storage import StorageError

privacy_app = typer.Typer(no_args_is_help=True, help="Export, erase, retention.")
retention_app = typer.Typer(no_args_is_help=True, help="Delete data past its retention period.")
privacy_app.add_typer(retention_app, name="retention")
LangAlias = Annotated[
    str | None, typer.Option("--lang", hidden=True, help="The old name of --language.")
]


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
        fail(str(exc.args[0]) if exc.args else type(exc).__name__)  # KeyError's str() adds quotes


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
            files=runtime.files,
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
                files=runtime.files,
                events=runtime.events,
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
            runtime.sessions,
            runtime.settings.secret_key,
            runtime.files,
            when,
            engine=runtime.engine,
            events=runtime.events,
            data_dir=runtime.settings.data_dir,
        )

    try:
        result = _run(work)
    except RetentionError as exc:
        fail(str(exc))
    for ws, report in result.workspaces.items():
        parts = ", ".join(f"{v} {k}" for k, v in report.counts().items())
        typer.echo(f"{ws}\t{parts}")
    typer.echo(f"orphan files removed: {result.orphan_files}")


@retention_app.command("show")
def retention_show() -> None:
    """Print every workspace's retention periods in days (0: kept forever)."""
    from tresen.db.tables import Workspace
    from tresen.privacy.retention import periods

    async def work(runtime: Any) -> Any:
        async with runtime.sessions() as session:
            return [(w.id, w.name, periods(w)) for w in await session.scalars(select(Workspace))]

    for ws, name, days in _run(work):
        typer.echo(f"{ws}\t{name}\t" + ", ".join(f"{k}={v}" for k, v in days.items()))


@retention_app.command("set")
def retention_set(
    category: Annotated[str, typer.Argument(help="conversations, media, inactive_contacts, ...")],
    days: Annotated[int, typer.Argument(min=0, help="Days to keep; 0 keeps forever.")],
    workspace: Annotated[
        str | None, typer.Option(help="Workspace id (default: the only one).")
    ] = None,
) -> None:
    """Change a retention period."""
    from tresen.db.tables import Workspace
    from tresen.privacy.retention import RetentionError, set_period

    async def work(runtime: Any) -> Any:
        async with runtime.sessions() as session, session.begin():
            ids = list(await session.scalars(select(Workspace.id)))
            ws = workspace or (ids[0] if len(ids) == 1 else None)
            if ws is None or ws not in ids:
                raise LookupError(
                    "name the workspace with --workspace (ids: " + ", ".join(ids) + ")"
                )
            await set_period(session, ws, category, days)
            return ws

    try:
        ws = _run(work)
    except RetentionError as exc:
        fail(str(exc))
    typer.echo(f"{ws}\t{category}={days}")


@privacy_app.command("policy")
def policy(
    url: Annotated[
        str | None,
        typer.Argument(help="The privacy policy's address (https://...); '' removes it."),
    ] = None,
    workspace: Annotated[
        str | None, typer.Option(help="Workspace id (default: the only one).")
    ] = None,
) -> None:
    """Show or set the privacy policy the consent notice links (business profile)."""
    from tresen.db.tables import Workspace
    from tresen.domain.profile import ProfileError
    from tresen.privacy.consent import policy_url, set_policy_url

    async def work(runtime: Any) -> Any:
        async with runtime.sessions() as session, session.begin():
            ids = list(await session.scalars(select(Workspace.id)))
            ws = workspace or (ids[0] if len(ids) == 1 else None)
            if ws is None or ws not in ids:
                raise LookupError(
                    "name the workspace with --workspace (ids: " + ", ".join(ids) + ")"
                )
            if url is not None:
                return ws, await set_policy_url(session, ws, url)
            return ws, policy_url(await session.get_one(Workspace, ws))

    try:
        ws, shown = _run(work)
    except ProfileError as exc:
        fail(str(exc))
    typer.echo(f"{ws}\t{shown or '(none)'}")


@privacy_app.command("hold")
def hold(
    conversation_id: Annotated[str, typer.Argument(help="The conversation's id.")],
    release: Annotated[bool, typer.Option("--release", help="End the legal hold.")] = False,
) -> None:
    """Put a conversation on legal hold: retention keeps it and its contact until released."""
    from tresen.privacy.retention import set_legal_hold

    async def work(runtime: Any) -> Any:
        async with runtime.sessions() as session, session.begin():
            await set_legal_hold(session, conversation_id, not release)

    _run(work)
    typer.echo(f"{conversation_id}\tlegal hold {'released' if release else 'on'}")


def _restrict(contact_id: str, restricted: bool) -> None:
    from tresen.privacy.restriction import set_restricted

    async def work(runtime: Any) -> Any:
        ws = await _workspace_of(runtime, contact_id)
        async with runtime.sessions() as session, session.begin():
            await set_restricted(session, ws, contact_id, restricted, actor_id=None, via="cli")

    _run(work)
    typer.echo(f"{contact_id}\t{'restricted' if restricted else 'not restricted'}")


@privacy_app.command("restrict")
def restrict(contact_id: Annotated[str, typer.Argument(help="The contact's id.")]) -> None:
    """Restrict processing (Art. 18): data kept; no bot, replies, broadcasts, routing; audited."""
    _restrict(contact_id, True)


@privacy_app.command("unrestrict")
def unrestrict(contact_id: Annotated[str, typer.Argument(help="The contact's id.")]) -> None:
    """Lift a restriction: the contact is processed again from the next message on; audited."""
    _restrict(contact_id, False)


@privacy_app.command("proof")
def proof(
    contact_id: Annotated[str, typer.Argument(help="The contact's id (also of an erased one).")],
    out: Annotated[Path, typer.Option("--out", help="Where to write the HTML page.")],
    language: Annotated[str, typer.Option(help="de or en.")] = "de",
    lang: LangAlias = None,
    workspace: Annotated[
        str | None, typer.Option(help="Workspace id (needed for an erased contact).")
    ] = None,
) -> None:
    """Write a printable proof of consent (every consent event) as HTML; audited."""
    from tresen.db.tables import ConsentEvent
    from tresen.privacy.proof import consent_proof

    language = lang or language
    if language not in ("de", "en"):
        fail(f"--language must be de or en, got {language!r}")
    if out.exists() and out.is_dir():
        fail(f"--out {out} is a directory; name a file such as proof.html")

    async def work(runtime: Any) -> Any:
        ws = workspace
        if ws is None:
            try:
                ws = await _workspace_of(runtime, contact_id)
            except LookupError:
                async with runtime.sessions() as session:
                    found = set(
                        await session.scalars(
                            select(ConsentEvent.workspace_id).where(
                                ConsentEvent.contact_id == contact_id
                            )
                        )
                    )
                if len(found) != 1:
                    raise
                ws = found.pop()
        async with runtime.sessions() as session, session.begin():
            return await consent_proof(
                session, ws, contact_id, language=language, actor_id=None, via="cli"
            )

    page = _run(work)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page, encoding="utf-8")
    typer.echo(f"wrote {out}")


@privacy_app.command("records")
def records(
    fmt: Annotated[str, typer.Option("--format", help="md, html or json.")] = "md",
    language: Annotated[str, typer.Option(help="de or en.")] = "de",
    lang: LangAlias = None,
    workspace: Annotated[
        str | None, typer.Option(help="Workspace id (default: the only one).")
    ] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Write here instead of stdout.")] = None,
) -> None:
    """Print the records of processing activities (Art. 30) generated from the configuration."""
    from tresen.db.tables import Workspace
    from tresen.privacy.records import FORMATS, build, render

    if fmt not in FORMATS:
        fail(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    language = lang or language
    if language not in ("de", "en"):
        fail(f"--language must be de or en, got {language!r}")

    async def work(runtime: Any) -> Any:
        async with runtime.sessions() as session:
            ids = list(await session.scalars(select(Workspace.id)))
            ws = workspace or (ids[0] if len(ids) == 1 else None)
            if ws is None or ws not in ids:
                raise LookupError(
                    "name the workspace with --workspace (ids: " + ", ".join(ids) + ")"
                )
            return render(await build(session, ws, runtime.settings, language), fmt, language)

    text = _run(work)
    if out is None:
        typer.echo(text, nl=False)
    else:
        out.write_text(text, encoding="utf-8")
        typer.echo(f"wrote {out}")


@privacy_app.command("new-key")
def new_key(
    key_id: Annotated[str, typer.Argument(help="A name for the key, e.g. 2027-01.")],
) -> None:
    """Print a fresh AES-256 key as ID=KEY for TRESEN_ENCRYPTION_KEYS (put it first)."""
    from tresen.db.crypto import new_key as make
    from tresen.db.crypto import parse_keys

    line = f"{key_id}={make()}"
    try:
        parse_keys(line)
    except ValueError as exc:
        fail(str(exc))
    typer.echo(line)


@privacy_app.command("rotate-key")
def rotate_key() -> None:
    """Re-encrypt every message, note and media file (in the data dir or the S3 bucket) under
    the first key of TRESEN_ENCRYPTION_KEYS (plaintext too; "none" first decrypts); safe to run
    again. Exits 1 when a file does not open with the configured keys."""
    from tresen.privacy.encryption import NoKeys, rotate

    setup_logging("WARNING")

    async def work(runtime: Any) -> Any:
        return await rotate(runtime.engine, runtime.sessions, runtime.files)

    try:
        report = _run(work)
    except (NoKeys, StorageError) as exc:
        fail(str(exc))
    parts = ", ".join(f"{n} {table}" for table, n in report.rows.items())
    files = report.file_counts
    typer.echo(
        f"rewrote {parts}, {report.files} files "
        f"({files.current} already under the key, {files.gone} deleted meanwhile)"
    )
    if files.failed:
        typer.echo(
            f"{files.failed} files do not open with TRESEN_ENCRYPTION_KEYS (unknown key or "
            "altered) and were left as they are; keep the keys they need: "
            + ", ".join(files.failed_keys),
            err=True,
        )
        raise typer.Exit(1)
