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
    try:
        return asyncio.run(with_session(cli_settings(), work))
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
            secret_key=settings.suppression_keys,
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


broadcast_app = typer.Typer(
    no_args_is_help=True, help="Broadcast campaigns to a topic's subscribers."
)


def _campaign_run(work: Any) -> Any:
    return asyncio.run(with_session(cli_settings(), work))


def _content_option(
    text: str, template: str, params: list[str], media: str, buttons: list[str]
) -> dict[str, Any]:
    content: dict[str, Any] = {"text": text}
    if media:
        content["media"] = {"link": media, "media_type": "image"}
    if buttons:
        content["buttons"] = [
            {"id": f"b{i}", "title": title} for i, title in enumerate(buttons, start=1)
        ]
    if template:
        name, _, language = template.partition(":")
        content["channels"] = {
            "whatsapp": {
                "template": {"name": name, "language": language or "de", "parameters": params}
            }
        }
    return content


segment_app = typer.Typer(no_args_is_help=True, help="Saved segments (named audience filters).")
broadcast_app.add_typer(segment_app, name="segment")


def _json_object(raw: str, option: str) -> dict[str, Any]:
    import json

    try:
        value = json.loads(raw) if raw else {}
    except ValueError:
        fail(f"{option} must be JSON")
    if not isinstance(value, dict):
        fail(f"{option} must be a JSON object")
    return value


def _filter_option(filter_json: str) -> dict[str, Any]:
    return _json_object(filter_json, "--filter")


@segment_app.command("save")
def segment_save(
    name: str,
    filter_json: Annotated[
        str, typer.Option("--filter", help='e.g. {"topic": "ticker", "language": "de"}')
    ],
) -> None:
    """Create or replace a named segment; prints its id, name and how many it matches now."""
    from tresen.broadcast import segments
    from tresen.channels.manage import default_workspace

    flt = _filter_option(filter_json)

    async def work(session: Any) -> str:
        ws = await default_workspace(session)
        row = await segments.save_segment(session, ws.id, name, flt)
        n = await segments.count(session, ws.id, row.filter or {})
        return f"{row.id}\t{row.name}\tmatches {n} now"

    typer.echo(_campaign_run(work))


@segment_app.command("list")
def segment_list() -> None:
    """Saved segments: id, name, filter, how many each matches now."""
    import json

    from sqlalchemy import select

    from tresen.broadcast import segments
    from tresen.channels.manage import default_workspace
    from tresen.db.tables import Segment

    async def work(session: Any) -> list[str]:
        ws = await default_workspace(session)
        rows = list(
            await session.scalars(
                select(Segment).where(Segment.workspace_id == ws.id).order_by(Segment.name)
            )
        )
        return [
            f"{row.id}\t{row.name}\t{json.dumps(row.filter, ensure_ascii=False)}\t"
            f"matches {await segments.count(session, ws.id, row.filter or {})} now"
            for row in rows
        ]

    for line in _campaign_run(work):
        typer.echo(line)


@broadcast_app.command("create")
def broadcast_create(
    name: str,
    topic: Annotated[
        str, typer.Option(help="Topic keyword: the campaign goes to its subscribers.")
    ],
    text: Annotated[
        str, typer.Option(help="The message; {first_name}, {name} etc. are filled in.")
    ],
    template: Annotated[
        str, typer.Option(help="WhatsApp template NAME[:LANGUAGE] for closed windows.")
    ] = "",
    param: Annotated[list[str], typer.Option(help="A template parameter (repeat).")] = [],  # noqa: B006
    media: Annotated[str, typer.Option(help="An image URL sent with the text.")] = "",
    button: Annotated[list[str], typer.Option(help="A reply button title (repeat).")] = [],  # noqa: B006
    channel: Annotated[
        list[str], typer.Option(help="Only these channels (kind, name or id).")
    ] = [],  # noqa: B006
    content_json: Annotated[
        str,
        typer.Option(
            "--content",
            help='Content as JSON with per-channel parts, e.g. {"channels": {"telegram": '
            '{"text": "…", "buttons": [{"id": "a", "title": "Ja"}]}}}; merged over the options.',
        ),
    ] = "",
    segment: Annotated[str, typer.Option(help="A saved segment (name or id).")] = "",
    filter_json: Annotated[str, typer.Option("--filter", help="A segment filter as JSON.")] = "",
    time_zone: Annotated[str, typer.Option(help="Default: the workspace's.")] = "",
    quiet_hours: Annotated[
        str, typer.Option(help="No sending then, e.g. 21:00-08:00, or none.")
    ] = "21:00-08:00",
    frequency_cap: Annotated[
        int | None,
        typer.Option(
            help="At most N broadcasts per person in 7 days (0: no cap; default "
            "TRESEN_BROADCAST_WEEKLY_CAP)."
        ),
    ] = None,
) -> None:
    """Create a draft campaign; prints its id and how many it would reach now."""

    from tresen.broadcast import campaigns
    from tresen.channels.manage import default_workspace

    flt = _filter_option(filter_json)
    content = _content_option(text, template, list(param), media, list(button))
    if content_json:
        extra = _json_object(content_json, "--content")
        channels = {**content.get("channels", {})}
        for kind, part in (extra.pop("channels", None) or {}).items():
            if not isinstance(part, dict):
                fail(f"--content: channels.{kind} must be a JSON object")
            channels[kind] = {**channels.get(kind, {}), **part}
        content = {**content, **extra, **({"channels": channels} if channels else {})}
    cap = cli_settings().broadcast_weekly_cap if frequency_cap is None else frequency_cap

    async def work(session: Any) -> str:
        ws = await default_workspace(session)
        campaign = await campaigns.create_campaign(
            session,
            ws.id,
            name=name,
            topic=topic,
            content=content,
            channels=list(channel),
            segment=segment or None,
            filter=flt,
            time_zone=time_zone or None,
            quiet_hours=quiet_hours,
            frequency_cap=cap,
        )
        reach = await campaigns.audience_estimate(session, campaign)
        return f"{campaign.id}\t{campaign.name}\tdraft\treaches {reach} now"

    typer.echo(_campaign_run(work))


