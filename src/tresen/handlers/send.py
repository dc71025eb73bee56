"""The send job: hand one committed message to its channel and record the outcome."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, literal_column, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from tresen import metrics
from tresen.broadcast.topics import OPTED_OUT, is_subscribed
from tresen.channels.base import AuthError, ChannelError, PermanentError, RateLimited
from tresen.channels.registry import channel_factory
from tresen.db import outbox
from tresen.db.tables import ContactIdentity, Conversation, Job, Message
from tresen.db.types import utcnow
from tresen.db.upsert import rowcount
from tresen.domain.events import MessageStatusChanged
from tresen.domain.message import ContentKind, DeliveryState, Direction, SenderKind
from tresen.events import MESSAGE_STATUS, Event
from tresen.handlers.media_attach import with_attachment
from tresen.jobs import queue
from tresen.jobs.queue import ClaimedJob
from tresen.pipeline.inbound import ACK_JOB, apply_kept_watermarks, apply_pending_statuses
from tresen.pipeline.outbound import (
    SEND_JOB,
    OutboundContent,
    OutboundRefused,
    check_window,
    contact_restricted,
    failure_values,
    outbound_for,
    to_outbound,
)
from tresen.runtime import LoadedChannel, Runtime

log = logging.getLogger(__name__)

_UNSENT = (DeliveryState.QUEUED.value, DeliveryState.SENDING.value)
ORDER_RECHECK_SECONDS = 10.0
"""A message waiting for an earlier one looks again this late (a fallback: the earlier one wakes it)."""


async def _lock_order(session: AsyncSession, conversation_id: str) -> None:
    """Take the conversation's row lock until the transaction ends (PostgreSQL; SQLite has one
    writer anyway). A waiting send checks and parks under it and a finished send wakes under it,
    so the wake-up cannot fall between the check and the park of a send that is still running."""
    await session.execute(
        select(Conversation.id).where(Conversation.id == conversation_id).with_for_update()
    )


async def _earlier_unsent(session: AsyncSession, message: Message) -> bool:
    """Whether an earlier message of the conversation has not reached the provider yet (the
    caller holds the order lock: `_lock_order`)."""
    earlier = await session.scalar(
        select(Message.id)
        .where(
            Message.conversation_id == message.conversation_id,
            Message.direction == Direction.OUTBOUND.value,
            Message.state.in_(_UNSENT),
            Message.provider_message_id.is_(None),
            or_(
                Message.created_at < message.created_at,
                and_(Message.created_at == message.created_at, Message.id < message.id),
            ),
        )
        .limit(1)
    )
    return earlier is not None


async def park_behind_earlier(
    session: AsyncSession, message: Message, job: ClaimedJob, worker_id: str
) -> bool:
    """Park the send job while an earlier message of the conversation is unsent (messages of
    one conversation reach the provider in the order they were written); whether it parked."""
    if message.state != DeliveryState.QUEUED.value:
        return False
    await _lock_order(session, message.conversation_id)
    if not await _earlier_unsent(session, message):
        return False
    await queue.retry_later(
        session,
        job,
        worker_id,
        "waiting for an earlier message of the conversation",
        ORDER_RECHECK_SECONDS,
        count_attempt=False,
    )
    return True


async def wake_waiting(session: AsyncSession, conversation_id: str) -> None:
    """Make the send job of the conversation's next unsent message due now."""
    await _lock_order(session, conversation_id)
    following = await session.scalar(
        select(Message.id)
        .where(
            Message.conversation_id == conversation_id,
            Message.direction == Direction.OUTBOUND.value,
            Message.state == DeliveryState.QUEUED.value,
            Message.provider_message_id.is_(None),
        )
        .order_by(Message.created_at, Message.id)
        .limit(1)
    )
    if following is None:
        return
    # Written as the expression index ix_jobs_send_message has it (migration 0012).
    by_message: ColumnElement[Any] = (
        literal_column("(payload ->> 'message_id')")
        if session.get_bind().dialect.name == "postgresql"
        else literal_column("json_extract(payload, '$.message_id')")
    )
    await session.execute(
        update(Job)
        .where(Job.kind == SEND_JOB, Job.state == queue.PENDING, by_message == following)
        .values(run_at=utcnow())
    )


