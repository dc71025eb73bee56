"""A send parked behind an earlier message of its conversation is woken when that one is sent,
also when the earlier send finishes between the parked send's check and its park."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from tests.helpers import seed_whatsapp, waits_for_a_lock
from tresen.db.tables import Contact, ContactIdentity, Conversation, Job, Message
from tresen.db.types import utcnow
from tresen.domain.ids import new_id
from tresen.domain.message import ContentKind, SenderKind
from tresen.handlers.send import park_behind_earlier, record_sent, wake_waiting
from tresen.jobs import queue
from tresen.jobs.queue import ClaimedJob
from tresen.pipeline.outbound import SEND_JOB, OutboundContent, queue_message
from tresen.runtime import Runtime

WORKER = "worker-1"


async def _two_queued_replies(runtime: Runtime) -> tuple[str, str, str, ClaimedJob]:
    """A conversation with two queued replies; the second's send job is running (claimed)."""
    workspace_id, channel = await seed_whatsapp(runtime)
    now = utcnow()
    async with runtime.sessions() as session, session.begin():
        contact = Contact(id=new_id(), workspace_id=workspace_id, display_name="Kundin")
        session.add(contact)
        await session.flush()
        identity = ContactIdentity(
            id=new_id(),
            workspace_id=workspace_id,
            contact_id=contact.id,
            channel_id=channel.id,
            address="4915112345678",
        )
        session.add(identity)
        await session.flush()
        conversation = Conversation(
            id=new_id(),
            workspace_id=workspace_id,
            contact_id=contact.id,
            channel_id=channel.id,
            identity_id=identity.id,
            last_inbound_at=now,
        )
        session.add(conversation)
        await session.flush()
        first = await queue_message(
            session,
            conversation,
            channel,
            OutboundContent(ContentKind.TEXT, "Danke!"),
            sender_kind=SenderKind.BOT,
        )
        second = await queue_message(
            session,
            conversation,
            channel,
            OutboundContent(ContentKind.TEXT, "Wie kann ich helfen?"),
            sender_kind=SenderKind.BOT,
        )
        await session.flush()
        jobs = {
            j.payload["message_id"]: j
            for j in await session.scalars(select(Job).where(Job.kind == SEND_JOB))
        }
        job = jobs[second.id]
        await session.execute(
            update(Job)
            .where(Job.id == job.id)
            .values(state=queue.RUNNING, locked_by=WORKER, lease_until=now + timedelta(minutes=1))
        )
        claimed = ClaimedJob(job.id, job.kind, dict(job.payload), 1, job.max_attempts, workspace_id)
    return channel.id, first.id, second.id, claimed


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_a_send_finishing_while_the_next_one_parks_still_wakes_it(runtime: Runtime) -> None:
    channel_id, first_id, second_id, job = await _two_queued_replies(runtime)
    async with runtime.sessions() as parking, parking.begin():
        second = await parking.get_one(Message, second_id)
        assert await park_behind_earlier(parking, second, job, WORKER)

        async def first_is_sent() -> None:
            async with runtime.sessions() as session, session.begin():
                await record_sent(session, first_id, channel_id, "wamid.first")
                await wake_waiting(session, second.conversation_id)

        sending = asyncio.create_task(first_is_sent())
        # The first send finishes now: either it waits for the parking transaction's lock,
        # or (without one) it is done before the park is committed.
        while not sending.done() and not await waits_for_a_lock(runtime):
            await asyncio.sleep(0.01)
    await sending
    async with runtime.sessions() as session:
        parked = await session.get_one(Job, job.id)
    assert parked.state == queue.PENDING
    assert parked.run_at <= utcnow() + timedelta(seconds=1), "the parked send was not woken"