def _transition(ref: str, action: str, **kwargs: Any) -> None:
    from tresen.broadcast import campaigns
    from tresen.channels.manage import default_workspace

    async def work(session: Any) -> str:
        ws = await default_workspace(session)
        campaign = await campaigns.find_campaign(session, ws.id, ref)
        moved = await getattr(campaigns, action)(session, campaign, **kwargs)
        return f"{moved.id}\t{moved.name}\t{moved.state}"

    typer.echo(_campaign_run(work))


@broadcast_app.command("schedule")
def broadcast_schedule(
    campaign: str,
    at: Annotated[str, typer.Option(help="Local time YYYY-MM-DD HH:MM in the campaign's zone.")],
) -> None:
    """Send from a time on (in the campaign's time zone)."""
    from tresen.broadcast import campaigns
    from tresen.channels.manage import default_workspace

    async def work(session: Any) -> str:
        ws = await default_workspace(session)
        row = await campaigns.find_campaign(session, ws.id, campaign)
        when = campaigns.parse_local_time(at, row.time_zone)
        moved = await campaigns.schedule(session, row, when)
        return f"{moved.id}\t{moved.name}\tscheduled for {when.isoformat()} UTC"

    typer.echo(_campaign_run(work))


@broadcast_app.command("start")
def broadcast_start(campaign: str) -> None:
    """Start now (a running worker fixes the audience and sends)."""
    _transition(campaign, "start")


@broadcast_app.command("pause")
def broadcast_pause(campaign: str) -> None:
    """Stop sending for now."""
    _transition(campaign, "pause")


@broadcast_app.command("resume")
def broadcast_resume(campaign: str) -> None:
    """Carry on after a pause."""
    _transition(campaign, "resume")


@broadcast_app.command("cancel")
def broadcast_cancel(campaign: str) -> None:
    """End the campaign; nobody still waiting gets it."""
    _transition(campaign, "cancel")


@broadcast_app.command("test")
def broadcast_test(
    campaign: str,
    to: Annotated[
        str, typer.Option(help="Your own address (phone number, chat id) on the channel.")
    ],
    channel: Annotated[str, typer.Option(help="Channel kind, name or id.")] = "whatsapp",
) -> None:
    """Send the campaign once to your own address (which must have written to you before)."""
    from tresen.broadcast import campaigns
    from tresen.channels.manage import default_workspace

    async def work(session: Any) -> str:
        ws = await default_workspace(session)
        row = await campaigns.find_campaign(session, ws.id, campaign)
        return await campaigns.test_send(session, row, channel, to)

    typer.echo(f"queued test message {_campaign_run(work)}")


@broadcast_app.command("list")
def broadcast_list() -> None:
    """Campaigns, newest first: id, name, state, audience."""
    from sqlalchemy import select

    from tresen.channels.manage import default_workspace
    from tresen.db.tables import Campaign

    async def work(session: Any) -> list[str]:
        ws = await default_workspace(session)
        rows = await session.scalars(
            select(Campaign)
            .where(Campaign.workspace_id == ws.id)
            .order_by(Campaign.created_at.desc())
        )
        return [f"{c.id}\t{c.name}\t{c.state}\taudience={c.audience}" for c in rows]

    for line in _campaign_run(work):
        typer.echo(line)


@broadcast_app.command("report")
def broadcast_report(campaign: str) -> None:
    """The campaign's figures as one JSON line."""
    import json

    from tresen.broadcast import campaigns, report
    from tresen.channels.manage import default_workspace

    async def work(session: Any) -> dict[str, Any]:
        ws = await default_workspace(session)
        row = await campaigns.find_campaign(session, ws.id, campaign)
        return (await report.build(session, row)).to_json()

    typer.echo(json.dumps(_campaign_run(work), ensure_ascii=False))


@broadcast_app.command("watch")
def broadcast_watch(
    campaign: str,
    interval: Annotated[float, typer.Option(min=0.2, help="Seconds between looks.")] = 1.0,
) -> None:
    """Follow a campaign with a progress bar until it is done, cancelled or paused."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    from tresen.broadcast import campaigns
    from tresen.channels.manage import default_workspace

    async def look(session: Any) -> tuple[str, str, int, dict[str, int]]:
        ws = await default_workspace(session)
        row = await campaigns.find_campaign(session, ws.id, campaign)
        return row.name, row.state, row.audience, await campaigns.progress(session, row.id)

    import time

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[detail]}"),
        TimeRemainingColumn(),
    ) as bar:
        task = bar.add_task("", total=None, detail="")
        while True:
            name, state, audience, counts = _campaign_run(look)
            done = sum(counts.get(k, 0) for k in ("sent", "skipped", "failed", "cancelled"))
            bar.update(
                task,
                description=f"{name} ({state})",
                total=audience or None,
                completed=done,
                detail=f"sent {counts.get('sent', 0)} skipped {counts.get('skipped', 0)} "
                f"failed {counts.get('failed', 0)}",
            )
            if state in ("done", "cancelled", "paused", "draft"):
                break
            time.sleep(interval)
    typer.echo(f"{name}: {state}")