async def send_job(runtime: Runtime, job: ClaimedJob, worker_id: str) -> None:
    """Send the message of a `message.send` job exactly as far as the provider allows."""
    message_id = str(job.payload.get("message_id", ""))
    early = await runtime.channel(str(job.payload.get("channel_id", "")))
    if early is not None:
        # Wait for a send slot before the message counts as `sending`, so that state means "on the wire".
        await _acquire(runtime.limiters.bucket(early.ref.id, _rate(early)), early.ref.kind)
    async with runtime.sessions() as session, session.begin():
        found = await outbound_for(session, message_id)
        if found is None:
            await queue.finish(session, job.id, worker_id)
            return
        message, channel_row, address, conversation = found
        if message.state not in _UNSENT or message.provider_message_id:
            # Already sent, or a status webhook told us the provider has it: never send twice.
            if message.state == DeliveryState.SENDING.value:
                moved = await session.execute(
                    update(Message)
                    .where(Message.id == message.id, Message.state == DeliveryState.SENDING.value)
                    .values(state=DeliveryState.SENT.value)
                    .returning(Message.workspace_id, Message.conversation_id)
                )
                _announce(session, message.id, DeliveryState.SENT, moved.all())
            if message.provider_message_id:
                await apply_pending_statuses(session, channel_row.id, message.provider_message_id)
            await queue.finish(session, job.id, worker_id)
            return
        if message.topic_id and not await is_subscribed(
            session, message.topic_id, conversation.contact_id
        ):
            # Opted out (or never confirmed) after this topic message was queued: never send it.
            failed = await session.execute(
                update(Message)
                .where(Message.id == message.id, Message.state.in_(_UNSENT))
                .values(
                    state=DeliveryState.FAILED.value,
                    error_code=OPTED_OUT,
                    error_reason="the contact is not subscribed to this topic (any more)",
                    failed_at=utcnow(),
                )
                .returning(Message.workspace_id, Message.conversation_id)
            )
            _announce(session, message.id, DeliveryState.FAILED, failed.all())
            await wake_waiting(session, message.conversation_id)
            await queue.finish(session, job.id, worker_id)
            return
        if await contact_restricted(session, conversation.contact_id):
            # Restricted (Art. 18) after this message was queued: never send it.
            failed = await session.execute(
                update(Message)
                .where(Message.id == message.id, Message.state.in_(_UNSENT))
                .values(
                    state=DeliveryState.FAILED.value,
                    error_code="restricted",
                    error_reason="processing of this contact's data is restricted",
                    failed_at=utcnow(),
                )
                .returning(Message.workspace_id, Message.conversation_id)
            )
            _announce(session, message.id, DeliveryState.FAILED, failed.all())
            await wake_waiting(session, message.conversation_id)
            await queue.finish(session, job.id, worker_id)
            return
        if await park_behind_earlier(session, message, job, worker_id):
            return
        caps = channel_factory(channel_row.kind).capabilities
        try:
            check_window(
                caps,
                channel_row.kind,
                conversation,
                OutboundContent(kind=ContentKind(message.content_kind), body=message.body),
                SenderKind(message.sender_kind),
            )
        except OutboundRefused as refused:
            failed = await session.execute(
                update(Message)
                .where(Message.id == message.id)
                .values(**failure_values(refused, DeliveryState.FAILED))
                .returning(Message.workspace_id, Message.conversation_id)
            )
            _announce(session, message.id, DeliveryState.FAILED, failed.all())
            await wake_waiting(session, message.conversation_id)
            await queue.finish(session, job.id, worker_id)
            return
        await session.execute(
            update(Message)
            .where(Message.id == message.id)
            .values(state=DeliveryState.SENDING.value, send_attempts=job.attempts)
        )
    loaded = (
        early
        if early is not None and early.ref.id == channel_row.id
        else await runtime.channel(channel_row.id)
    )
    if loaded is None:
        return
    bucket = runtime.limiters.bucket(channel_row.id, _rate(loaded))
    if loaded is not early:
        await _acquire(bucket, loaded.ref.kind)
    try:
        outbound = await with_attachment(runtime, to_outbound(message, address, conversation))
        result = await loaded.adapter.send(outbound)
        answered_at = utcnow()
    except ChannelError as error:
        _count_failure(channel_row.kind, channel_row.id, error)
        await _record_failure(runtime, job, worker_id, message.id, error, bucket)
        await _status_event(runtime, message)
        return
    _count_success(channel_row.kind, channel_row.id)
    async with runtime.sessions() as session, session.begin():
        await record_sent(
            session, message.id, channel_row.id, result.provider_message_id, answered_at
        )
        await wake_waiting(session, message.conversation_id)
        await queue.finish(session, job.id, worker_id)
    runtime.jobs_ready.set()
    await _status_event(runtime, message)
    async with runtime.sessions() as session, session.begin():
        # Statuses kept as pending by a webhook that committed while we did: apply them now.
        applied = await apply_pending_statuses(session, channel_row.id, result.provider_message_id)
    if applied:
        await _status_event(runtime, message)


