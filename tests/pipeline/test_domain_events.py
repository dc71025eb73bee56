"""Domain events: written with their change, dispatched in order per lane, at least once."""

from __future__ import annotations

import asyncio
import dataclasses
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, update

from tests import helpers
from tresen.channels.base import ChannelRef, InboundMessage, ParsedWebhook, StatusUpdate
from tresen.db import outbox
from tresen.db.tables import (
    ChannelRow,
    ConsentEvent,
    Contact,
    Conversation,
    DomainEventRow,
    EventCursor,
    Job,
    Message,
)
from tresen.db.types import utcnow
from tresen.domain.events import EVENT_TYPES, ConversationAssigned, ConversationStatusChanged
from tresen.domain.message import ContentKind, DeliveryState
from tresen.events import CONVERSATION_UPDATED
from tresen.handlers import events as dispatch
from tresen.handlers.process import PROCESS_JOB
from tresen.handlers.send import record_sent
from tresen.handlers.worker import Worker
from tresen.jobs import queue
from tresen.pipeline.inbound import ingest
from tresen.pipeline.outbound import OutboundContent, queue_message
from tresen.runtime import Runtime

DOCS = Path(__file__).parents[2] / "docs" / "events.md"


def _msg(pid: str, sender: str = "4915100000001") -> InboundMessage:
    return InboundMessage(
        provider_message_id=pid,
        sender_address=sender,
        sender_name="Kim",
        sent_at=utcnow(),
        content_kind=ContentKind.TEXT,
        body="Hallo",
        payload={},
    )


async def _events(runtime: Runtime) -> list[DomainEventRow]:
    async with runtime.sessions() as session:
        return list(await session.scalars(select(DomainEventRow).order_by(DomainEventRow.seq)))


async def _ref(runtime: Runtime) -> ChannelRef:
    ws, channel = await helpers.seed_whatsapp(runtime)
    return ChannelRef(channel.id, ws, channel.kind)


async def test_a_stored_message_writes_its_events_once(runtime: Runtime) -> None:
    ref = await _ref(runtime)
    runtime.events_ready.clear()
    await runtime.receiver.receive(ref, ParsedWebhook([_msg("wamid.1")]))
    assert runtime.events_ready.is_set(), "a commit with events wakes the dispatcher"
    rows = await _events(runtime)
    assert [r.type for r in rows] == ["conversation.created", "message.received"]
    created, received = rows
    assert created.lane == received.lane == received.payload["conversation_id"]
    assert received.payload["channel_id"] == ref.id
    assert received.payload["content_kind"] == "text"
    assert all(r.position is None and r.workspace_id == ref.workspace_id for r in rows)

    await runtime.receiver.receive(ref, ParsedWebhook([_msg("wamid.1")]))  # a retried webhook
    await runtime.receiver.receive(ref, ParsedWebhook([_msg("wamid.2")]))
    assert [r.type for r in await _events(runtime)][2:] == ["message.received"]


async def test_a_status_writes_an_event_and_a_rolled_back_change_writes_none(
    runtime: Runtime,
) -> None:
    ref = await _ref(runtime)
    await runtime.receiver.receive(ref, ParsedWebhook([_msg("wamid.in")]))
    async with runtime.sessions() as session, session.begin():
        conv = (await session.scalars(select(Conversation))).one()
        channel = await session.get_one(ChannelRow, ref.id)
        sent = await queue_message(session, conv, channel, OutboundContent(ContentKind.TEXT, "Hi"))
        await record_sent(session, sent.id, ref.id, "wamid.out")
    rows = await _events(runtime)
    assert [(r.type, r.payload.get("state")) for r in rows[-2:]] == [
        ("message.queued", None),
        ("message.status_changed", "sent"),
    ], "the send job's own result is announced like a provider status"
    before = len(rows)
    status = StatusUpdate("wamid.out", DeliveryState.DELIVERED, utcnow())
    await runtime.receiver.receive(ref, ParsedWebhook([], [status]))
    last = (await _events(runtime))[-1]
    assert len(await _events(runtime)) == before + 1
    assert (last.type, last.payload["message_id"], last.payload["state"]) == (
        "message.status_changed",
        sent.id,
        "delivered",
    )

    runtime.events_ready.clear()
    with pytest.raises(RuntimeError):
        async with runtime.sessions() as session, session.begin():
            await ingest(session, ref, ParsedWebhook([_msg("wamid.lost", "4915100000002")]))
            raise RuntimeError("the transaction fails after ingest")
    assert len(await _events(runtime)) == before + 1, "no event without its change"
    assert not runtime.events_ready.is_set()


