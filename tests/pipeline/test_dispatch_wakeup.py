"""A commit in one process wakes the dispatcher of another through Redis, not the next poll."""

from __future__ import annotations

import asyncio
import dataclasses
import secrets

import pytest
from sqlalchemy import select

from tests import helpers
from tests.test_events import redis_url  # noqa: F401 - the fixture
from tresen.channels.base import ChannelRef, InboundMessage, ParsedWebhook
from tresen.db import outbox
from tresen.db.tables import Conversation, DomainEventRow
from tresen.db.types import utcnow
from tresen.domain.events import ConversationAssigned
from tresen.domain.message import ContentKind
from tresen.handlers import events as dispatch
from tresen.runtime import Runtime
from tresen.settings import Settings


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_a_commit_in_another_process_wakes_the_dispatcher_through_redis(
    settings: Settings,
    redis_url: str,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(dispatch, "POLL_SECONDS", 60.0)  # a poll would come far too late
    shared = dataclasses.replace(
        settings, redis_url=redis_url, redis_prefix=f"tresen-test-{secrets.token_hex(4)}:"
    )
    web, worker = Runtime.create(shared), Runtime.create(shared)
    stopping = asyncio.Event()
    poller: asyncio.Task[None] | None = None
    try:
        ws, channel = await helpers.seed_whatsapp(web)
        ref = ChannelRef(channel.id, ws, channel.kind)
        message = InboundMessage(
            "wamid.1", "4915100000001", "Kim", utcnow(), ContentKind.TEXT, "Hallo", {}
        )
        await web.receiver.receive(ref, ParsedWebhook([message]))
        async with web.sessions() as session:
            conversation_id = (await session.scalars(select(Conversation.id))).one()

        while await dispatch.dispatch_once(worker):  # the backlog: nothing for the next poll
            pass
        worker.jobs_ready.clear()
        poller = asyncio.create_task(dispatch.dispatch_poller(worker, stopping))
        await asyncio.wait_for(worker.events.connected.wait(), 10)  # type: ignore[attr-defined]

        async with web.sessions() as session, session.begin():
            outbox.record(session, ConversationAssigned(ws, conversation_id, "a1", "agent"))
        # The worker's dispatcher queues the live consumer's delivery: woken by the web
        # process's notice, as its own commit never touched the worker's `events_ready`.
        await asyncio.wait_for(worker.jobs_ready.wait(), 10)
        async with worker.sessions() as session:
            undispatched = await session.scalar(
                select(DomainEventRow.id).where(DomainEventRow.position.is_(None))
            )
        assert undispatched is None
    finally:
        stopping.set()
        if poller is not None:
            await asyncio.wait_for(poller, 10)
        await web.close()
        await worker.close()
