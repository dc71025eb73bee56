"""The changes announced since the first round: reopening, labels, notes, purges, send outcomes."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import select, update

from tests import helpers
from tresen.broadcast import topics
from tresen.channels.base import ChannelRef, InboundMessage, ParsedWebhook
from tresen.db.tables import (
    ChannelRow,
    Contact,
    Conversation,
    DomainEventRow,
    Message,
    Subscription,
    Topic,
    User,
)
from tresen.db.types import utcnow
from tresen.domain.message import ContentKind
from tresen.handlers.send import on_send_dead, send_job
from tresen.inbox import accounts, labels, people, service
from tresen.inbox.permissions import actor_for
from tresen.jobs.queue import ClaimedJob
from tresen.pipeline.outbound import OutboundContent, queue_message
from tresen.privacy.restriction import set_restricted
from tresen.runtime import Runtime

PASSWORD = "richtig-langes-passwort"


def _msg(pid: str) -> InboundMessage:
    return InboundMessage(
        provider_message_id=pid,
        sender_address="4915100000001",
        sender_name="Kim",
        sent_at=utcnow(),
        content_kind=ContentKind.TEXT,
        body="Hallo",
        payload={},
    )


async def _seeded(runtime: Runtime) -> tuple[ChannelRef, str, str]:
    """A WhatsApp channel with one conversation: (channel, conversation id, contact id)."""
    ws, channel = await helpers.seed_whatsapp(runtime)
    ref = ChannelRef(channel.id, ws, channel.kind)
    await runtime.receiver.receive(ref, ParsedWebhook([_msg("wamid.first")]))
    async with runtime.sessions() as session:
        conv = (await session.scalars(select(Conversation))).one()
    return ref, conv.id, conv.contact_id


async def _events_after(runtime: Runtime, seq: int) -> list[tuple[str, dict[str, Any]]]:
    async with runtime.sessions() as session:
        rows = await session.scalars(
            select(DomainEventRow).where(DomainEventRow.seq > seq).order_by(DomainEventRow.seq)
        )
        return [(r.type, dict(r.payload)) for r in rows]


async def _last_seq(runtime: Runtime) -> int:
    async with runtime.sessions() as session:
        rows = list(await session.scalars(select(DomainEventRow.seq)))
    return max(rows, default=0)


async def _agent(runtime: Runtime, ws: str, email: str, role: str = "agent") -> str:
    async with runtime.sessions() as session, session.begin():
        return (await accounts.add_user(session, ws, email, role, PASSWORD)).id


async def test_a_message_reopening_a_resolved_conversation_announces_it(runtime: Runtime) -> None:
    ref, conv_id, _ = await _seeded(runtime)
    seq = await _last_seq(runtime)
    await runtime.receiver.receive(ref, ParsedWebhook([_msg("wamid.open")]))
    assert [t for t, _ in await _events_after(runtime, seq)] == ["message.received"]

    async with runtime.sessions() as session, session.begin():
        await session.execute(update(Conversation).values(status="resolved"))
    seq = await _last_seq(runtime)
    await runtime.receiver.receive(ref, ParsedWebhook([_msg("wamid.reopen")]))
    events = await _events_after(runtime, seq)
    assert [t for t, _ in events] == ["message.received", "conversation.status_changed"]
    assert events[1][1] == {"conversation_id": conv_id, "status": "open", "by": "message"}


async def test_labels_and_notes_are_announced(runtime: Runtime) -> None:
    ref, conv_id, _ = await _seeded(runtime)
    admin_id = await _agent(runtime, ref.workspace_id, "chefin@laden.example", "admin")
    async with runtime.sessions() as session:
        admin = await actor_for(session, await session.get_one(User, admin_id))
    seq = await _last_seq(runtime)
    async with runtime.sessions() as session, session.begin():
        vip = await labels.create_label(session, admin, "VIP", "red")
        assert await labels.add_label(session, admin, conv_id, vip.id)
        assert not await labels.add_label(session, admin, conv_id, vip.id)
        assert await labels.remove_label(session, admin, conv_id, vip.id)
        assert not await labels.remove_label(session, admin, conv_id, vip.id)
        assert await labels.add_label(session, admin, conv_id, vip.id)
        note = await service.add_note(session, admin, conv_id, "Kundin ruft morgen an")
    async with runtime.sessions() as session, session.begin():
        await labels.delete_label(session, admin, vip.id)
    label = {"conversation_id": conv_id, "label_id": vip.id}
    assert await _events_after(runtime, seq) == [
        ("conversation.label_added", label),
        ("conversation.label_removed", label),
        ("conversation.label_added", label),
        ("note.added", {"conversation_id": conv_id, "note_id": note.id, "author_kind": "agent"}),
        ("conversation.label_removed", label),
    ]


async def test_purged_requests_and_a_removed_agent_are_announced(runtime: Runtime) -> None:
    ref, conv_id, contact_id = await _seeded(runtime)
    admin_id = await _agent(runtime, ref.workspace_id, "chefin@laden.example", "admin")
    agent_id = await _agent(runtime, ref.workspace_id, "kim@laden.example")
    async with runtime.sessions() as session, session.begin():
        topic = Topic(workspace_id=ref.workspace_id, keyword="news", name="Neuigkeiten")
        session.add(topic)
        await session.flush()
        session.add(
            Subscription(
                workspace_id=ref.workspace_id,
                topic_id=topic.id,
                contact_id=contact_id,
                channel_id=ref.id,
                state=topics.PENDING,
                source="test",
                requested_at=utcnow() - timedelta(days=40),
            )
        )
        await session.execute(update(Conversation).values(assignee_id=agent_id))
    seq = await _last_seq(runtime)
    async with runtime.sessions() as session, session.begin():
        assert await topics.purge_unconfirmed(session, timedelta(days=30)) == 1
        await people.remove(session, await session.get_one(User, agent_id), actor_id=admin_id)
    assert await _events_after(runtime, seq) == [
        (
            "subscription.changed",
            {"contact_id": contact_id, "topic_id": topic.id, "state": "purged"},
        ),
        ("conversation.assigned", {"conversation_id": conv_id, "agent_id": None, "by": "admin"}),
    ]


async def _queued(runtime: Runtime, ref: ChannelRef) -> tuple[str, ClaimedJob]:
    async with runtime.sessions() as session, session.begin():
        conv = (await session.scalars(select(Conversation))).one()
        channel = await session.get_one(ChannelRow, ref.id)
        message = await queue_message(
            session, conv, channel, OutboundContent(ContentKind.TEXT, "Gern!")
        )
    job = ClaimedJob(
        "job-1",
        "message.send",
        {"message_id": message.id, "channel_id": ref.id},
        1,
        5,
        ref.workspace_id,
    )
    return message.id, job


async def test_a_single_send_announces_its_outcome_also_when_it_never_goes_out(
    runtime: Runtime,
) -> None:
    ref, conv_id, contact_id = await _seeded(runtime)
    refused_id, refused_job = await _queued(runtime, ref)
    dead_id, dead_job = await _queued(runtime, ref)
    seq = await _last_seq(runtime)
    async with runtime.sessions() as session, session.begin():
        await set_restricted(session, ref.workspace_id, contact_id, True, actor_id=None, via="test")
    await send_job(runtime, refused_job, "w")
    await on_send_dead(runtime, dead_job, "the provider was down all day")
    async with runtime.sessions() as session:
        states = dict((await session.execute(select(Message.id, Message.state))).all())
        restricted = (await session.get_one(Contact, contact_id)).restricted_at
    assert (states[refused_id], states[dead_id], restricted is not None) == ("failed", "dead", True)
    assert await _events_after(runtime, seq) == [
        ("contact.changed", {"contact_id": contact_id, "fields": ["restricted_at"]}),
        (
            "message.status_changed",
            {"conversation_id": conv_id, "state": "failed", "message_id": refused_id},
        ),
        (
            "message.status_changed",
            {"conversation_id": conv_id, "state": "dead", "message_id": dead_id},
        ),
    ]
