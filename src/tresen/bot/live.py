"""The bot in the pipeline: build (and cache) a workspace's bot, answer a message, hand over."""

from __future__ import annotations

import asyncio
import logging
import time
import warnings
from collections import OrderedDict
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tresen.bot import orders, products, store
from tresen.bot.blacklist import Blacklist
from tresen.bot.engine import Bot, Turn, summary
from tresen.bot.flows import FlowError, FlowSpec, parse_flow
from tresen.bot.kb import KnowledgeBase
from tresen.bot.llm import llm_enabled, phrase_turn
from tresen.bot.matcher import Matcher
from tresen.bot.persona import Persona
from tresen.bot.products import Catalog
from tresen.channels.base import Capabilities, channel_factory
from tresen.db.tables import (
    BotConfig,
    BotConversation,
    BotTurn,
    ChannelRow,
    Conversation,
    Message,
    Note,
)
from tresen.db.types import utcnow
from tresen.domain.ids import new_id
from tresen.domain.message import ContentKind, Direction, SenderKind
from tresen.events import CONVERSATION_UPDATED, MESSAGE_NEW, Event
from tresen.inbox import routing
from tresen.jobs import queue
from tresen.jobs.queue import ClaimedJob
from tresen.pipeline.outbound import OutboundContent, OutboundRefused, queue_message
from tresen.runtime import Runtime

log = logging.getLogger(__name__)
ACTION_JOB = "bot.action"

CACHE_SIZE = 64
INTERACTIVE_BODY_MAX = 1024  # WhatsApp's limit for the body of a button message
_cache: OrderedDict[str, tuple[int, Bot]] = OrderedDict()
_locks: dict[str, asyncio.Lock] = {}


@dataclass(frozen=True)
class Outcome:
    """What the bot did with a message; `route` says the conversation belongs in the inbox queue."""

    route: bool
    sent: int = 0
    handover: str | None = None


def _persona(config: BotConfig) -> Persona:
    raw: dict[str, Any] = dict(config.persona or {})
    try:
        return Persona(
            name=str(raw.get("name", "Tresi")),
            business=str(raw.get("business") or config.business),
            form=str(raw.get("form", "sie")),
            emoji=bool(raw.get("emoji", True)),
            default_language=config.language,
            texts=raw.get("texts") or {},
        )
    except ValueError:
        log.warning(
            "bot persona of workspace %s is invalid; using the default", config.workspace_id
        )
        return Persona(business=config.business, default_language=config.language)


def _flows(config: BotConfig, catalog: Catalog) -> dict[str, FlowSpec]:
    specs: dict[str, FlowSpec] = {}
    sources = {"category": tuple(catalog.categories()), "brand": tuple(catalog.brands())}
    for n, raw in enumerate((config.flows or {}).get("flows", []), start=1):
        try:
            spec = parse_flow(raw, f"flow {n}")
        except FlowError:
            log.warning("flow %d of workspace %s is invalid; skipped", n, config.workspace_id)
            continue
        # Choices named by the catalog ("choices_from: category") are its current values.
        slots = tuple(
            replace(s, choices=s.choices + sources[s.choices_from]) if s.choices_from else s
            for s in spec.slots
        )
        specs[spec.id] = replace(spec, slots=slots)
    return specs


def build_bot(
    kb: KnowledgeBase,
    persona: Persona,
    blacklist: Blacklist,
    flows: dict[str, FlowSpec],
    entry_flows: dict[str, str],
    catalog: Catalog | None = None,
) -> Bot:
    """Fit the matcher (with its calibrated "don't know") and put the bot together."""
    texts, labels = kb.training_rows()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        matcher = Matcher(default_language=kb.language).fit(texts, labels)
    return Bot(kb, matcher, persona, blacklist, flows, entry_flows, catalog or Catalog(()))


async def bot_for(sessions: async_sessionmaker[AsyncSession], workspace_id: str) -> Bot | None:
    """The workspace's bot, rebuilt only when its KB version changed; None when off or empty."""
    async with sessions() as session:
        config = await session.get(BotConfig, workspace_id)
        if config is None or not config.enabled:
            return None
        version = config.kb_version
        hit = _cache.get(workspace_id)
        if hit is not None and hit[0] == version:
            _cache.move_to_end(workspace_id)
            return hit[1]
        rows = await store.entries(session, workspace_id)
        kb = store.to_kb(config, rows)
        entry_flows = {r.key: str(r.content["flow"]) for r in rows if r.content.get("flow")}
        catalog = products.from_rows(await store.products(session, workspace_id))
        persona, flows = _persona(config), _flows(config, catalog)
        blacklist = Blacklist.of((config.blacklist or {}).get("terms", []))
    if not kb.entries:
        return None
    lock = _locks.setdefault(workspace_id, asyncio.Lock())
    async with lock:
        hit = _cache.get(workspace_id)
        if hit is not None and hit[0] == version:
            return hit[1]
        started = time.perf_counter()
        bot = await asyncio.to_thread(
            build_bot, kb, persona, blacklist, flows, entry_flows, catalog
        )
        log.info(
            "bot of workspace %s built (KB version %d, %d entries) in %.2fs",
            workspace_id,
            version,
            len(kb.entries),
            time.perf_counter() - started,
        )
        _cache[workspace_id] = (version, bot)
        _cache.move_to_end(workspace_id)
        while len(_cache) > CACHE_SIZE:
            _cache.popitem(last=False)
    return bot


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
        text = summary(turn.state, bot.kb, reason, message.body or "")
        memory.handed_over_at = now
        memory.handover_reason = reason
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


async def reset(session: AsyncSession, conversation_id: str) -> None:
    """The conversation was resolved: the bot may answer again and starts afresh."""
    await session.execute(
        update(BotConversation)
        .where(BotConversation.conversation_id == conversation_id)
        .values(handed_over_at=None, state={}, updated_at=utcnow())
    )
