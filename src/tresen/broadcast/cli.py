"""`tresen topic ...` and `tresen notifications ...`: topics customers subscribe to, the shop's webhook."""

from __future__ import annotations

import asyncio
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
