"""Inbound pieces other channels rely on: watermarks, acknowledgements, unreachable identities."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any, cast

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tests import helpers
from tresen.broadcast.dispatch import Dispatcher, Item, Outcome
from tresen.channels.base import (
    ChannelRef,
    InboundMessage,
    ParsedWebhook,
    PermanentError,
    StatusUpdate,
)
from tresen.db.tables import (
    ChannelRow,
    ContactIdentity,
    Conversation,
    DomainEventRow,
    Job,
    Message,
)
from tresen.db.types import utcnow
from tresen.domain.message import ContentKind, DeliveryState
from tresen.handlers.send import _record_failure, acknowledge_job, record_sent
from tresen.jobs import queue
from tresen.jobs.queue import ClaimedJob
from tresen.pipeline.inbound import ACK_JOB, ingest
from tresen.pipeline.outbound import OutboundContent, queue_message
from tresen.runtime import Runtime


def _msg(pid: str, ack: dict | None = None) -> InboundMessage:  # type: ignore[type-arg]
    return InboundMessage(
        provider_message_id=pid,
        sender_address="4915100000001",
        sender_name="Kim",
        sent_at=utcnow(),
        content_kind=ContentKind.TEXT,
        body="Hallo",
        payload={},
        acknowledgement=ack,
    )


async def _setup(runtime: Runtime) -> tuple[ChannelRef, Conversation]:
    ws, channel = await helpers.seed_whatsapp(runtime)
    ref = ChannelRef(channel.id, ws, channel.kind)
    async with runtime.sessions() as session, session.begin():
        await ingest(session, ref, ParsedWebhook(messages=[_msg("in-1")]))
    async with runtime.sessions() as session:
        conv = (await session.scalars(select(Conversation))).one()
    return ref, conv


async def _sent(
    runtime: Runtime, ref: ChannelRef, conv: Conversation, n: int, prefix: str = "out"
) -> list[str]:
    ids = []
    for i in range(n):
        async with runtime.sessions() as session, session.begin():
            channel = await session.get_one(ChannelRow, ref.id)
            m = await queue_message(
                session, conv, channel, OutboundContent(ContentKind.TEXT, f"A{i}")
            )
            await record_sent(session, m.id, ref.id, f"{prefix}-{i}")
            ids.append(m.id)
    return ids


async def test_read_watermark_moves_all_earlier_messages_of_that_recipient(
    runtime: Runtime,
) -> None:
    ref, conv = await _setup(runtime)
    ids = await _sent(runtime, ref, conv, 3)
    watermark = utcnow()
    later = await _sent(runtime, ref, conv, 1, prefix="later")
    status = StatusUpdate(
        provider_message_id="",
        state=DeliveryState.READ,
        occurred_at=watermark,
        recipient_address="4915100000001",
        watermark=watermark,
    )
    other = StatusUpdate(
        provider_message_id="",
        state=DeliveryState.READ,
        occurred_at=watermark,
        recipient_address="4915199999999",
        watermark=watermark + timedelta(days=1),
    )
    async with runtime.sessions() as session, session.begin():
        result = await ingest(session, ref, ParsedWebhook(statuses=[status, other]))
    assert result.applied_statuses == 3
    async with runtime.sessions() as session:
        states = {
            m.id: m.state
            for m in await session.scalars(select(Message).where(Message.direction == "outbound"))
        }
    assert [states[i] for i in ids] == ["read"] * 3
    assert states[later[0]] == "sent"


async def test_acknowledgement_becomes_a_job_once(runtime: Runtime) -> None:
    ws, channel = await helpers.seed_whatsapp(runtime)
    ref = ChannelRef(channel.id, ws, channel.kind)
    for _ in range(2):
        async with runtime.sessions() as session, session.begin():
            await ingest(
                session, ref, ParsedWebhook(messages=[_msg("cb-1", {"callback_query_id": "42"})])
            )
    async with runtime.sessions() as session:
        jobs = list(await session.scalars(select(Job).where(Job.kind == ACK_JOB)))
    assert [j.payload for j in jobs] == [
        {"channel_id": channel.id, "data": {"callback_query_id": "42"}}
    ]

    [claimed] = await queue.claim(runtime.engine, "w", 1, timedelta(seconds=5), kinds=[ACK_JOB])
    await acknowledge_job(runtime, claimed, "w")
    async with runtime.sessions() as session:
        assert list(await session.scalars(select(Job).where(Job.kind == ACK_JOB))) == []


async def test_blocked_recipient_marks_identity_unreachable(runtime: Runtime) -> None:
    ref, conv = await _setup(runtime)
    async with runtime.sessions() as session, session.begin():
        channel = await session.get_one(ChannelRow, ref.id)
        m = await queue_message(session, conv, channel, OutboundContent(ContentKind.TEXT, "Hallo?"))

    [job] = await queue.claim(runtime.engine, "w", 1, timedelta(seconds=5), kinds=["message.send"])
    error = PermanentError("Forbidden: bot was blocked by the user", code="403", unreachable=True)
    await _record_failure(runtime, job, "w", m.id, error, None)
    async with runtime.sessions() as session:
        identity = (await session.scalars(select(ContactIdentity))).one()
        stored = await session.get_one(Message, m.id)
    assert identity.unreachable is True
    assert stored.state == "failed" and stored.error_code == "403"
    assert isinstance(job, ClaimedJob)


async def test_sent_again_warning_only_for_a_second_provider_id(
    runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    ref, conv = await _setup(runtime)
    async with runtime.sessions() as session, session.begin():
        channel = await session.get_one(ChannelRow, ref.id)
        m = await queue_message(session, conv, channel, OutboundContent(ContentKind.TEXT, "Hi"))
    # The provider's status webhook, naming our message, came before the send's answer.
    early = StatusUpdate(
        provider_message_id="wamid.first",
        state=DeliveryState.DELIVERED,
        occurred_at=utcnow(),
        client_reference=m.id,
    )
    async with runtime.sessions() as session, session.begin():
        await ingest(session, ref, ParsedWebhook(statuses=[early]))
    with caplog.at_level(logging.WARNING, logger="tresen.handlers.send"):
        async with runtime.sessions() as session, session.begin():
            await record_sent(session, m.id, ref.id, "wamid.first")
        assert "sent again" not in caplog.text
        async with runtime.sessions() as session, session.begin():
            await record_sent(session, m.id, ref.id, "wamid.second")
        assert f"message {m.id} was sent again" in caplog.text


def _watermark(state: DeliveryState, at: datetime) -> ParsedWebhook:
    """Messenger's "everything up to `at`" for the customer of `_setup`."""
    mark = StatusUpdate("", state, at, recipient_address="4915100000001", watermark=at)
    return ParsedWebhook(statuses=[mark])


