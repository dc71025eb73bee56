"""The one way out: the dispatcher hands committed domain events to their consumers as jobs.

The dispatcher (one at a time: a PostgreSQL advisory lock; SQLite has one writer anyway) gives
each new event the next `position`, in the order it finds them, and queues one delivery job per
consumer and lane (conversation, else contact, else workspace). A delivery job takes its
consumer's cursor of the lane (a row lock), hands the consumer every event of the lane between
the cursor and its own position, in position order, and moves the cursor in the same
transaction. So each consumer sees the events of a conversation in order and at least once (a
failed job is retried; a later job of the lane catches up with its events first); consumers
must be idempotent because a delivery can repeat after a crash.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from tresen import metrics
from tresen.db import outbox
from tresen.db.tables import DomainEventRow, EventCursor
from tresen.db.types import utcnow
from tresen.db.upsert import rowcount
from tresen.events import CONVERSATION_UPDATED, OUTBOX_TOPIC, Event
from tresen.handlers.process import PROCESS_ATTEMPTS, PROCESS_JOB
from tresen.jobs import queue
from tresen.jobs.queue import ClaimedJob
from tresen.runtime import Runtime

log = logging.getLogger(__name__)

DELIVER_JOB = outbox.DELIVER_JOB
BATCH = 500
POLL_SECONDS = 0.5
"""How often a dispatcher looks for events committed by other processes (the fallback when no
Redis carries their notices, or a notice was lost)."""
PRUNE_EVERY_SECONDS = 3600.0
_LOCK_KEY = 0x7472_6573_656E  # "tresen": the dispatcher's PostgreSQL advisory lock


@dataclass(frozen=True)
class StoredEvent:
    """A domain event as consumers get it."""

    id: str
    position: int
    workspace_id: str
    type: str
    version: int
    lane: str
    payload: dict[str, Any]
    occurred_at: datetime


ConsumerFn = Callable[[Runtime, AsyncSession, StoredEvent], Awaitable[None]]


class ConsumerFailed(Exception):
    """A consumer raised on an event; the delivery job fails and is retried from the cursor.

    Its message names the consumer, the event's id, type and lane and the error's class only:
    a consumer's own error text may carry personal data and never reaches the logs.
    """

    def __init__(self, consumer: str, event: StoredEvent, error: BaseException) -> None:
        super().__init__(
            f"event consumer {consumer!r} failed on event {event.id} ({event.type}, position "
            f"{event.position}) of lane {event.lane}: {type(error).__name__}"
        )
        self.consumer = consumer
        self.error_type = type(error).__name__


@dataclass(frozen=True)
class Consumer:
    """Something that reacts to events: a name (its cursors), the types it wants, its handler.

    The handler runs in the delivery job's transaction; what it writes commits with the cursor.
    """

    name: str
    types: frozenset[str]
    handle: ConsumerFn
    about: str = ""
    """What it does, in a sentence (docs/events.md shows it)."""
    queues_jobs: bool = False
    """It queues jobs: its delivery wakes this process's worker once committed."""


async def _live_fan_out(runtime: Runtime, session: AsyncSession, event: StoredEvent) -> None:
    """Tell live inboxes that a conversation changed, whichever process or script changed it."""
    conversation_id = str(event.payload.get("conversation_id") or "")
    if event.payload.get("by") == "message":
        return  # a reopening message: its receiver already told live inboxes about the message
    if conversation_id:
        await runtime.events.publish(
            Event(event.workspace_id, CONVERSATION_UPDATED, conversation_id, {"event": event.type})
        )


async def _queue_processing(runtime: Runtime, session: AsyncSession, event: StoredEvent) -> None:
    """Queue the work after a customer's message (consent, bot or auto-reply, routing) as a job."""
    message_id = str(event.payload.get("message_id") or "")
    if message_id:
        queue.enqueue(
            session,
            PROCESS_JOB,
            {"message_id": message_id},
            workspace_id=event.workspace_id,
            max_attempts=PROCESS_ATTEMPTS,
        )