class _Recorder:
    """A consumer that notes what it got; fails on the events it is told to, once each."""

    def __init__(self, fail_once: set[str] | None = None) -> None:
        self.seen: list[tuple[str, str]] = []
        self.fail_once = set(fail_once or ())

    async def __call__(self, runtime: Runtime, session: Any, event: dispatch.StoredEvent) -> None:
        if event.id in self.fail_once:
            self.fail_once.discard(event.id)
            raise ConnectionError("the consumer's service is down for a moment")
        self.seen.append((event.lane, event.id))


async def _record(runtime: Runtime, *events: Any) -> None:
    async with runtime.sessions() as session, session.begin():
        outbox.record(session, *events)


async def _run_deliveries(runtime: Runtime, handler: Any) -> int:
    """Run due delivery jobs (retrying failures at once) until none is left; returns failures."""
    failures = 0
    while True:
        jobs = await queue.claim(
            runtime.engine, "t", 50, timedelta(seconds=30), kinds=[dispatch.DELIVER_JOB]
        )
        if not jobs:
            return failures
        for job in reversed(jobs):  # the newest first: a later job must catch up in order
            try:
                await handler(runtime, job, "t")
            except dispatch.ConsumerFailed:
                failures += 1
                async with runtime.sessions() as session, session.begin():
                    await queue.retry_later(session, job, "t", "down", 0)


