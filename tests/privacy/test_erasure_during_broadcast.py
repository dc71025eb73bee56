"""An erasure in the middle of a broadcast: the person's queued topic message is cancelled,
the broadcast goes on for everyone else, and nothing more can be queued for the person."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from tests.pipeline.stack import running_stack
from tests.pipeline.test_topic_send import _drain, _queue, _subscribe
from tresen.app import make_worker
from tresen.broadcast import topics
from tresen.db.tables import ChannelRow, Conversation, Job, Message, Subscription
from tresen.domain.message import ContentKind
from tresen.pipeline.outbound import OutboundContent
from tresen.privacy import erasure
from tresen.runtime import Runtime

PHONES = ("4915100000101", "4915100000102", "4915100000103")
TEXT = "Tor! 2:1 in der 88. Minute"


async def test_erasure_mid_broadcast_cancels_only_that_persons_send(runtime: Runtime) -> None:
    async with running_stack(runtime, worker=False) as stack:
        convs = [await stack.customer_writes("Hallo", wa_id=p) for p in PHONES]
        ticker = await _subscribe(runtime, convs[0], "ticker")
        async with runtime.sessions() as session, session.begin():
            for conv_id in convs[1:]:
                conv = await session.get_one(Conversation, conv_id)
                session.add(
                    Subscription(
                        workspace_id=conv.workspace_id,
                        topic_id=ticker.id,
                        contact_id=conv.contact_id,
                        channel_id=conv.channel_id,
                        state="confirmed",
                        source="test",
                    )
                )
        # The broadcast queues one message per subscriber; the erasure lands after the second.
        first = await _queue(runtime, convs[0], ticker, TEXT)
        await _queue(runtime, convs[1], ticker, TEXT)
        async with runtime.sessions() as session:
            erased_conv = await session.get_one(Conversation, convs[1])
            channel = await session.get_one(ChannelRow, erased_conv.channel_id)
        async with runtime.sessions() as session:
            await erasure.erase(
                runtime.engine,
                session,
                secret_key=runtime.settings.secret_key,
                files=runtime.files,
                workspace_id=erased_conv.workspace_id,
                contact_id=erased_conv.contact_id,
                actor_id=None,
                via="test",
            )
        third = await _queue(runtime, convs[2], ticker, TEXT)
        # The broadcast still holds the erased person's conversation: queuing for it fails.
        async with runtime.sessions() as session, session.begin():
            with pytest.raises(topics.TopicError):
                await topics.queue_topic_message(
                    session, ticker, erased_conv, channel, OutboundContent(ContentKind.TEXT, TEXT)
                )
        async with runtime.sessions() as session:
            sends = list(
                await session.scalars(select(Job.payload).where(Job.kind == "message.send"))
            )
        by_conversation = [p["conversation_id"] for p in sends]
        assert convs[1] not in by_conversation  # the erased person's send went with the erasure
        assert by_conversation.count(convs[2]) == 1 and convs[0] in by_conversation

        await _drain(runtime, make_worker(runtime, poll_seconds=0.05, pollers=[]), "message.send")
        await stack.wait_states([first, third], {"sent", "delivered", "read"})
        receivers = sorted(
            e.to for e in stack.sim.ledger if e.payload.get("text", {}).get("body") == TEXT
        )
        assert receivers == sorted([PHONES[0], PHONES[2]])
        async with runtime.sessions() as session:
            assert await session.get(Conversation, convs[1]) is None
            left = await session.scalar(
                select(func.count()).select_from(Message).where(Message.conversation_id == convs[1])
            )
            assert left == 0