async def _queued(runtime: Runtime, ref: ChannelRef, conv: Conversation, body: str) -> str:
    async with runtime.sessions() as session, session.begin():
        channel = await session.get_one(ChannelRow, ref.id)
        m = await queue_message(session, conv, channel, OutboundContent(ContentKind.TEXT, body))
    return m.id


async def _state(runtime: Runtime, message_id: str) -> Message:
    async with runtime.sessions() as session:
        return await session.get_one(Message, message_id)


async def test_a_watermark_that_came_before_the_send_record_still_moves_the_message(
    runtime: Runtime,
) -> None:
    ref, conv = await _setup(runtime)
    covered, answered_later, delivered_only = [
        await _queued(runtime, ref, conv, body) for body in ("A", "B", "C")
    ]
    provider_answered = utcnow()
    async with runtime.sessions() as session, session.begin():
        # The provider's answer to the send is in, its record not yet: the customer reads.
        await ingest(session, ref, _watermark(DeliveryState.DELIVERED, provider_answered))
        await ingest(session, ref, _watermark(DeliveryState.READ, provider_answered))
        # An older read mark does not move the kept one back.
        await ingest(session, ref, _watermark(DeliveryState.READ, provider_answered - timedelta(1)))
    async with runtime.sessions() as session, session.begin():
        await record_sent(session, covered, ref.id, "mid.covered", provider_answered)
        await record_sent(
            session, answered_later, ref.id, "mid.later", provider_answered + timedelta(seconds=1)
        )
    read = await _state(runtime, covered)
    assert (read.state, read.read_at, read.delivered_at) == (
        "read",
        provider_answered,
        provider_answered,
    )
    assert (await _state(runtime, answered_later)).state == "sent"

    async with runtime.sessions() as session, session.begin():
        later = provider_answered + timedelta(seconds=5)
        await ingest(session, ref, _watermark(DeliveryState.DELIVERED, later))
    async with runtime.sessions() as session, session.begin():
        await record_sent(
            session, delivered_only, ref.id, "mid.c", provider_answered + timedelta(seconds=2)
        )
    assert (await _state(runtime, delivered_only)).state == "delivered"
    assert (await _state(runtime, answered_later)).state == "delivered"


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
@pytest.mark.parametrize("first", ["send record", "read webhook"])
async def test_a_read_watermark_racing_the_send_record_is_not_lost(
    runtime: Runtime, first: str
) -> None:
    """The two transactions overlap; whichever holds the conversation first, the read counts."""
    ref, conv = await _setup(runtime)
    message_id = await _queued(runtime, ref, conv, "Hallo!")
    answered = utcnow()

    async def record(session: AsyncSession) -> None:
        await record_sent(session, message_id, ref.id, "mid.race", answered)

    async def read(session: AsyncSession) -> None:
        await ingest(session, ref, _watermark(DeliveryState.READ, answered))

    async def alone(step: Callable[[AsyncSession], Awaitable[None]]) -> None:
        async with runtime.sessions() as session, session.begin():
            await step(session)

    opener, follower = (record, read) if first == "send record" else (read, record)
    async with runtime.sessions() as session, session.begin():
        await opener(session)
        waiting = asyncio.create_task(alone(follower))
        while not waiting.done() and not await helpers.waits_for_a_lock(runtime):
            await asyncio.sleep(0.01)
        assert not waiting.done(), "the second transaction did not wait for the first"
    await waiting
    assert (await _state(runtime, message_id)).state == "read"


