"""The bot's turn in the pipeline: answer a stored message, run a slow action, hand over."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tresen import metrics
from tresen.bot import orders
from tresen.bot.engine import Bot, Turn
from tresen.bot.live import bot_for
from tresen.bot.llm import llm_enabled, phrase_turn
from tresen.channels.base import Capabilities
from tresen.channels.registry import channel_factory
from tresen.db import outbox
from tresen.db.tables import (
    BotConversation,
    BotTurn,
    ChannelRow,
    Conversation,
    Media,
    Message,
    Note,
)
from tresen.db.types import utcnow
from tresen.domain.events import BotHandedOver
from tresen.domain.ids import new_id
from tresen.domain.message import ContentKind, Direction, SenderKind
from tresen.events import CONVERSATION_UPDATED, MESSAGE_NEW, Event
from tresen.inbox import routing
from tresen.jobs import queue
from tresen.jobs.queue import ClaimedJob
from tresen.pipeline.outbound import OutboundContent, OutboundRefused, queue_message
from tresen.runtime import Runtime

__all__ = ["ACTION_JOB", "Outcome", "action_job", "bot_for", "handle"]

log = logging.getLogger(__name__)
ACTION_JOB = "bot.action"
INTERACTIVE_BODY_MAX = 1024  # WhatsApp's limit for the body of a button message


@dataclass(frozen=True)
class Outcome:
    """What the bot did with a message; `route` says the conversation belongs in the inbox queue."""

    route: bool
    sent: int = 0
    handover: str | None = None


def _contents(turn: Turn, caps: Capabilities) -> list[OutboundContent]:
    """The turn as one message: separate send jobs could deliver two parts out of order."""
    if not turn.texts:
        return []
    text = "\n\n".join(turn.texts)
    buttons = turn.buttons
    fits = (
        caps.interactive
        and 0 < len(buttons) <= caps.max_buttons
        and all(len(b) <= caps.max_button_title for b in buttons)
        and len(text) <= INTERACTIVE_BODY_MAX
    )
    if fits:
        payload = {
            "buttons": [{"id": f"bot_choice_{n}", "title": b} for n, b in enumerate(buttons, 1)]
        }
        return [OutboundContent(ContentKind.INTERACTIVE, text, payload)]
    if buttons:
        text += "\n" + "\n".join(f"{n}. {b}" for n, b in enumerate(buttons, start=1))
    if len(text) > caps.max_text_length:
        text = text[: caps.max_text_length - 1] + "…"
    return [OutboundContent(ContentKind.TEXT, text)]


async def _context(
    session: AsyncSession, message_id: str
) -> tuple[Message, Conversation, ChannelRow] | None:
    row = (
        await session.execute(
            select(Message, Conversation, ChannelRow)
            .join(Conversation, Conversation.id == Message.conversation_id)
            .join(ChannelRow, ChannelRow.id == Message.channel_id)
            .where(Message.id == message_id)
        )
    ).first()
    return None if row is None else (row[0], row[1], row[2])


async def _kind(session: AsyncSession, message: Message) -> str:
    """What the message carries, as the bot tells it apart: text, or which kind of file."""
    if message.content_kind != ContentKind.MEDIA.value:
        return str(message.content_kind)
    media = await session.scalar(
        select(Media.kind).where(Media.message_id == message.id).order_by(Media.id).limit(1)
    )
    return str(media or "media")


async def handle(
    session: AsyncSession, bot: Bot | None, message_id: str, *, phrasing: bool = False
) -> Outcome:
    """Let the bot answer one inbound message (the caller checked consent) in the caller's transaction."""
    found = await _context(session, message_id)
    if found is None:
        return Outcome(route=False)
    message, conversation, channel = found
    if bot is None or message.direction != Direction.INBOUND.value:
        return Outcome(route=True)
    if message.content_kind == ContentKind.REACTION.value:
        return Outcome(route=False)  # a 👍 to the bot's answer needs no reply
    if conversation.assignee_id is not None or conversation.queued_at is not None:
        return Outcome(route=True)  # a person has it, or it waits for one: the bot stays silent
    # Two messages of one conversation processed at once: the second waits for the first's state.
    memory = await session.get(BotConversation, conversation.id, with_for_update=True)
    if memory is not None and memory.handed_over_at is not None:
        return Outcome(route=True)  # handed over and not resolved since
    caps = channel_factory(channel.kind).capabilities
    turn = bot.respond(
        message.body or "",
        memory.state if memory is not None else {},
        time.time(),
        supports_buttons=caps.interactive and caps.max_buttons >= 2,
        conversation=conversation.id,
        kind=await _kind(session, message),
    )
    if memory is None:
        memory = BotConversation(
            conversation_id=conversation.id, workspace_id=conversation.workspace_id, state={}
        )
        session.add(memory)
    if turn.action is not None or (phrasing and turn.facts and not turn.handover):
        # I/O (the shop, a language model) happens in a job, outside this transaction; what it
        # needs (the order number and second factor) stays in the bot's state, not the job.
        pending = turn.action or {"kind": "phrase", "turn": _turn_data(turn)}
        memory.state = {**turn.state, "pending": pending}
        memory.updated_at = utcnow()
        queue.enqueue(
            session,
            ACTION_JOB,
            {"message_id": message.id, "conversation_id": conversation.id},
            workspace_id=conversation.workspace_id,
            max_attempts=3,
        )
        await session.flush()
        return Outcome(route=False)
    return await _apply(session, bot, turn, message, conversation, channel, memory)


