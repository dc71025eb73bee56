"""A running stack for end-to-end tests: tresen over HTTP, the WhatsApp simulator, a channel."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy import select

from tests import helpers
from tresen.app import create_app
from tresen.channels.manage import webhook_url
from tresen.db.tables import ChannelRow, ContactIdentity, Conversation, Message
from tresen.runtime import Runtime
from tresen.sim.server import serve_asgi
from tresen.sim.whatsapp import WhatsAppSimConfig, WhatsAppSimulator, run_whatsapp_simulator

CUSTOMER = "4915112345678"


@dataclass
class Stack:
    """tresen + simulator + channel + API client."""

    runtime: Runtime
    sim: WhatsAppSimulator
    channel: ChannelRow
    base_url: str
    api: httpx.AsyncClient

    async def customer_writes(self, text: str = "Hallo", wa_id: str = CUSTOMER) -> str:
        """The customer sends a text; returns the conversation id once it is stored."""
        await self.sim.customer_sends(wa_id, name="Jana Müller", body=text)
        async with self.runtime.sessions() as session:
            conv = await session.scalar(
                select(Conversation)
                .join(ContactIdentity, ContactIdentity.id == Conversation.identity_id)
                .where(Conversation.channel_id == self.channel.id, ContactIdentity.address == wa_id)
            )
        assert conv is not None, "the inbound message was not stored"
        return conv.id

    async def reply(self, conversation_id: str, body: dict[str, Any]) -> httpx.Response:
        """POST a message through the API."""
        return await self.api.post(f"/api/v1/conversations/{conversation_id}/messages", json=body)

    async def wait_states(
        self, message_ids: list[str], done: set[str], timeout: float = 30.0
    ) -> dict[str, Message]:
        """Wait until every message reached one of the `done` states; return them."""
        deadline = time.monotonic() + timeout
        while True:
            async with self.runtime.sessions() as session:
                rows = {
                    m.id: m
                    for m in await session.scalars(
                        select(Message).where(Message.id.in_(message_ids))
                    )
                }
            if all(r.state in done for r in rows.values()) and len(rows) == len(message_ids):
                return rows
            if time.monotonic() > deadline:
                states = sorted(r.state for r in rows.values())
                raise AssertionError(f"messages did not reach {done} in {timeout}s: {states}")
            await asyncio.sleep(0.05)


@asynccontextmanager
async def running_stack(
    runtime: Runtime,
    sim_config: WhatsAppSimConfig | None = None,
    *,
    worker: bool = True,
    channel_mps: float = 80.0,
) -> AsyncIterator[Stack]:
    """Start tresen (with or without its embedded worker) and the simulator, wired together."""
    config = sim_config or WhatsAppSimConfig(status_delays=(0.02, 0.04, 0.06))
    app = create_app(runtime.settings, runtime=runtime, embedded_worker=worker, migrate=False)
    async with serve_asgi(app) as base_url, run_whatsapp_simulator(config) as sim:
        _, channel = await helpers.seed_whatsapp(
            runtime,
            api_base=sim.base_url,
            access_token=config.access_token,
            app_secret=config.app_secret,
            phone_number_id=config.phone_number_id,
            waba_id=config.waba_id,
            messages_per_second=channel_mps,
        )
        sim.config.webhook_url = webhook_url(base_url, channel)
        token = await helpers.seed_token(runtime, channel.workspace_id)
        async with httpx.AsyncClient(
            base_url=base_url, headers={"Authorization": f"Bearer {token}"}, timeout=10
        ) as api:
            yield Stack(runtime, sim, channel, base_url, api)
