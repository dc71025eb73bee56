"""A consumer that keeps failing is counted, logged without personal data, named by `tresen
doctor` and `/readyz`, blocks no other consumer or lane, and catches up in order once mended."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import select, update

from tests import helpers
from tresen.channels.base import ChannelRef, InboundMessage, ParsedWebhook
from tresen.db import outbox
from tresen.db.tables import Conversation, EventCursor, Job
from tresen.db.types import utcnow
from tresen.domain.events import ConversationAssigned, ConversationStatusChanged
from tresen.domain.message import ContentKind
from tresen.handlers import events as dispatch
from tresen.handlers.worker import Worker
from tresen.jobs import queue
from tresen.ops.doctor import WARN, check_database
from tresen.ops.readiness import readiness
from tresen.runtime import Runtime

CUSTOMER = "Kim Müller"
PHONE = "4915100000001"
TYPES = frozenset({"conversation.assigned", "conversation.status_changed"})


class _Consumer:
    """Notes what it got; while `broken_lane` is set, fails on that lane with personal data."""

    def __init__(self, broken_lane: str | None = None) -> None:
        self.seen: list[tuple[str, str]] = []
        self.broken_lane = broken_lane

    async def __call__(self, runtime: Runtime, session: Any, event: dispatch.StoredEvent) -> None:
        if event.lane == self.broken_lane:
            raise RuntimeError(f"could not reach {CUSTOMER} at +{PHONE}")
        self.seen.append((event.lane, event.id))


async def _run_due(worker: Worker, runtime: Runtime) -> None:
    """Run every due delivery job once, as the worker does (failures retried later)."""
    jobs = await queue.claim(
        runtime.engine, worker.worker_id, 50, timedelta(seconds=30), kinds=[dispatch.DELIVER_JOB]
    )
    for job in jobs:
        await worker._run_one(job)


def _failures(name: str) -> float:
    value = REGISTRY.get_sample_value("tresen_event_consumer_failures_total", {"consumer": name})
    return value or 0.0


async def test_a_consumer_that_keeps_failing_is_seen_and_blocks_nobody(
    runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    ws, channel = await helpers.seed_whatsapp(runtime)
    ref = ChannelRef(channel.id, ws, channel.kind)
    for n in range(2):
        message = InboundMessage(
            f"wamid.{n}", f"{PHONE[:-1]}{n + 1}", CUSTOMER, utcnow(), ContentKind.TEXT, "Hi", {}
        )
        await runtime.receiver.receive(ref, ParsedWebhook([message]))
    async with runtime.sessions() as session:
        bad, good = list(await session.scalars(select(Conversation.id).order_by(Conversation.id)))
    for lane in (bad, good):
        async with runtime.sessions() as session, session.begin():
            outbox.record(
                session,
                ConversationAssigned(ws, lane, "a1", "agent"),
                ConversationStatusChanged(ws, lane, "pending"),
            )
    broken, steady = _Consumer(broken_lane=bad), _Consumer()
    consumers = (
        dispatch.Consumer("broken", TYPES, broken),
        dispatch.Consumer("steady", TYPES, steady),
    )
    worker = Worker(runtime, {dispatch.DELIVER_JOB: dispatch.deliver_job_for(consumers)})
    while await dispatch.dispatch_once(runtime, consumers):
        pass
    before = _failures("broken")

    with caplog.at_level(logging.INFO):
        await _run_due(worker, runtime)

    # The other consumer, and the broken one's other lane, went on.
    assert sorted(lane for lane, _ in steady.seen) == sorted([bad, bad, good, good])
    assert [lane for lane, _ in broken.seen] == [good, good]
    async with runtime.sessions() as session:
        cursors = {
            (c.consumer, c.lane): c.position for c in await session.scalars(select(EventCursor))
        }
    assert cursors.get(("broken", bad), 0) == 0 and cursors[("steady", bad)] > 0
    # Counted, and logged by ids and the error's class, never its text.
    assert _failures("broken") == before + 1
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("'broken'" in m and bad in m and "RuntimeError" in m for m in warned), warned
    assert CUSTOMER not in caplog.text and PHONE not in caplog.text
    # Named where operators look; the process stays ready for messages.
    _, checks = await readiness(runtime.engine, runtime.sessions, "")
    assert "consumer 'broken' keeps failing: 1 lane(s) waiting" in checks["events"]
    findings = await check_database(runtime.engine, runtime.settings)
    assert [(f.level, f.text[:31]) for f in findings if f.topic == "events"] == [
        (WARN, "consumer 'broken' keeps failing")
    ]
    assert "steady" not in checks["events"]

    # Mended: the retried delivery hands the lane on from its cursor, in order.
    broken.broken_lane = None
    async with runtime.sessions() as session, session.begin():
        await session.execute(update(Job).values(run_at=utcnow()))
    await _run_due(worker, runtime)
    assert [lane for lane, _ in broken.seen] == [good, good, bad, bad]
    assert [e for lane, e in broken.seen if lane == bad] == [
        e for lane, e in steady.seen if lane == bad
    ]
    _, checks = await readiness(runtime.engine, runtime.sessions, "")
    assert "events" not in checks