CONSUMERS: tuple[Consumer, ...] = (
    Consumer(
        "process",
        frozenset({"message.received"}),
        _queue_processing,
        "queues the work after each customer message (opt-out and topic keywords, consent, "
        "the bot or the auto-replies, routing) as a job of its own, in the conversation's "
        "order; a message that fails there waits among the dead letters alone and never holds "
        "up the conversation's later messages",
        queues_jobs=True,
    ),
    Consumer(
        "live",
        frozenset({"conversation.assigned", "conversation.status_changed", "bot.handed_over"}),
        _live_fan_out,
        "tells live inboxes (SSE, across processes through Redis) that the conversation "
        "changed, whichever process, script or API call changed it (a reopening message "
        "excepted: its receiver tells them about the message)",
    ),
)
"""Every consumer; a new feature (rules, notifications, webhooks, reports) adds itself here."""


def _insert(session: AsyncSession) -> Any:
    dialect = session.bind.dialect.name if session.bind is not None else "sqlite"
    return postgresql.insert if dialect == "postgresql" else sqlite.insert


async def _take_dispatch_lock(session: AsyncSession) -> bool:
    if session.bind is None or session.bind.dialect.name != "postgresql":
        return True
    return bool(
        await session.scalar(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": _LOCK_KEY})
    )


async def dispatch_once(
    runtime: Runtime, consumers: Sequence[Consumer] = CONSUMERS, limit: int = BATCH
) -> int:
    """Give up to `limit` new events their position and queue their deliveries; returns how many."""
    async with runtime.sessions() as session, session.begin():
        if not await _take_dispatch_lock(session):
            return 0
        rows = (
            await session.execute(
                select(
                    DomainEventRow.seq,
                    DomainEventRow.type,
                    DomainEventRow.lane,
                    DomainEventRow.workspace_id,
                )
                .where(DomainEventRow.position.is_(None))
                .order_by(DomainEventRow.seq)
                .limit(limit)
            )
        ).all()
        if not rows:
            return 0
        last = await session.scalar(select(func.max(DomainEventRow.position))) or 0
        now = utcnow()
        lanes: dict[tuple[str, str], tuple[int, str]] = {}
        for offset, row in enumerate(rows, start=1):
            position = last + offset
            updated = await session.execute(
                update(DomainEventRow)
                .where(DomainEventRow.seq == row.seq, DomainEventRow.position.is_(None))
                .values(position=position, dispatched_at=now)
            )
            if not rowcount(updated):
                continue
            for consumer in consumers:
                if row.type in consumer.types:
                    lanes[(consumer.name, row.lane)] = (position, row.workspace_id)
        for (consumer_name, lane), (upto, workspace_id) in lanes.items():
            queue.enqueue(
                session,
                DELIVER_JOB,
                {"consumer": consumer_name, "lane": lane, "upto": upto},
                workspace_id=workspace_id,
            )
    if lanes:
        runtime.jobs_ready.set()
    return len(rows)


def deliver_job_for(consumers: Sequence[Consumer]) -> Callable[..., Awaitable[None]]:
    """The delivery job's handler for these consumers."""
    by_name = {c.name: c for c in consumers}

    async def deliver(runtime: Runtime, job: ClaimedJob, worker_id: str) -> None:
        consumer = by_name.get(str(job.payload.get("consumer")))
        lane, upto = str(job.payload.get("lane")), int(job.payload.get("upto") or 0)
        async with runtime.sessions() as session, session.begin():
            if consumer is not None:
                await _deliver_lane(runtime, session, consumer, lane, upto)
            else:
                log.warning("event delivery job %s names no consumer; dropped", job.id)
            await queue.finish(session, job.id, worker_id)
        if consumer is not None and consumer.queues_jobs:
            runtime.jobs_ready.set()

    return deliver


async def _deliver_lane(
    runtime: Runtime, session: AsyncSession, consumer: Consumer, lane: str, upto: int
) -> None:
    """Hand the consumer the lane's events after its cursor up to `upto`, then move the cursor."""
    now = utcnow()
    await session.execute(
        _insert(session)(EventCursor)
        .values(consumer=consumer.name, lane=lane, position=0, updated_at=now)
        .on_conflict_do_nothing()
    )
    done = await session.scalar(
        select(EventCursor.position)
        .where(EventCursor.consumer == consumer.name, EventCursor.lane == lane)
        .with_for_update()
    )
    if done is None or done >= upto:
        return  # a later delivery of this lane already handed these on
    events = (
        await session.scalars(
            select(DomainEventRow)
            .where(
                DomainEventRow.lane == lane,
                DomainEventRow.position > done,
                DomainEventRow.position <= upto,
                DomainEventRow.type.in_(consumer.types),
            )
            .order_by(DomainEventRow.position)
        )
    ).all()
    for row in events:
        stored = StoredEvent(
            id=row.id,
            position=row.position or 0,
            workspace_id=row.workspace_id,
            type=row.type,
            version=row.version,
            lane=row.lane,
            payload=dict(row.payload or {}),
            occurred_at=row.occurred_at,
        )
        try:
            await consumer.handle(runtime, session, stored)
        except Exception as exc:  # noqa: BLE001 - any consumer error fails only this delivery
            failed = ConsumerFailed(consumer.name, stored, exc)
            metrics.EVENT_CONSUMER_FAILURES.labels(consumer=consumer.name).inc()
            log.warning("%s; the lane is retried from there, other consumers go on", failed)
            raise failed from None
    await session.execute(
        update(EventCursor)
        .where(EventCursor.consumer == consumer.name, EventCursor.lane == lane)
        .values(position=upto, updated_at=now)
    )


async def prune(runtime: Runtime, keep: timedelta) -> int:
    """Delete events dispatched longer than `keep` ago and cursors idle as long; returns events."""
    cutoff = utcnow() - keep
    async with runtime.sessions() as session, session.begin():
        deleted = await session.execute(
            delete(DomainEventRow).where(DomainEventRow.dispatched_at < cutoff)
        )
        await session.execute(delete(EventCursor).where(EventCursor.updated_at < cutoff))
    return rowcount(deleted)


async def undispatched(session: AsyncSession, workspace_id: str | None = None) -> int:
    """Events not yet handed on (of one workspace, or all)."""
    query = (
        select(func.count()).select_from(DomainEventRow).where(DomainEventRow.position.is_(None))
    )
    if workspace_id is not None:
        query = query.where(DomainEventRow.workspace_id == workspace_id)
    return int(await session.scalar(query) or 0)


async def _woken_by_other_processes(runtime: Runtime) -> None:
    """Wake this dispatcher when another process tells the event bus it committed events."""
    async with runtime.events.subscribe(OUTBOX_TOPIC) as notices:
        while True:
            await notices.get()  # a notice, or a resync after a Redis outage: look either way
            runtime.events_ready.set()


async def dispatch_poller(runtime: Runtime, stopping: asyncio.Event) -> None:
    """Dispatch as soon as any process commits events (this one's commits set `events_ready`,
    other processes' reach it through Redis); polling finds what a lost notice missed."""
    listener = (
        asyncio.create_task(_woken_by_other_processes(runtime), name="tresen-outbox-wake")
        if runtime.events.crosses_processes
        else None
    )
    try:
        await _dispatch_until(runtime, stopping)
    finally:
        if listener is not None:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener


async def _dispatch_until(runtime: Runtime, stopping: asyncio.Event) -> None:
    keep_days = runtime.settings.event_retention_days
    next_prune = 0.0
    loop = asyncio.get_running_loop()
    while not stopping.is_set():
        runtime.events_ready.clear()
        handed = 0
        try:
            handed = await dispatch_once(runtime)
            if keep_days > 0 and loop.time() >= next_prune:
                next_prune = loop.time() + PRUNE_EVERY_SECONDS
                pruned = await prune(runtime, timedelta(days=keep_days))
                if pruned:
                    log.info("pruned %d dispatched domain events", pruned)
        except Exception:
            log.exception("dispatching domain events failed; trying again shortly")
        if handed:
            continue
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(_first(stopping, runtime.events_ready), POLL_SECONDS)


async def _first(*flags: asyncio.Event) -> None:
    """Return when any of the events is set."""
    waits = [asyncio.ensure_future(f.wait()) for f in flags]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waits:
            w.cancel()


HANDLERS = {DELIVER_JOB: deliver_job_for(CONSUMERS)}
