"""A topic message queued before the customer's STOP is not sent after it."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import select

from tests import helpers
from tests.pipeline.stack import CUSTOMER, running_stack
from tresen.app import make_worker
from tresen.broadcast import topics
from tresen.db.tables import (
    ChannelRow,
    Contact,
    Conversation,
    Job,
    Message,
    Subscription,
    Workspace,
)
from tresen.domain.message import ContentKind
from tresen.handlers.process import PROCESS_JOB, process_job
from tresen.handlers.worker import Worker
from tresen.pipeline.outbound import OutboundContent
from tresen.runtime import Runtime


async def _drain(runtime: Runtime, worker: Worker, kind: str) -> None:
    """Run the worker until no job of `kind` is pending."""
    task = asyncio.create_task(worker.run())
    try:
        for _ in range(300):
            async with runtime.sessions() as session:
                left = await session.scalar(select(Job.id).where(Job.kind == kind).limit(1))
            if left is None:
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"{kind} jobs did not finish")
    finally:
        worker.stop()
        await asyncio.wait_for(task, 10)


async def _subscribe(runtime: Runtime, conversation_id: str, keyword: str) -> topics.Topic:
    """A topic and a confirmed subscription of the conversation's contact (through the opt-in)."""
    async with runtime.sessions() as session, session.begin():
        conv = await session.get_one(Conversation, conversation_id)
        channel = await session.get_one(ChannelRow, conv.channel_id)
        workspace = await session.get_one(Workspace, conv.workspace_id)
        contact = await session.get_one(Contact, conv.contact_id)
        topic = await topics.create_topic(session, workspace.id, keyword, keyword.title())
        sub, sent = await topics.request_subscription(
            session,
            runtime.settings,
            workspace=workspace,
            topic=topic,
            contact=contact,
            conversation=conv,
            channel=channel,
            source="api",
            language="de",
        )
        assert sent and await topics.confirm(session, sub, "test")
    return topic


async def _queue(runtime: Runtime, conversation_id: str, topic: topics.Topic, text: str) -> str:
    async with runtime.sessions() as session, session.begin():
        conv = await session.get_one(Conversation, conversation_id)
        channel = await session.get_one(ChannelRow, conv.channel_id)
        message = await topics.queue_topic_message(
            session, topic, conv, channel, OutboundContent(ContentKind.TEXT, text)
        )
    return message.id


@pytest.mark.parametrize("stop", ["STOP", "STOP ticker"])
async def test_topic_message_queued_before_stop_is_not_sent(runtime: Runtime, stop: str) -> None:
    async with running_stack(runtime, worker=False) as stack:
        conv_id = await stack.customer_writes("Hallo")
        ticker = await _subscribe(runtime, conv_id, "ticker")
        news = await _subscribe(runtime, conv_id, "news")
        before = await _queue(runtime, conv_id, ticker, "Tor! 1:0 in der 12. Minute")
        other = await _queue(runtime, conv_id, news, "Neu: Öffnungszeiten")
        await stack.sim.customer_sends(CUSTOMER, body=stop)
        # Only the inbound processing runs first: the STOP is recorded while the sends wait.
        await helpers.hand_on_events(runtime)
        await _drain(
            runtime, Worker(runtime, {PROCESS_JOB: process_job}, poll_seconds=0.05), PROCESS_JOB
        )
        async with runtime.sessions() as session:
            states = dict(
                (await session.execute(select(Subscription.topic_id, Subscription.state))).all()
            )
        assert states[ticker.id] == "withdrawn"
        assert states[news.id] == ("withdrawn" if stop == "STOP" else "confirmed")
        await _drain(runtime, make_worker(runtime, poll_seconds=0.05, pollers=[]), "message.send")
        rows = await stack.wait_states([before, other], {"failed", "sent", "delivered", "read"})
        assert rows[before].state == "failed" and rows[before].error_code == topics.OPTED_OUT
        texts = [e.payload.get("text", {}).get("body") for e in stack.sim.ledger]
        assert "Tor! 1:0 in der 12. Minute" not in texts
        assert ("Neu: Öffnungszeiten" in texts) == (stop != "STOP")
        assert any("abgemeldet" in (t or "") for t in texts)  # the STOP was confirmed
        async with runtime.sessions() as session, session.begin():
            conv = await session.get_one(Conversation, conv_id)
            channel = await session.get_one(ChannelRow, conv.channel_id)
            with pytest.raises(topics.TopicError):
                await topics.queue_topic_message(
                    session, ticker, conv, channel, OutboundContent(ContentKind.TEXT, "x")
                )
            assert await session.scalar(select(Message.id).where(Message.body == "x")) is None
