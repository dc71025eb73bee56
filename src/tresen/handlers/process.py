"""The slower work after a message is stored: opt-out, consent, subscriptions, the bot or
auto-replies, then routing."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tresen.bot.engine import Bot
from tresen.bot.llm import llm_enabled
from tresen.broadcast import topics, tracking
from tresen.channels.messenger import STANDBY
from tresen.db.tables import Contact, Conversation, Message
from tresen.events import CONVERSATION_UPDATED, MESSAGE_NEW, Event
from tresen.handlers import bot_turn as live
from tresen.handlers.bot_turn import Outcome
from tresen.inbox import autoreply, routing
from tresen.jobs import queue
from tresen.jobs.queue import ClaimedJob
from tresen.pipeline import options
from tresen.privacy import consent
from tresen.runtime import Runtime

PROCESS_JOB = "inbound.process"
PROCESS_ATTEMPTS = 5


async def _consent_state(session: AsyncSession, message_id: str) -> str | None:
    return await session.scalar(
        select(Contact.consent_state)
        .join(Conversation, Conversation.contact_id == Contact.id)
        .join(Message, Message.conversation_id == Conversation.id)
        .where(Message.id == message_id)
    )


async def _restricted_conversation(session: AsyncSession, message_id: str) -> str | None:
    """The message's conversation id when its contact is restricted, else None."""
    return await session.scalar(
        select(Conversation.id)
        .join(Contact, Contact.id == Conversation.contact_id)
        .join(Message, Message.conversation_id == Conversation.id)
        .where(Message.id == message_id, Contact.restricted_at.is_not(None))
    )


async def _read_along_conversation(session: AsyncSession, message_id: str) -> str | None:
    """The message's conversation id when another app owns its thread (Meta standby), else None."""
    row = (
        await session.execute(
            select(Message.conversation_id, Message.payload).where(Message.id == message_id)
        )
    ).first()
    return row[0] if row is not None and (row[1] or {}).get(STANDBY) is True else None


async def _handle_held(
    runtime: Runtime, session: AsyncSession, bot: Bot | None, message_id: str, outcome: Outcome
) -> Outcome:
    """Hand the messages held before consent to the bot (or the queue), oldest first."""
    for held_id in await consent.release_held(session, message_id):
        if await topics.is_command(session, held_id):
            continue  # a keyword sent before the yes is the topics' (handle_deferred)
        one = await live.handle(session, bot, held_id, phrasing=llm_enabled(runtime.settings))
        if one.route:
            await routing.route_for_message(session, held_id)
        outcome = Outcome(
            route=outcome.route or (one.route and bot is None),
            sent=outcome.sent + one.sent,
            handover=outcome.handover or one.handover,
        )
    return outcome


async def process_job(runtime: Runtime, job: ClaimedJob, worker_id: str) -> None:
    """Handle one new inbound message; messages it queues are sent by the send jobs."""
    message_id = str(job.payload.get("message_id", ""))
    # Built (or taken from the cache) before the transaction: fitting must not hold a write lock.
    bot = await live.bot_for(runtime.sessions, job.workspace_id) if job.workspace_id else None
    conversation_id: str | None = None
    async with runtime.sessions() as session, session.begin():
        restricted = await _restricted_conversation(session, message_id)
        if restricted is None:
            # Another app owns the thread: only it may answer (no consent step, bot or routing).
            restricted = await _read_along_conversation(session, message_id)
        if restricted is not None:
            # Art. 18: the message is stored, nothing else (no consent step, bot, reply, routing).
            await queue.finish(session, job.id, worker_id)
    if restricted is not None:
        if job.workspace_id:
            await runtime.events.publish(Event(job.workspace_id, MESSAGE_NEW, restricted))
        return
    async with runtime.sessions() as session, session.begin():
        await options.resolve_numbered_reply(session, message_id)
        # A STOP (all topics or one) or a confirm button is handled before anything else and
        # never answered with the consent question or by the bot.
        outcome = live.Outcome(route=True)
        if not (
            await tracking.handle_inbound(
                session, message_id, consent_first=runtime.settings.consent_first
            )
            or await topics.handle_before_consent(session, message_id)
        ):
            allowed, consent_now = True, "granted"
            before: str | None = "granted"
            # An erased person who writes again is asked first, whatever the setting says.
            if runtime.settings.consent_first or await consent.after_erasure(
                session, runtime.settings.suppression_keys, message_id
            ):
                # A contact who consented before this message, or with it (the web chat
                # widget's notice), gets the bot; a message that asks or answers the consent
                # question is the consent step's.
                before = await _consent_state(session, message_id)
                consent_now = await consent.process(session, message_id)
                allowed = consent_now == "granted"
            command = None
            if consent_now not in ("answered", "gone"):
                command = await topics.handle_inbound(
                    session, runtime.settings, message_id, consent_ok=consent_now == "granted"
                )
            elif consent_now == "answered" and (
                await _consent_state(session, message_id) == "granted"
            ):
                # A subscribe keyword sent before the yes (e.g. from a click-to-chat link).
                command = await topics.handle_deferred(session, runtime.settings, message_id)
            agreed = consent_now == "granted" or (
                consent_now == "answered" and await _consent_state(session, message_id) == "granted"
            )
            if consent_now == "granted" and before != "granted":
                # Consent given in the widget: what came before it first, then this message.
                outcome = await _handle_held(runtime, session, bot, message_id, live.Outcome(False))
            if allowed and command is None:
                outcome = await live.handle(
                    session, bot, message_id, phrasing=llm_enabled(runtime.settings)
                )
            else:
                if consent_now in ("asked", "unsent") and command is None:
                    await consent.hold(session, message_id)
                # With a bot, a conversation waits for the customer's yes, not for an agent;
                # after a no, nobody takes it up; when the notice could not be sent, a person must.
                waiting = consent_now == "asked" or agreed
                outcome = live.Outcome(route=consent_now == "unsent" or (bot is None and waiting))
            if consent_now == "answered" and agreed:
                # What the customer wrote before the yes, handled as if it had just come.
                outcome = await _handle_held(runtime, session, bot, message_id, outcome)
            if agreed and command is None and (bot is None or outcome.handover):
                # Without a bot (or once it handed over), the business profile's texts answer:
                # a welcome for a new conversation, or when the business opens again.
                body = await session.scalar(select(Message.body).where(Message.id == message_id))
                await autoreply.run(
                    session, message_id, consent.message_language(body), welcome=bot is None
                )
        routed = None
        if outcome.route:
            routed = await routing.route_for_message(session, message_id)
        if outcome.sent or outcome.handover:
            conversation_id = await session.scalar(
                select(Message.conversation_id).where(Message.id == message_id)
            )
        await queue.finish(session, job.id, worker_id)
    runtime.jobs_ready.set()
    if not job.workspace_id:
        return
    if routed is not None:
        await runtime.events.publish(Event(job.workspace_id, CONVERSATION_UPDATED, routed))
    elif conversation_id is not None:
        kind = CONVERSATION_UPDATED if outcome.handover else MESSAGE_NEW
        await runtime.events.publish(Event(job.workspace_id, kind, conversation_id))


HANDLERS = {PROCESS_JOB: process_job, live.ACTION_JOB: live.action_job}