async def test_a_campaign_message_recorded_after_the_read_mark_turns_read(
    runtime: Runtime,
) -> None:
    """The same for a campaign batch: its send time is the provider's answer, and the marks the
    conversation kept move it on once the batch is recorded."""
    ref, conv = await _setup(runtime)
    message_id = await _queued(runtime, ref, conv, "Neu im Laden: Lastenräder")
    answered = utcnow()
    async with runtime.sessions() as session, session.begin():
        await ingest(session, ref, _watermark(DeliveryState.READ, answered))
    item = Item(0, conv.contact_id, conv.identity_id, message_id, cast(Any, None), 1)
    outcome = Outcome(item, provider_message_id="mid.campaign", answered_at=answered)
    dispatcher = Dispatcher(runtime)
    await dispatcher.record(ref.id, [outcome])
    assert (await _state(runtime, message_id)).state == "sent"
    await dispatcher.apply_kept_watermarks([outcome])
    read = await _state(runtime, message_id)
    assert (read.state, read.sent_at, read.read_at) == ("read", answered, answered)
    async with runtime.sessions() as session:
        announced = list(
            await session.scalars(
                select(DomainEventRow.payload)
                .where(DomainEventRow.type == "message.status_changed")
                .order_by(DomainEventRow.seq)
            )
        )
    assert {"message_id": message_id, "state": "read"}.items() <= announced[-1].items()
