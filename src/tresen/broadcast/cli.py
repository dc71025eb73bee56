"""`tresen topic ...` and `tresen notifications ...`: topics customers subscribe to, the shop's webhook."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated, Any

import typer

from tresen.clitools import cli_settings, fail, with_session

topic_app = typer.Typer(no_args_is_help=True, help="Topics customers subscribe to (double opt-in).")
notifications_app = typer.Typer(
    no_args_is_help=True, help="Transactional notifications sent through the API."
)


def _run(work: Any) -> Any:
    from tresen.broadcast.topics import TopicError
    from tresen.integrations.notifications import NotificationError

    try:
        return asyncio.run(with_session(cli_settings(), work))
    except (TopicError, NotificationError) as exc:
        fail(exc.message)
    except ValueError as exc:
        fail(str(exc))


@topic_app.command("add")
def topic_add(
    keyword: str,
    name: Annotated[str, typer.Option(help="Shown to customers, e.g. Live-Ticker.")],
    description_de: Annotated[str, typer.Option(help="What the topic is about (German).")] = "",
    description_en: Annotated[str, typer.Option(help="What the topic is about (English).")] = "",
) -> None:
    """Create a topic; customers write START KEYWORD to subscribe and STOP KEYWORD to leave."""
    from tresen.broadcast import topics
    from tresen.channels.manage import default_workspace

    async def work(session: Any) -> str:
        ws = await default_workspace(session)
        descriptions = {k: v for k, v in (("de", description_de), ("en", description_en)) if v}
        topic = await topics.create_topic(session, ws.id, keyword, name, descriptions)
        return f"{topic.id}\t{topic.keyword}\t{topic.name}"

    typer.echo(_run(work))


@topic_app.command("list")
def topic_list() -> None:
    """Topics with their counts of confirmed and pending subscriptions."""
    from sqlalchemy import func, select

    from tresen.channels.manage import default_workspace
    from tresen.db.tables import Subscription, Topic

    async def work(session: Any) -> list[str]:
        ws = await default_workspace(session)
        counts = dict(
            (
                await session.execute(
                    select(Subscription.topic_id + ":" + Subscription.state, func.count()).group_by(
                        Subscription.topic_id, Subscription.state
                    )
                )
            ).all()
        )
        rows = await session.scalars(
            select(Topic).where(Topic.workspace_id == ws.id).order_by(Topic.keyword)
        )
        return [
            f"{t.id}\t{t.keyword}\t{t.name}\tconfirmed={counts.get(t.id + ':confirmed', 0)}"
            f"\tpending={counts.get(t.id + ':pending', 0)}"
            for t in rows
        ]

    for line in _run(work):
        typer.echo(line)


@topic_app.command("links")
def topic_links(
    topic: Annotated[str, typer.Argument(help="The topic's keyword or id.")],
    qr_out: Annotated[
        Path | None,
        typer.Option(help="Write per channel a QR code (SVG and PNG) and the share snippet here."),
    ] = None,
    language: Annotated[str, typer.Option(help="Language of the snippet text: de or en.")] = "de",
) -> None:
    """Print per channel the click-to-chat link that subscribes to TOPIC (START keyword)."""
    from tresen.broadcast import clicktochat, topics
    from tresen.channels.manage import default_workspace

    if language not in ("de", "en"):
        fail("--language is de or en")
    settings = cli_settings()

    async def work(session: Any) -> tuple[Any, list[clicktochat.ChatLink]]:
        ws = await default_workspace(session)
        found = await topics.find_topic(session, ws.id, topic)
        if found is None:
            raise ValueError(f"no topic {topic!r}; see `tresen topic list`")
        return found, await clicktochat.links_for_topic(session, ws.id, found, settings.base_url)

    found, chat_links = _run(work)
    if not chat_links:
        fail("no channel with click-to-chat links (whatsapp, telegram, messenger, webchat, sms)")
    if qr_out is not None:
        qr_out.mkdir(parents=True, exist_ok=True)
    for link in chat_links:
        head = f"{link.kind}\t{link.channel_name}\t"
        if link.url is None:
            option = "--" + str(link.missing).split()[0].replace("_", "-")
            typer.echo(
                f"{head}missing: {link.missing}; set it with "
                f"`tresen channel set {link.channel_id} {option} VALUE`"
            )
            continue
        typer.echo(head + link.url)
        if link.hint:
            typer.echo(f"  hint: set {link.hint}")
        if qr_out is not None:
            stem = qr_out / f"{found.keyword}-{link.kind}-{link.channel_id}"
            stem.with_suffix(".svg").write_text(clicktochat.qr_svg(link.url), encoding="utf-8")
            stem.with_suffix(".png").write_bytes(clicktochat.qr_png(link.url))
            snippet = clicktochat.share_snippet(link, found, language)
            stem.with_suffix(".html").write_text(snippet + "\n", encoding="utf-8")
            typer.echo(f"  wrote {stem}.svg, .png, .html")


@topic_app.command("import")
def topic_import(
    file: Annotated[Path, typer.Argument(help="CSV (UTF-8) with a consent-proof per row.")],
    topic: Annotated[str, typer.Option(help="The topic's keyword or id.")],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Check every row and report; write nothing.")
    ] = False,
    skip_invalid: Annotated[
        bool,
        typer.Option("--skip-invalid", help="Import the good rows even when others are refused."),
    ] = False,
) -> None:
    """Import confirmed subscribers; rows without proof of consent are refused by line.

    Columns: channel (id, name or kind), address (phone with country code, chat id or
    e-mail), consent_source, consent_at (ISO 8601), consent_text_version and/or
    consent_proof; optional: language (de/en), name, link_tracking (yes/no).
    Without --skip-invalid nothing is imported while any row is refused (exit code 1).
    """
    from tresen.broadcast import importer, topics
    from tresen.channels.manage import default_workspace

    try:
        data = file.read_bytes()
    except OSError as exc:
        fail(f"cannot read {file}: {exc.strerror or exc}")
    settings = cli_settings()

    async def work(session: Any) -> importer.ImportReport:
        ws = await default_workspace(session)
        found = await topics.find_topic(session, ws.id, topic)
        if found is None:
            raise ValueError(f"no topic {topic!r}; see `tresen topic list`")
        return await importer.import_subscribers(
            session,
            secret_key=settings.secret_key,
            workspace_id=ws.id,
            topic=found,
            data=data,
            dry_run=dry_run,
            skip_invalid=skip_invalid,
        )

    try:
        report = asyncio.run(with_session(settings, work))
    except importer.ImportFileError as exc:
        fail(f"{file}: {exc}")
    except ValueError as exc:
        fail(str(exc))
    for line in report.lines():
        typer.echo(line)
    if report.problems and not report.written:
        if not dry_run:
            typer.echo("nothing imported; fix or remove the refused lines, or use --skip-invalid")
        raise typer.Exit(1)


@notifications_app.command("webhook")
def notifications_webhook(
    url: Annotated[str, typer.Argument(help="The shop's HTTPS endpoint for status events.")] = "",
    off: Annotated[bool, typer.Option("--off", help="Stop sending status events.")] = False,
) -> None:
    """Set the URL that gets signed status events; prints the new signing secret once."""
    from tresen.channels.manage import default_workspace
    from tresen.integrations.notifications import set_webhook

    if not off and not url:
        fail("give the webhook URL, or --off")

    async def work(session: Any) -> str | None:
        ws = await default_workspace(session)
        return await set_webhook(session, ws.id, None if off else url)

    try:
        secret = _run(work)
    except ValueError as exc:
        fail(str(exc))
    typer.echo("webhook removed" if secret is None else secret)