async def _apply(
    session: AsyncSession,
    bot: Bot,
    turn: Turn,
    message: Message,
    conversation: Conversation,
    channel: ChannelRow,
    memory: BotConversation,
) -> Outcome:
    """Queue the turn's reply, store the state, record the turn; hand over when it says so."""
    caps = channel_factory(channel.kind).capabilities
    now = utcnow()
    sent = 0
    refused = False
    for content in _contents(turn, caps):
        try:
            await queue_message(session, conversation, channel, content, sender_kind=SenderKind.BOT)
            sent += 1
        except OutboundRefused as exc:
            log.warning("bot reply in %s refused: %s", conversation.id, exc.code)
            refused = True
            break
    reason = turn.handover or ("cannot_send" if refused else None)
    memory.state = {k: v for k, v in turn.state.items() if k != "pending"}
    memory.updated_at = now
    if reason is not None:
        media = turn.state.get("media") if isinstance(turn.state.get("media"), str) else None
        text = bot.summary(turn.state, reason, message.body or "", media)
        memory.handed_over_at = now
        memory.handover_reason = reason
        outbox.record(session, BotHandedOver(conversation.workspace_id, conversation.id, reason))
        memory.handover_summary = text
        session.add(
            Note(
                id=new_id(),
                workspace_id=conversation.workspace_id,
                conversation_id=conversation.id,
                author_id=None,
                body=text,
                created_at=now,
            )
        )
    session.add(
        BotTurn(
            workspace_id=conversation.workspace_id,
            conversation_id=conversation.id,
            message_id=message.id,
            outcome="handover" if reason else turn.outcome,
            reason=reason,
            faq_key=turn.faq_key,
            score=turn.score,
            occurred_at=now,
        )
    )
    await session.flush()
    metrics.BOT_OUTCOMES.labels(outcome="handover" if reason else turn.outcome).inc()
    return Outcome(route=reason is not None, sent=sent, handover=reason)


def _turn_data(turn: Turn) -> dict[str, Any]:
    return {
        "outcome": turn.outcome,
        "texts": list(turn.texts),
        "language": turn.language,
        "buttons": list(turn.buttons),
        "faq_key": turn.faq_key,
        "score": turn.score,
        "facts": turn.facts,
    }


def _turn_from(data: dict[str, Any], state: dict[str, Any]) -> Turn:
    return Turn(
        str(data["outcome"]),
        tuple(data["texts"]),
        state,
        str(data["language"]),
        tuple(data.get("buttons") or ()),
        data.get("faq_key"),
        data.get("score"),
        facts=data.get("facts"),
    )


async def action_job(runtime: Runtime, job: ClaimedJob, worker_id: str) -> None:
    """The I/O part of a bot turn: look the order up and/or phrase the answer, then reply."""
    message_id = str(job.payload.get("message_id", ""))
    conversation_id = str(job.payload.get("conversation_id", ""))
    bot = await bot_for(runtime.sessions, job.workspace_id) if job.workspace_id else None
    async with runtime.sessions() as session:
        memory = await session.get(BotConversation, conversation_id)
        pending = dict((memory.state or {}).get("pending") or {}) if memory else {}
        customer_text = await session.scalar(select(Message.body).where(Message.id == message_id))
    settings = runtime.settings
    turn: Turn | None = None
    if bot is not None and pending.get("kind") == "order_status":
        state = dict(memory.state) if memory else {}
        found = await orders.lookup(
            runtime.http,
            settings.shop_url,
            settings.shop_token,
            pending.get("order"),
            pending.get("factor"),
            settings.shop_timeout_seconds,
        )
        language = str(state.get("language") or bot.kb.language)
        turn = bot.order_result(state, language, pending, found, time.time())
    elif bot is not None and pending.get("kind") == "phrase":
        turn = _turn_from(pending["turn"], dict(memory.state) if memory else {})
    if bot is not None and turn is not None and not turn.handover and llm_enabled(settings):
        turn = await phrase_turn(
            runtime.http, settings, bot, turn, customer_text=customer_text or ""
        )
    outcome = Outcome(route=False)
    async with runtime.sessions() as session, session.begin():
        found_ctx = await _context(session, message_id)
        memory = await session.get(BotConversation, conversation_id, with_for_update=True)
        if (
            turn is not None
            and bot is not None
            and found_ctx is not None
            and memory is not None
            and memory.handed_over_at is None
            and found_ctx[1].assignee_id is None
            and found_ctx[1].queued_at is None
            and (memory.state or {}).get("pending") == pending
        ):
            message, conversation, channel = found_ctx
            outcome = await _apply(session, bot, turn, message, conversation, channel, memory)
            if outcome.route:
                await routing.route_for_message(session, message_id)
        await queue.finish(session, job.id, worker_id)
    runtime.jobs_ready.set()
    if job.workspace_id and (outcome.sent or outcome.handover):
        kind = CONVERSATION_UPDATED if outcome.handover else MESSAGE_NEW
        await runtime.events.publish(Event(job.workspace_id, kind, conversation_id))
