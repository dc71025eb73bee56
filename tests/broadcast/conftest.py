"""Fixtures for broadcast tests: a workspace, a WhatsApp channel at a simulator, subscribers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import insert

from tests.pipeline.stack import Stack, running_stack
from tresen.benchmarks.broadcast import TEMPLATE_BODY, seed_audience
from tresen.broadcast import topics
from tresen.broadcast.dispatch import Dispatcher
from tresen.db.tables import MessageTemplate, Topic
from tresen.domain.ids import new_id
from tresen.runtime import Runtime
from tresen.sim.whatsapp import WhatsAppSimConfig


@dataclass
class Shop:
    """A running stack with a topic, an approved template and a way to add subscribers."""

    stack: Stack
    topic: Topic
    dispatcher: Dispatcher

    @property
    def runtime(self) -> Runtime:
        return self.stack.runtime

    @property
    def workspace_id(self) -> str:
        return self.stack.channel.workspace_id

    async def subscribers(self, n: int, *, start: int = 0, window_open: bool = False) -> list[str]:
        """N confirmed subscribers; their windows open (wrote an hour ago) or closed."""
        wrote = datetime.now(UTC) - (timedelta(hours=1) if window_open else timedelta(days=3))
        if window_open:
            for i in range(start, start + n):
                self.stack.sim.open_window(f"4915{i:09d}")
        return await seed_audience(
            self.runtime.engine,
            workspace_id=self.workspace_id,
            channel_id=self.stack.channel.id,
            topic_id=self.topic.id,
            n=n,
            start=start,
            last_inbound_at=wrote,
        )


@pytest.fixture
async def shop(runtime: Runtime) -> AsyncIterator[Shop]:
    config = WhatsAppSimConfig(status_delays=(0.02, 0.04, 0.06), mps=400)
    async with running_stack(runtime, config, worker=False, channel_mps=400) as stack:
        async with runtime.sessions() as session, session.begin():
            topic = await topics.create_topic(
                session, stack.channel.workspace_id, "neuigkeiten", "Neuigkeiten"
            )
            await session.execute(
                insert(MessageTemplate).values(
                    id=new_id(),
                    workspace_id=stack.channel.workspace_id,
                    channel_id=stack.channel.id,
                    name="news_update",
                    language="de",
                    category="marketing",
                    body=TEMPLATE_BODY,
                    status="approved",
                    updated_at=datetime.now(UTC),
                )
            )
        yield Shop(stack, topic, Dispatcher(runtime, poll_seconds=0.05))