_failures_in_a_row: dict[str, int] = {}
"""Channel id → failed sends in a row in this process; a success resets it."""
FAILURE_LOG_AT = (5, 20, 100, 1000)


async def _acquire(bucket: Any, channel_kind: str) -> None:
    """Wait for a send slot, counting the wait."""
    started = time.perf_counter()
    await bucket.acquire()
    metrics.RATE_LIMIT_WAIT_SECONDS.labels(channel=channel_kind).observe(
        time.perf_counter() - started
    )


def _count_success(kind: str, channel_id: str) -> None:
    metrics.SENDS.labels(channel=kind, outcome="sent", code="").inc()
    if _failures_in_a_row.pop(channel_id, 0):
        metrics.PROVIDER_FAILURE_STREAK.labels(channel=kind).set(0)


def _count_failure(kind: str, channel_id: str, error: ChannelError) -> None:
    """Count a failed send; log when one channel account keeps failing."""
    code = str(error.code or "")[:32]
    metrics.SENDS.labels(channel=kind, outcome=error.kind, code=code).inc()
    streak = _failures_in_a_row.get(channel_id, 0) + 1
    _failures_in_a_row[channel_id] = streak
    metrics.PROVIDER_FAILURE_STREAK.labels(channel=kind).set(streak)
    if streak in FAILURE_LOG_AT:
        log.warning(
            "channel %s (%s): %d sends failed in a row, the last %s (%s)",
            channel_id,
            kind,
            streak,
            error.kind,
            code or "no code",
        )


async def record_sent(
    session: AsyncSession,
    message_id: str,
    channel_id: str,
    provider_message_id: str,
    sent_at: datetime | None = None,
) -> None:
    """Record the provider's id and send time (when it answered) for a sent message, and apply
    statuses and watermarks that came early."""
    recorded = await session.execute(
        update(Message)
        .where(Message.id == message_id, Message.provider_message_id.is_(None))
        .values(provider_message_id=provider_message_id)
    )
    if not rowcount(recorded):
        # A status webhook naming our message (client reference) may have attached the
        # provider's id first; only another id means the provider got the message twice.
        stored = await session.scalar(
            select(Message.provider_message_id).where(Message.id == message_id)
        )
        if stored != provider_message_id:
            log.warning("message %s was sent again after its first send was recorded", message_id)
    sent = await session.execute(
        update(Message)
        .where(Message.id == message_id, Message.state.in_(_UNSENT))
        .values(
            state=DeliveryState.SENT.value,
            sent_at=sent_at or utcnow(),
            error_code=None,
            error_reason=None,
        )
        .returning(Message.workspace_id, Message.conversation_id)
    )
    moved = sent.all()
    _announce(session, message_id, DeliveryState.SENT, moved)
    for _, conversation_id in moved:
        later = await apply_kept_watermarks(session, conversation_id, message_id)
        if later is not None:
            _announce(session, message_id, later, moved)
    await apply_pending_statuses(session, channel_id, provider_message_id)


def _announce(
    session: AsyncSession, message_id: str, state: DeliveryState, rows: Sequence[Any]
) -> None:
    """A `message.status_changed` event for the message when the update moved it."""
    outbox.record(
        session,
        *(
            MessageStatusChanged(ws, conversation_id, state.value, message_id)
            for ws, conversation_id in rows
        ),
    )


async def _status_event(runtime: Runtime, message: Message) -> None:
    """Tell live inboxes that a message's delivery state moved (after the commit)."""
    await runtime.events.publish(
        Event(
            message.workspace_id,
            MESSAGE_STATUS,
            message.conversation_id,
            {"message_id": message.id},
        )
    )


