"""`tresen template ...`: message templates submitted for review, synced, listed."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

import typer

from tresen.clitools import cli_settings, fail, with_session
from tresen.net.guard import UrlRefused, guarded_client

template_app = typer.Typer(no_args_is_help=True, help="Message templates (WhatsApp).")


def _run(work: Any) -> Any:
    from tresen.channels.base import ChannelError
    from tresen.pipeline.templates import TemplateError

    settings = cli_settings()

    async def wrapped(session: Any) -> Any:
        from tresen.db.tables import ChannelRow

        async with guarded_client(settings.outbound_allow_hosts) as http:
            return await work(session, http, ChannelRow)

    try:
        return asyncio.run(with_session(settings, wrapped))
    except TemplateError as exc:
        fail(str(exc))
    except ChannelError as exc:
        fail(f"the provider refused: {exc}")
    except UrlRefused as exc:
        fail(f"the provider's API was not called: {exc}")


async def _channel(session: Any, row_type: Any, channel_id: str) -> Any:
    from tresen.pipeline.templates import TemplateError

    channel = await session.get(row_type, channel_id)
    if channel is None:
        raise TemplateError(
            "no_such_channel",
            "no channel {channel_id!r} (see `tresen channel list`)",
            404,
            params={"channel_id": channel_id},
        )
    return channel


@template_app.command("add")
def template_add(
    channel_id: str,
    name: Annotated[str, typer.Option(help="lowercase_with_underscores")],
    body: Annotated[str, typer.Option(help="Text with {{1}}, {{2}} … for values.")],
    language: Annotated[str, typer.Option(help="de, en, en_US …")] = "de",
    category: Annotated[str, typer.Option(help="utility, marketing or authentication")] = "utility",
) -> None:
    """Submit a template for the provider's review; it can be sent once approved."""
    from tresen.pipeline import templates

    async def work(session: Any, http: Any, row_type: Any) -> str:
        draft = templates.check_draft(name, language, category, body)
        channel = await _channel(session, row_type, channel_id)
        row = await templates.submit(session, http, channel, draft)
        return f"{row.name} ({row.language}): {row.status}"

    typer.echo(_run(work))


@template_app.command("sync")
def template_sync(channel_id: str) -> None:
    """Fetch every template and its review state from the provider."""
    from tresen.pipeline import templates

    async def work(session: Any, http: Any, row_type: Any) -> list[str]:
        channel = await _channel(session, row_type, channel_id)
        rows = await templates.sync(session, http, channel)
        return [_line(t) for t in rows]

    for line in _run(work):
        typer.echo(line)


@template_app.command("list")
def template_list(channel_id: str) -> None:
    """Print the templates tresen knows for a channel (run `sync` for fresh states)."""
    from sqlalchemy import select

    from tresen.db.tables import MessageTemplate

    async def work(session: Any, http: Any, row_type: Any) -> list[str]:
        await _channel(session, row_type, channel_id)
        rows = await session.scalars(
            select(MessageTemplate)
            .where(MessageTemplate.channel_id == channel_id)
            .order_by(MessageTemplate.name, MessageTemplate.language)
        )
        return [_line(t) for t in rows]

    for line in _run(work):
        typer.echo(line)


def _line(t: Any) -> str:
    reason = f" ({t.rejected_reason})" if t.rejected_reason else ""
    return f"{t.name}\t{t.language}\t{t.category}\t{t.status}{reason}\t{t.body}"
