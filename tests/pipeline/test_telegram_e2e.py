"""Telegram end to end over real HTTP: tresen, its worker and the Bot API simulator."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from tests import helpers
from tresen.app import create_app
from tresen.channels.manage import add_channel, default_workspace, webhook_url
from tresen.channels.telegram import set_webhook
from tresen.db.tables import ChannelRow, ContactIdentity, Conversation, Message
from tresen.runtime import Runtime
from tresen.sim.server import serve_asgi
from tresen.sim.telegram import TelegramSimConfig, TelegramSimulator, run_telegram_simulator

CHAT = 555000111


@dataclass
class TelegramStack:
    """tresen + Telegram simulator + channel + API client."""

    runtime: Runtime
    sim: TelegramSimulator
    channel: ChannelRow
    api: httpx.AsyncClient

    async def customer_writes(self, text: str = "Hallo", chat: int = CHAT, **kw: Any) -> str:
        """The customer sends a message; returns the conversation id once it is stored."""
        await self.sim.customer_sends(chat, first_name="Jana", last_name="Müller", body=text, **kw)
        async with self.runtime.sessions() as session:
            conv = await session.scalar(
                select(Conversation)
                .join(ContactIdentity, ContactIdentity.id == Conversation.identity_id)
                .where(
                    Conversation.channel_id == self.channel.id, ContactIdentity.address == str(chat)
                )
            )
        assert conv is not None, "the inbound message was not stored"
        return conv.id

    async def reply(self, conversation_id: str, body: dict[str, Any]) -> str:
        """POST a message through the API; returns its id."""
        response = await self.api.post(
            f"/api/v1/conversations/{conversation_id}/messages", json=body
        )
        assert response.status_code == 202, response.text
        return str(response.json()["id"])

    async def messages(self) -> list[Message]:
        """Every stored message, oldest first."""
        async with self.runtime.sessions() as session:
            return list(await session.scalars(select(Message).order_by(Message.created_at)))

    async def wait_states(
        self, ids: list[str], done: set[str], timeout: float = 30.0
    ) -> dict[str, Message]:
        """Wait until every message reached one of the `done` states."""
        deadline = time.monotonic() + timeout
        while True:
            rows = {m.id: m for m in await self.messages() if m.id in ids}
            if len(rows) == len(ids) and all(r.state in done for r in rows.values()):
                return rows
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"not {done} in {timeout}s: {[r.state for r in rows.values()]}"
                )
            await asyncio.sleep(0.05)


async def until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait until predicate holds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


@asynccontextmanager
async def telegram_stack(
    runtime: Runtime, sim_config: TelegramSimConfig | None = None
) -> AsyncIterator[TelegramStack]:
    """Start tresen with its worker and the simulator; register the webhook with setWebhook."""
    config = sim_config or TelegramSimConfig(webhook_retry_delays=(0.05, 0.1, 0.2))
    app = create_app(runtime.settings, runtime=runtime, embedded_worker=True, migrate=False)
    async with serve_asgi(app) as base_url, run_telegram_simulator(config) as sim:
        channel_config = {
            "bot_token": config.bot_token,
            "secret_token": "shop_secret-Token",
            "api_base": sim.base_url,
        }
        async with runtime.sessions() as session, session.begin():
            ws = await default_workspace(session, "Radladen")
            channel = await add_channel(session, ws.id, "telegram", "Radladen Bot", channel_config)
        await set_webhook(runtime.http, channel_config, webhook_url(base_url, channel))
        token = await helpers.seed_token(runtime, channel.workspace_id)
        async with httpx.AsyncClient(
            base_url=base_url, headers={"Authorization": f"Bearer {token}"}, timeout=10
        ) as api:
            yield TelegramStack(runtime, sim, channel, api)


async def test_customer_writes_agent_replies_once(runtime: Runtime) -> None:
    async with telegram_stack(runtime) as stack:
        assert stack.sim.config.secret_token == "shop_secret-Token"
        conv = await stack.customer_writes("Habt ihr das Rad in 56 cm?")
        [inbound] = await stack.messages()
        assert inbound.body == "Habt ihr das Rad in 56 cm?" and inbound.direction == "inbound"
        async with runtime.sessions() as session:
            identity = (await session.scalars(select(ContactIdentity))).one()
        assert identity.address == str(CHAT) and identity.display_name == "Jana Müller"
        message_id = await stack.reply(conv, {"kind": "text", "body": "Ja, ist da! 🚲"})
        rows = await stack.wait_states([message_id], {"sent"})
        [entry] = stack.sim.ledger
        assert rows[message_id].provider_message_id == f"{CHAT}:{entry.message_id}"
        assert entry.payload == {"chat_id": str(CHAT), "text": "Ja, ist da! 🚲"}
        await asyncio.sleep(0.3)
        assert len(stack.sim.ledger) == 1 and stack.sim.duplicates() == 0


async def test_media_and_repeated_updates_are_stored_once(runtime: Runtime) -> None:
    config = TelegramSimConfig(duplicate_rate=1.0, webhook_retry_delays=(0.05,))
    async with telegram_stack(runtime, config) as stack:
        await stack.customer_writes("Hallo")
        await stack.customer_writes("Der Schaden", type="photo")
        await stack.sim.customer_sends(CHAT, type="location")
        assert stack.sim.webhook_stats.duplicated == 3
        kinds = [(m.content_kind, m.body) for m in await stack.messages()]
        assert kinds == [
            ("text", "Hallo"),
            ("media", "Der Schaden"),
            ("location", "52.520008,13.404954"),
        ]
        photo = (await stack.messages())[1]
        assert photo.payload["media"]["file_id"].endswith("x")  # the largest size


async def test_buttons_out_press_in_and_the_callback_is_answered(runtime: Runtime) -> None:
    async with telegram_stack(runtime) as stack:
        conv = await stack.customer_writes("Welche Größen habt ihr?")
        sent = await stack.reply(
            conv,
            {
                "kind": "interactive",
                "body": "Welche Größe?",
                "payload": {
                    "buttons": [{"id": "s56", "title": "56 cm"}, {"id": "s58", "title": "58 cm"}]
                },
            },
        )
        await stack.wait_states([sent], {"sent"})
        keyboard = stack.sim.ledger[0].payload["reply_markup"]["inline_keyboard"]
        assert keyboard == [
            [{"text": "56 cm", "callback_data": "s56"}],
            [{"text": "58 cm", "callback_data": "s58"}],
        ]
        query_id = await stack.sim.customer_presses(CHAT, "s58")
        await until(lambda: len(stack.sim.answered) == 1)
        assert stack.sim.answered[0]["callback_query_id"] == query_id
        pressed = (await stack.messages())[-1]
        assert (pressed.content_kind, pressed.body) == ("interactive", "58 cm")
        # Telegram repeats the update (our 200 got lost): stored and answered once.
        await stack.sim.deliver(stack.sim.inbound[-1])
        await asyncio.sleep(0.3)
        assert len(await stack.messages()) == 3 and len(stack.sim.answered) == 1


async def test_blocked_bot_fails_the_message_and_marks_the_identity_unreachable(
    runtime: Runtime,
) -> None:
    async with telegram_stack(runtime) as stack:
        conv = await stack.customer_writes("Tschüss")
        stack.sim.block(CHAT)
        message_id = await stack.reply(conv, {"kind": "text", "body": "Noch da?"})
        rows = await stack.wait_states([message_id], {"failed"})
        assert rows[message_id].error_code == "403"
        assert "blocked" in (rows[message_id].error_reason or "")
        async with runtime.sessions() as session:
            identity = (await session.scalars(select(ContactIdentity))).one()
        assert identity.unreachable is True
        assert stack.sim.ledger == []


@pytest.mark.slow  # waits on a provider's rate limit or injected hangs for many seconds
async def test_per_chat_limit_429_retry_after_until_everything_is_sent(runtime: Runtime) -> None:
    # Two at once, then one per 2 s: replies sent one after another surely hit it.
    config = TelegramSimConfig(per_chat=(2, 0.5), retry_after=1, webhook_retry_delays=(0.05,))
    async with telegram_stack(runtime, config) as stack:
        conv = await stack.customer_writes()
        ids = [await stack.reply(conv, {"kind": "text", "body": f"Teil {i}"}) for i in range(6)]
        await stack.wait_states(ids, {"sent"}, timeout=40)
        assert stack.sim.stats()["rejected"].get("429", 0) > 0, "the limit was never hit"
        assert sorted(e.payload["text"] for e in stack.sim.ledger) == [
            f"Teil {i}" for i in range(6)
        ]
        assert stack.sim.duplicates() == 0
