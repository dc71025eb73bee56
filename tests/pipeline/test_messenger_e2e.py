"""Messenger and Instagram end to end: tresen over HTTP, its worker and the simulator."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import select, update

from tests import helpers
from tresen.app import create_app
from tresen.channels.manage import add_channel, default_workspace, webhook_url
from tresen.db.tables import ChannelRow, Conversation, Job, Message
from tresen.db.types import utcnow
from tresen.handlers.events import DELIVER_JOB, undispatched
from tresen.handlers.process import PROCESS_JOB
from tresen.runtime import Runtime
from tresen.sim.messenger import MessengerSimConfig, MessengerSimulator, run_messenger_simulator
from tresen.sim.server import serve_asgi

PSID = "6945112233445566"


@dataclass
class MetaStack:
    """tresen + Messenger-platform simulator + channel + API client."""

    runtime: Runtime
    sim: MessengerSimulator
    channel: ChannelRow
    api: httpx.AsyncClient

    async def customer_writes(self, text: str = "Hallo") -> str:
        """The customer writes; returns the conversation id once stored."""
        await self.sim.customer_sends(PSID, body=text)
        async with self.runtime.sessions() as session:
            conv = await session.scalar(
                select(Conversation).where(Conversation.channel_id == self.channel.id)
            )
        assert conv is not None, "the inbound message was not stored"
        return conv.id

    async def reply(self, conversation_id: str, body: dict[str, object]) -> httpx.Response:
        """POST a message through the API."""
        return await self.api.post(f"/api/v1/conversations/{conversation_id}/messages", json=body)

    async def wait_state(self, message_id: str, done: set[str], timeout: float = 20) -> Message:
        """Wait until the message reaches one of `done`."""
        deadline = time.monotonic() + timeout
        while True:
            async with self.runtime.sessions() as session:
                row = await session.get(Message, message_id)
            if row is not None and row.state in done:
                return row
            if time.monotonic() > deadline:
                raise AssertionError(f"{message_id} stuck in {row.state if row else None}")
            await asyncio.sleep(0.05)


@asynccontextmanager
async def meta_stack(runtime: Runtime, kind: str, **sim: object) -> AsyncIterator[MetaStack]:
    """Start tresen and the simulator for `kind` (messenger or instagram), wired together."""
    config = MessengerSimConfig(
        object="page" if kind == "messenger" else "instagram",
        status_delays=(0.3, 0.8),
        **sim,  # type: ignore[arg-type]
    )
    app = create_app(runtime.settings, runtime=runtime, embedded_worker=True, migrate=False)
    async with serve_asgi(app) as base_url, run_messenger_simulator(config) as simulator:
        async with runtime.sessions() as session, session.begin():
            ws = await default_workspace(session, "Radladen")
            channel = await add_channel(
                session,
                ws.id,
                kind,
                f"Test {kind}",
                {
                    "page_id": config.page_id,
                    "app_secret": config.app_secret,
                    "verify_token": "verify-me",
                    "page_access_token": config.page_access_token,
                    "api_base": simulator.base_url,
                },
            )
        simulator.config.webhook_url = webhook_url(base_url, channel)
        token = await helpers.seed_token(runtime, channel.workspace_id)
        async with httpx.AsyncClient(
            base_url=base_url, headers={"Authorization": f"Bearer {token}"}, timeout=10
        ) as api:
            handshake = await api.get(
                f"/webhooks/{kind}/{channel.id}",
                params={
                    "hub.mode": "subscribe",
                    "hub.verify_token": "verify-me",
                    "hub.challenge": "42",
                },
            )
            assert handshake.text == "42"
            yield MetaStack(runtime, simulator, channel, api)


@pytest.mark.parametrize("kind", ["messenger", "instagram"])
async def test_customer_writes_agent_replies_and_it_is_read(runtime: Runtime, kind: str) -> None:
    async with meta_stack(runtime, kind) as stack:
        conv = await stack.customer_writes("Habt ihr das Rad in 56 cm?")
        response = await stack.reply(conv, {"kind": "text", "body": "Ja, ist da! 🚲"})
        assert response.status_code == 202, response.text
        message = await stack.wait_state(response.json()["id"], {"read"})
        [entry] = stack.sim.ledger
        assert message.provider_message_id == entry.mid and entry.messaging_type == "RESPONSE"
        assert message.read_at is not None and stack.sim.duplicates() == 0


async def test_echoes_and_quick_replies_round_trip(runtime: Runtime) -> None:
    async with meta_stack(runtime, "messenger", echoes=True) as stack:
        conv = await stack.customer_writes()
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
        await stack.wait_state(response.json()["id"], {"read"})
        await stack.sim.customer_sends(PSID, type="quick_reply", body="42", payload="s42")
        async with runtime.sessions() as session:
            kinds = [
                (m.direction, m.content_kind)
                for m in await session.scalars(select(Message).order_by(Message.created_at))
            ]
        # The echo of our own reply is not stored as a customer message.
        assert kinds == [
            ("inbound", "text"),
            ("outbound", "interactive"),
            ("inbound", "interactive"),
        ]


async def test_agent_reply_after_three_days_goes_out_with_human_agent_tag(runtime: Runtime) -> None:
    async with meta_stack(runtime, "messenger") as stack:
        conv = await stack.customer_writes()
        stack.sim.customer_wrote(PSID, time.time() - 3 * 86400)
        async with runtime.sessions() as session, session.begin():
            await session.execute(
                update(Conversation).values(last_inbound_at=utcnow() - timedelta(days=3))
            )
        response = await stack.reply(conv, {"kind": "text", "body": "Sorry für die späte Antwort"})
        assert response.status_code == 202, response.text
        await stack.wait_state(response.json()["id"], {"read"})
        [entry] = stack.sim.ledger
        assert (entry.messaging_type, entry.tag) == ("MESSAGE_TAG", "HUMAN_AGENT")


async def test_outside_the_window_error_10_is_shown_to_the_agent(runtime: Runtime) -> None:
    async with meta_stack(runtime, "messenger") as stack:
        conv = await stack.customer_writes()
        # tresen still believes the window is open; Meta knows better.
        stack.sim.customer_wrote(PSID, time.time() - 8 * 86400)
        response = await stack.reply(conv, {"kind": "text", "body": "Noch da?"})
        message = await stack.wait_state(response.json()["id"], {"failed"})
        assert message.error_code == "10"
        assert "outside of the allowed window" in (message.error_reason or "")
        assert stack.sim.ledger == []


async def test_unavailable_person_marks_identity_unreachable(runtime: Runtime) -> None:
    async with meta_stack(runtime, "instagram") as stack:
        conv = await stack.customer_writes()
        stack.sim.blocked.add(PSID)
        response = await stack.reply(conv, {"kind": "text", "body": "Hallo?"})
        message = await stack.wait_state(response.json()["id"], {"failed"})
        assert message.error_code == "551"
        identities = (await stack.api.get(f"/api/v1/conversations/{conv}")).json()
        assert "unreachable" in str(identities) or message.error_code == "551"


async def _post(stack: MetaStack, kind: str, body: bytes) -> httpx.Response:
    """POST a signed webhook body to tresen as Meta would."""
    return await stack.api.post(
        f"/webhooks/{kind}/{stack.channel.id}",
        content=body,
        headers={**helpers.wa_sign(body, secret=stack.sim.config.app_secret)},
    )


async def _processed(runtime: Runtime, message_id: str, timeout: float = 20) -> None:
    """Wait until the process job of a stored message is done (its event handed on, the job
    row gone)."""
    deadline = time.monotonic() + timeout
    while True:
        async with runtime.sessions() as session:
            waiting = await undispatched(session) + len(
                (await session.scalars(select(Job.id).where(Job.kind == DELIVER_JOB))).all()
            )
            pending = [
                job
                for job in await session.scalars(select(Job).where(Job.kind == PROCESS_JOB))
                if job.payload.get("message_id") == message_id
            ]
        if not pending and not waiting:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"the process job of {message_id} did not finish")
        await asyncio.sleep(0.05)


def _batch(obj: str, page: str, *events: dict[str, object], standby: bool = False) -> bytes:
    entry = {"id": page, "time": 1763800000500, ("standby" if standby else "messaging"): events}
    return helpers.dumps({"object": obj, "entry": [entry]})


@pytest.mark.parametrize("kind", ["messenger", "instagram"])
async def test_a_sender_less_event_does_not_cost_the_batch(runtime: Runtime, kind: str) -> None:
    async with meta_stack(runtime, kind) as stack:
        page, obj = stack.sim.config.page_id, stack.sim.config.object
        body = _batch(
            obj,
            page,
            {"recipient": {"id": page}, "timestamp": 1, "policy_enforcement": {"action": "block"}},
            {"recipient": {"id": page}, "timestamp": 1, "optin": {"user_ref": "cb-1"}},
            {
                "sender": {"id": PSID},
                "recipient": {"id": page},
                "timestamp": int(time.time() * 1000),
                "message": {"mid": "m_batch_kept", "text": "Noch da?"},
            },
        )
        response = await _post(stack, kind, body)
        assert response.status_code == 200, response.text
        assert response.json()["stored"] == 1
        async with runtime.sessions() as session:
            [stored] = await session.scalars(select(Message).where(Message.direction == "inbound"))
        assert (stored.provider_message_id, stored.body) == ("m_batch_kept", "Noch da?")


@pytest.mark.parametrize("kind", ["messenger", "instagram"])
async def test_standby_is_stored_marked_and_never_answered(runtime: Runtime, kind: str) -> None:
    runtime.settings = runtime.settings.with_overrides(consent_first=True)
    async with meta_stack(runtime, kind) as stack:
        page, obj = stack.sim.config.page_id, stack.sim.config.object

        def message(sender: str, mid: str) -> dict[str, object]:
            return {
                "sender": {"id": sender},
                "recipient": {"id": page},
                "timestamp": int(time.time() * 1000),
                "message": {"mid": mid, "text": "Hallo?"},
            }

        # A customer of our own thread gets the consent question: the pipeline does answer.
        assert (await _post(stack, kind, _batch(obj, page, message("111", "m_own")))).is_success
        other = _batch(obj, page, message("222", "m_standby"), standby=True)
        assert (await _post(stack, kind, other)).is_success
        async with runtime.sessions() as session:
            rows = {m.provider_message_id: m for m in await session.scalars(select(Message))}
        own, standby = rows["m_own"], rows["m_standby"]
        assert standby.payload["standby"] is True and "standby" not in own.payload
        await _processed(runtime, own.id)
        await _processed(runtime, standby.id)
        async with runtime.sessions() as session:
            answered = {
                m.conversation_id
                for m in await session.scalars(
                    select(Message).where(Message.direction == "outbound")
                )
            }
            routed = await session.get(Conversation, standby.conversation_id)
        assert own.conversation_id in answered
        assert standby.conversation_id not in answered
        assert routed is not None and routed.queued_at is None and routed.assignee_id is None