def _rate(loaded: LoadedChannel) -> float:
    """The channel account's messages per second."""
    rate = getattr(loaded.adapter, "messages_per_second", None)
    return float(rate) if rate else loaded.adapter.capabilities.messages_per_second


async def _record_failure(
    runtime: Runtime,
    job: ClaimedJob,
    worker_id: str,
    message_id: str,
    error: ChannelError,
    bucket: object,
) -> None:
    """Retry what may succeed later; end what never will."""
    log.info("send of message %s failed: %s (%s)", message_id, error.kind, error.code)
    async with runtime.sessions() as session, session.begin():
        if isinstance(error, PermanentError):
            failed = await session.execute(
                update(Message)
                .where(Message.id == message_id, Message.state.in_(_UNSENT))
                .values(**failure_values(error, DeliveryState.FAILED))
                .returning(Message.workspace_id, Message.conversation_id)
            )
            _announce(session, message_id, DeliveryState.FAILED, failed.all())
            if error.unreachable:
                await _mark_unreachable(session, message_id)
            await _wake_after(session, message_id)
            await queue.finish(session, job.id, worker_id)
            return
        if isinstance(error, RateLimited):
            delay = error.retry_after or 1.0
            pause = getattr(bucket, "pause", None)
            if pause is not None:
                pause(delay)
            await queue.retry_later(
                session, job, worker_id, _describe(error), delay, count_attempt=False
            )
            return
        if job.attempts >= job.max_attempts:
            await queue.bury(session, job.id, _describe(error))
            queue.dead_letter(job)
            await _mark_dead(session, message_id, error)
            await _wake_after(session, message_id)
            return
        delay = queue.backoff_seconds(
            job.attempts, base=2.0 if isinstance(error, AuthError) else 1.0
        )
        await queue.retry_later(session, job, worker_id, _describe(error), delay)


async def _wake_after(session: AsyncSession, message_id: str) -> None:
    conversation_id = await session.scalar(
        select(Message.conversation_id).where(Message.id == message_id)
    )
    if conversation_id is not None:
        await wake_waiting(session, conversation_id)


async def _mark_unreachable(session: AsyncSession, message_id: str) -> None:
    """The customer blocked us on this channel: remember it on their identity."""
    identity_id = (
        select(Conversation.identity_id)
        .join(Message, Message.conversation_id == Conversation.id)
        .where(Message.id == message_id)
        .scalar_subquery()
    )
    await session.execute(
        update(ContactIdentity).where(ContactIdentity.id == identity_id).values(unreachable=True)
    )


async def acknowledge_job(runtime: Runtime, job: ClaimedJob, worker_id: str) -> None:
    """Confirm an inbound event to the provider (e.g. answer a Telegram callback query)."""
    loaded = await runtime.channel(str(job.payload.get("channel_id", "")))
    if loaded is not None:
        await loaded.adapter.acknowledge(dict(job.payload.get("data") or {}))
    async with runtime.sessions() as session, session.begin():
        await queue.finish(session, job.id, worker_id)


async def _mark_dead(session: AsyncSession, message_id: str, error: ChannelError | str) -> None:
    reason = error if isinstance(error, str) else _describe(error)
    dead = await session.execute(
        update(Message)
        .where(Message.id == message_id, Message.state.in_(_UNSENT))
        .values(
            state=DeliveryState.DEAD.value,
            error_code="retries_exhausted",
            error_reason=f"gave up after repeated failures; last: {reason}",
            failed_at=utcnow(),
        )
        .returning(Message.workspace_id, Message.conversation_id)
    )
    _announce(session, message_id, DeliveryState.DEAD, dead.all())


async def on_send_dead(runtime: Runtime, job: ClaimedJob, error: str) -> None:
    """Show the agent a message whose job went to the dead letters."""
    async with runtime.sessions() as session, session.begin():
        await _mark_dead(session, str(job.payload.get("message_id", "")), error)
        await _wake_after(session, str(job.payload.get("message_id", "")))


def _describe(error: ChannelError) -> str:
    return f"{error.kind}{f' {error.code}' if error.code else ''}: {error.reason}"


HANDLERS = {SEND_JOB: send_job, ACK_JOB: acknowledge_job}
DEAD_HOOKS = {SEND_JOB: on_send_dead}