async def test_each_lane_is_delivered_in_order_at_least_once(runtime: Runtime) -> None:
    ref = await _ref(runtime)
    ws = ref.workspace_id
    for n in range(3):
        await runtime.receiver.receive(ref, ParsedWebhook([_msg(f"w{n}", f"49151000000{n:02d}")]))
    async with runtime.sessions() as session:
        lanes = list(await session.scalars(select(Conversation.id).order_by(Conversation.id)))
    for step in range(4):
        for lane in lanes:
            await _record(
                runtime,
                ConversationStatusChanged(ws, lane, "resolved" if step % 2 else "open"),
                ConversationAssigned(ws, lane, f"agent-{step}", "agent"),
            )
    wanted = {"conversation.status_changed", "conversation.assigned"}
    async with runtime.sessions() as session:
        rows = list(
            await session.scalars(
                select(DomainEventRow)
                .where(DomainEventRow.type.in_(wanted))
                .order_by(DomainEventRow.seq)
            )
        )
    flaky = _Recorder(fail_once={rows[1].id, rows[-3].id})
    steady = _Recorder()
    consumers = (
        dispatch.Consumer("flaky", frozenset(wanted), flaky),
        dispatch.Consumer("steady", frozenset({"conversation.assigned"}), steady),
    )
    handler = dispatch.deliver_job_for(consumers)

    # Two dispatch rounds, so one lane has two delivery jobs per consumer.
    assert await dispatch.dispatch_once(runtime, consumers, limit=len(rows) // 2 + 3) > 0
    while await dispatch.dispatch_once(runtime, consumers):
        pass
    assert await _run_deliveries(runtime, handler) == 2

    for recorder, types in ((flaky, wanted), (steady, {"conversation.assigned"})):
        for lane in lanes:
            expected = [r.id for r in rows if r.lane == lane and r.type in types]
            got = [e for la, e in recorder.seen if la == lane]
            # A failed delivery is handed on again from the lane's cursor: events before the
            # failure may repeat (at least once), but never out of order.
            assert list(dict.fromkeys(got)) == expected
            assert recorder is flaky or got == expected
    async with runtime.sessions() as session:
        assert await dispatch.undispatched(session) == 0
        cursors = await session.scalar(select(func.count()).select_from(EventCursor))
    assert cursors == 2 * len(lanes)

    # A delivery job that runs again (a crash after its commit) hands nothing on twice.
    async with runtime.sessions() as session, session.begin():
        queue.enqueue(
            session, dispatch.DELIVER_JOB, {"consumer": "steady", "lane": lanes[0], "upto": 1}
        )
    before = list(steady.seen)
    await _run_deliveries(runtime, handler)
    assert steady.seen == before


async def test_the_worker_tells_live_inboxes_at_once(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dispatch, "POLL_SECONDS", 60.0)
    ref = await _ref(runtime)
    await runtime.receiver.receive(ref, ParsedWebhook([_msg("w1")]))
    async with runtime.sessions() as session:
        conversation_id = (await session.scalars(select(Conversation.id))).one()
    worker = helpers_worker(runtime)
    task = asyncio.create_task(worker.run())
    try:
        async with runtime.events.subscribe(ref.workspace_id) as sub:
            await _record(
                runtime, ConversationAssigned(ref.workspace_id, conversation_id, "a1", "agent")
            )
            started = asyncio.get_running_loop().time()
            event = await asyncio.wait_for(sub.get(), 10)
            took = asyncio.get_running_loop().time() - started
        assert (event.kind, event.conversation_id) == (CONVERSATION_UPDATED, conversation_id)
        assert event.data == {"event": "conversation.assigned"}
        # Woken by the commit, not by the next poll (dispatcher and worker both poll every 60 s).
        assert took < 5, took
    finally:
        worker.stop()
        await asyncio.wait_for(task, 10)


def helpers_worker(runtime: Runtime) -> Worker:
    """A worker with the event dispatcher and delivery jobs only, polling rarely."""
    return Worker(
        runtime,
        dict(dispatch.HANDLERS),
        pollers=[dispatch.dispatch_poller],
        poll_seconds=60,
    )


async def test_dispatched_events_are_pruned_after_the_retention(runtime: Runtime) -> None:
    ref = await _ref(runtime)
    await runtime.receiver.receive(ref, ParsedWebhook([_msg("w1"), _msg("w2")]))
    await dispatch.dispatch_once(runtime)
    await runtime.receiver.receive(ref, ParsedWebhook([_msg("w3")]))  # not dispatched yet
    async with runtime.sessions() as session, session.begin():
        await session.execute(
            update(DomainEventRow)
            .where(DomainEventRow.position.is_not(None))
            .values(dispatched_at=utcnow() - timedelta(days=8))
        )
    assert await dispatch.prune(runtime, timedelta(days=7)) == 3
    rows = await _events(runtime)
    assert [(r.type, r.position) for r in rows] == [("message.received", None)]


def test_docs_list_every_event_type_with_its_fields() -> None:
    text = DOCS.read_text(encoding="utf-8")
    documented = dict(re.findall(r"^### `([a-z_.]+)` \(version (\d+)\)$", text, re.MULTILINE))
    assert documented == {name: str(cls.VERSION) for name, cls in EVENT_TYPES.items()}
    for name, cls in EVENT_TYPES.items():
        section = text.split(f"### `{name}`", 1)[1].split("\n### ", 1)[0]
        fields = set(re.findall(r"^\| `([a-z_]+)` \|", section, re.MULTILINE))
        assert fields == {f.name for f in dataclasses.fields(cls)} - {"workspace_id"}, name


async def _job_kinds(runtime: Runtime) -> list[str]:
    async with runtime.sessions() as session:
        return sorted(await session.scalars(select(Job.kind)))


async def test_a_new_message_is_work_left_until_its_processing_job_is_queued(
    runtime: Runtime,
) -> None:
    """Undispatched event, then its delivery job, then the processing job: never a gap."""
    ref = await _ref(runtime)
    await runtime.receiver.receive(ref, ParsedWebhook([_msg("w1")]))
    async with runtime.sessions() as session:
        assert await dispatch.undispatched(session, ref.workspace_id) == 2
        assert await dispatch.undispatched(session, "another") == 0
    assert PROCESS_JOB not in await _job_kinds(runtime), "queued by the consumer, not by receive"
    await dispatch.dispatch_once(runtime)
    async with runtime.sessions() as session:
        assert await dispatch.undispatched(session) == 0
    assert await _job_kinds(runtime) == [dispatch.DELIVER_JOB]
    [delivery] = await queue.claim(runtime.engine, "w", 1, timedelta(seconds=5))
    await dispatch.HANDLERS[dispatch.DELIVER_JOB](runtime, delivery, "w")
    assert await _job_kinds(runtime) == [PROCESS_JOB]
    async with runtime.sessions() as session:
        [payload] = (await session.scalars(select(Job.payload))).all()
        message_id = await session.scalar(select(Message.id))
    assert payload == {"message_id": message_id}


async def test_every_consent_record_announces_a_consent_change(runtime: Runtime) -> None:
    ref = await _ref(runtime)
    await runtime.receiver.receive(ref, ParsedWebhook([_msg("w1")]))
    async with runtime.sessions() as session, session.begin():
        contact_id = (await session.scalars(select(Contact.id))).one()
        session.add(  # written like every consent record: the ORM object, flushed at commit
            ConsentEvent(
                workspace_id=ref.workspace_id,
                contact_id=contact_id,
                purpose="service_conversation",
                action="granted",
                channel_id=ref.id,
                source="whatsapp reply",
                occurred_at=utcnow(),
            )
        )
    last = (await _events(runtime))[-1]
    assert (last.type, last.lane) == ("consent.changed", contact_id)
    assert last.payload == {
        "contact_id": contact_id,
        "purpose": "service_conversation",
        "action": "granted",
    }
