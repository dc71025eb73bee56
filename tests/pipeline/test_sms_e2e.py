"""SMS end to end over real HTTP: tresen, its worker and the Twilio-compatible simulator."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from tests import helpers
from tresen.app import create_app
from tresen.channels.manage import add_channel, default_workspace, webhook_url
from tresen.db.tables import ChannelRow, ContactIdentity, Conversation, Message
from tresen.runtime import Runtime
from tresen.sim.server import serve_asgi
from tresen.sim.sms import SmsSimConfig, SmsSimulator, run_sms_simulator

CUSTOMER = "+4915112345678"
FAST = (0.02, 0.04, 0.06)


@dataclass
class SmsStack:
    """tresen + SMS simulator + channel + API client."""

    runtime: Runtime
    sim: SmsSimulator
    channel: ChannelRow
    api: httpx.AsyncClient

    async def customer_writes(self, text: str, number: str = CUSTOMER, **kw: Any) -> str:
        """The customer texts; returns the conversation id once it is stored."""
        await self.sim.customer_sends(number, text, **kw)
        async with self.runtime.sessions() as session:
            conv = await session.scalar(
                select(Conversation)
                .join(ContactIdentity, ContactIdentity.id == Conversation.identity_id)
                .where(
                    Conversation.channel_id == self.channel.id, ContactIdentity.address == number
                )
            )
        assert conv is not None, "the inbound SMS was not stored"
        return conv.id

    async def reply(self, conversation_id: str, body: dict[str, Any]) -> httpx.Response:
        """POST a message through the API."""
        return await self.api.post(f"/api/v1/conversations/{conversation_id}/messages", json=body)

    async def wait_states(
        self, ids: list[str], done: set[str], timeout: float = 30.0
    ) -> dict[str, Message]:
        """Wait until every message reached one of the `done` states."""
        deadline = time.monotonic() + timeout
        while True:
            async with self.runtime.sessions() as session:
                rows = {
                    m.id: m
                    for m in await session.scalars(select(Message).where(Message.id.in_(ids)))
                }
            if len(rows) == len(ids) and all(r.state in done for r in rows.values()):
                return rows
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"not {done} after {timeout}s: {[r.state for r in rows.values()]}"
                )
            await asyncio.sleep(0.05)

    async def inbound_payloads(self) -> list[dict[str, Any]]:
        """Payloads of the stored inbound messages, oldest first."""
        async with self.runtime.sessions() as session:
            rows = await session.scalars(
                select(Message).where(Message.direction == "inbound").order_by(Message.created_at)
            )
            return [dict(m.payload or {}) for m in rows]


@asynccontextmanager
async def sms_stack(
    runtime: Runtime,
    sim_config: SmsSimConfig | None = None,
    *,
    channel_mps: float = 50.0,
    worker: bool = True,
) -> AsyncIterator[SmsStack]:
    """Start tresen with its worker and the SMS simulator, wired together."""
    config = sim_config or SmsSimConfig(status_delays=FAST, mps=100, webhook_retry_delays=(0.1,))
    app = create_app(runtime.settings, runtime=runtime, embedded_worker=worker, migrate=False)
    async with serve_asgi(app) as base_url, run_sms_simulator(config) as sim:
        # Twilio signs the URL it was given, so tresen's public base URL must be the real one.
        runtime.settings = runtime.settings.with_overrides(base_url=base_url)
        async with runtime.sessions() as session, session.begin():
            ws = await default_workspace(session, "Radladen")
            channel = await add_channel(
                session,
                ws.id,
                "sms",
                "SMS",
                {
                    "account_sid": config.account_sid,
                    "auth_token": config.auth_token,
                    "from_number": config.phone_number,
                    "api_base": sim.base_url,
                    "messages_per_second": channel_mps,
                },
            )
            hook = webhook_url(base_url, channel)
            await session.execute(
                update(ChannelRow)
                .where(ChannelRow.id == channel.id)
                .values(config={**channel.config, "status_callback_url": hook})
            )
        sim.config.webhook_url = hook
        token = await helpers.seed_token(runtime, channel.workspace_id)
        async with httpx.AsyncClient(
            base_url=base_url, headers={"Authorization": f"Bearer {token}"}, timeout=10
        ) as api:
            yield SmsStack(runtime, sim, channel, api)


async def test_customer_texts_agent_replies_status_reaches_delivered(runtime: Runtime) -> None:
    async with sms_stack(runtime) as stack:
        conv = await stack.customer_writes("Habt ihr das Rad in 56 cm? Grüße")
        [payload] = await stack.inbound_payloads()
        assert payload["Body"] == "Habt ihr das Rad in 56 cm? Grüße" and "keyword" not in payload
        response = await stack.reply(conv, {"kind": "text", "body": "Ja, ist da! Preis 499 €"})
        assert response.status_code == 202, response.text
        message_id = response.json()["id"]
        rows = await stack.wait_states([message_id], {"delivered"})
        [entry] = stack.sim.ledger
        assert rows[message_id].provider_message_id == entry.sid
        assert rows[message_id].delivered_at is not None
        assert entry.to == CUSTOMER and entry.body == "Ja, ist da! Preis 499 €"
        assert entry.status_callback and "tresen_ref=" + message_id in entry.status_callback
        assert stack.sim.webhook_stats.failed == 0 and stack.sim.duplicates() == 0


async def test_stop_opts_out_21610_then_start_opts_back_in(runtime: Runtime) -> None:
    async with sms_stack(runtime) as stack:
        conv = await stack.customer_writes("STOP")
        assert (await stack.inbound_payloads())[-1]["keyword"] == "opt_out"
        refused = (await stack.reply(conv, {"kind": "text", "body": "Schade!"})).json()["id"]
        rows = await stack.wait_states([refused], {"failed"})
        assert rows[refused].error_code == "21610"
        assert "opted out" in (rows[refused].error_reason or "")
        async with runtime.sessions() as session:
            identity = await session.scalar(
                select(ContactIdentity).where(ContactIdentity.address == CUSTOMER)
            )
        assert identity is not None and identity.unreachable
        assert stack.sim.ledger == []

        await stack.customer_writes("Start")
        assert (await stack.inbound_payloads())[-1]["keyword"] == "opt_in"
        again = (await stack.reply(conv, {"kind": "text", "body": "Willkommen zurück"})).json()[
            "id"
        ]
        await stack.wait_states([again], {"delivered"})
        assert len(stack.sim.ledger) == 1


async def test_german_opt_out_and_help_words_are_marked(runtime: Runtime) -> None:
    async with sms_stack(runtime) as stack:
        await stack.customer_writes(" abmelden ")
        await stack.customer_writes("Kündigen", number="+4915100000002")
        await stack.customer_writes("HILFE", number="+4915100000003")
        keywords = [p.get("keyword") for p in await stack.inbound_payloads()]
        assert keywords == ["opt_out", "opt_out", "help"]


async def test_mms_is_stored_as_media_with_its_urls(runtime: Runtime) -> None:
    async with sms_stack(runtime) as stack:
        await stack.customer_writes("Kratzer am Rahmen", media_urls=["https://media.example/1.jpg"])
        async with runtime.sessions() as session:
            message = (await session.scalars(select(Message))).one()
        assert message.content_kind == "media" and message.body == "Kratzer am Rahmen"
        assert message.payload["media"] == [
            {"url": "https://media.example/1.jpg", "content_type": "image/jpeg"}
        ]


async def test_undelivered_shows_the_carrier_reason(runtime: Runtime) -> None:
    config = SmsSimConfig(status_delays=FAST, mps=100, undeliverable={CUSTOMER: 30003})
    async with sms_stack(runtime, config) as stack:
        conv = await stack.customer_writes("Hallo")
        message_id = (await stack.reply(conv, {"kind": "text", "body": "Hi"})).json()["id"]
        rows = await stack.wait_states([message_id], {"failed"})
        assert rows[message_id].error_code == "30003"
        assert "unreachable" in (rows[message_id].error_reason or "")


@pytest.mark.slow  # waits on a provider's rate limit or injected hangs for many seconds
async def test_rate_limited_by_provider_retries_until_delivered(runtime: Runtime) -> None:
    # One message every 2 s: the sends of one conversation go out one after another, and a
    # machine under load may take a few hundred ms per send, so only a slow cap is surely hit.
    config = SmsSimConfig(status_delays=FAST, mps=0.5, burst=1)
    async with sms_stack(runtime, config, channel_mps=50, worker=False) as stack:
        conv = await stack.customer_writes("Hallo")
        ids = [
            (await stack.reply(conv, {"kind": "text", "body": f"Teil {i}"})).json()["id"]
            for i in range(5)
        ]
        async with helpers.worker_running(runtime):  # all queued first: the sends outrun the cap
            await stack.wait_states(ids, {"delivered"}, timeout=60)
        assert stack.sim.stats()["rejected"].get("20429", 0) > 0, "the cap was never hit"
        assert len(stack.sim.ledger) == 5 and stack.sim.duplicates() == 0


async def test_longer_than_1600_characters_is_refused_by_the_api(runtime: Runtime) -> None:
    async with sms_stack(runtime) as stack:
        conv = await stack.customer_writes("Hallo")
        response = await stack.reply(conv, {"kind": "text", "body": "x" * 1601})
        assert response.status_code == 422
        assert response.json()["error"]["code"] == "too_long"
        assert stack.sim.ledger == []


async def test_buttons_become_numbered_options_and_a_number_answers_them(
    runtime: Runtime,
) -> None:
    async with sms_stack(runtime) as stack:
        conv = await stack.customer_writes("Habt ihr Schuhe in 42?")
        response = await stack.reply(
            conv,
            {
                "kind": "interactive",
                "body": "Welche Größe?",
                "payload": {
                    "buttons": [{"id": "s41", "title": "41"}, {"id": "s42", "title": "42"}]
                },
            },
        )
        assert response.status_code == 202, response.text
        await stack.wait_states([response.json()["id"]], {"delivered"})
        [entry] = stack.sim.ledger
        assert entry.body == "Welche Größe?\n\n1) 41\n2) 42"
        await stack.customer_writes("2")
        await _until(lambda: _button_of_last_inbound(runtime), "s42")


async def _button_of_last_inbound(runtime: Runtime) -> str | None:
    async with runtime.sessions() as session:
        payload = await session.scalar(
            select(Message.payload)
            .where(Message.direction == "inbound")
            .order_by(Message.created_at.desc())
            .limit(1)
        )
    return ((payload or {}).get("interactive") or {}).get("button_reply", {}).get("id")


async def _until(probe: Any, expected: Any, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while (value := await probe()) != expected:
        assert time.monotonic() < deadline, f"still {value!r}, expected {expected!r}"
        await asyncio.sleep(0.05)
