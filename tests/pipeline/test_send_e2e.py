"""Sending end to end over real HTTP: tresen, its worker and the WhatsApp simulator."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from sqlalchemy import update

from tests import helpers
from tests.helpers import client_for
from tests.pipeline.stack import running_stack
from tresen.db.tables import Conversation
from tresen.db.types import utcnow
from tresen.runtime import Runtime
from tresen.sim.whatsapp import WhatsAppSimConfig

FAST = (0.02, 0.04, 0.06)
DONE = {"read"}


async def test_customer_writes_agent_replies_status_reaches_read(runtime: Runtime) -> None:
    async with running_stack(runtime) as stack:
        conv = await stack.customer_writes("Habt ihr das Rad in 56 cm?")
        response = await stack.reply(conv, {"kind": "text", "body": "Ja, ist da! 🚲"})
        assert response.status_code == 202, response.text
        message_id = response.json()["id"]
        rows = await stack.wait_states([message_id], DONE)
        assert rows[message_id].provider_message_id == stack.sim.ledger[0].wamid
        assert (
            rows[message_id].sent_at and rows[message_id].delivered_at and rows[message_id].read_at
        )
        assert len(stack.sim.ledger) == 1
        fetched = await stack.api.get(f"/api/v1/messages/{message_id}")
        assert fetched.json()["state"] == "read"


async def test_every_sendable_kind_is_accepted_by_the_cloud_api(runtime: Runtime) -> None:
    bodies = [
        {"kind": "text", "body": "Hallo"},
        {
            "kind": "template",
            "payload": {
                "name": "order_confirmation",
                "language": "de",
                "parameters": ["Jana", "4711"],
            },
        },
        {
            "kind": "interactive",
            "body": "Welche Größe?",
            "payload": {"buttons": [{"id": "s41", "title": "41"}, {"id": "s42", "title": "42"}]},
        },
        {
            "kind": "interactive",
            "body": "Filiale?",
            "payload": {
                "button": "Wählen",
                "sections": [{"title": "Berlin", "rows": [{"id": "b1", "title": "Mitte"}]}],
            },
        },
        {
            "kind": "media",
            "body": "Rechnung",
            "payload": {
                "media_type": "document",
                "link": "https://shop.example/r.pdf",
                "filename": "r.pdf",
            },
        },
    ]
    async with running_stack(runtime) as stack:
        conv = await stack.customer_writes()
        ids = []
        for body in bodies:
            response = await stack.reply(conv, body)
            assert response.status_code == 202, response.text
            ids.append(response.json()["id"])
        await stack.wait_states(ids, DONE)
        assert sorted(e.type for e in stack.sim.ledger) == [
            "document",
            "interactive",
            "interactive",
            "template",
            "text",
        ]


async def test_free_text_outside_the_window_is_refused_before_sending(runtime: Runtime) -> None:
    async with running_stack(runtime) as stack:
        conv = await stack.customer_writes()
        async with runtime.sessions() as session, session.begin():
            await session.execute(
                update(Conversation).values(last_inbound_at=utcnow() - timedelta(hours=25))
            )
        response = await stack.reply(conv, {"kind": "text", "body": "Noch da?"})
        assert response.status_code == 422
        error = response.json()["error"]
        assert error["code"] == "window_closed"
        assert "24 hours" in error["message"] and "template" in error["message"]
        template = await stack.reply(
            conv, {"kind": "template", "payload": {"name": "follow_up", "language": "de"}}
        )
        assert template.status_code == 202
        await stack.wait_states([template.json()["id"]], DONE)
        assert len(stack.sim.ledger) == 1


async def test_window_closing_while_queued_fails_at_send_time(runtime: Runtime) -> None:
    async with running_stack(runtime, worker=False) as stack:
        conv = await stack.customer_writes()
        response = await stack.reply(conv, {"kind": "text", "body": "Spät"})
        async with runtime.sessions() as session, session.begin():
            await session.execute(
                update(Conversation).values(last_inbound_at=utcnow() - timedelta(hours=25))
            )

        async with client_for(runtime, worker=True):
            rows = await stack.wait_states([response.json()["id"]], {"failed"})
        message = rows[response.json()["id"]]
        assert message.error_code == "window_closed" and "template" in (message.error_reason or "")
        assert stack.sim.ledger == []


@pytest.mark.parametrize("mode", ["response", "status"])
async def test_provider_window_violation_shows_code_and_reason(runtime: Runtime, mode: str) -> None:
    async with running_stack(
        runtime, WhatsAppSimConfig(status_delays=FAST, window_violation=mode)
    ) as stack:
        conv = await stack.customer_writes()
        stack.sim.close_window("4915112345678")
        response = await stack.reply(conv, {"kind": "text", "body": "Hallo?"})
        rows = await stack.wait_states([response.json()["id"]], {"failed"})
        message = rows[response.json()["id"]]
        assert message.error_code == "131047"
        assert message.error_reason


@pytest.mark.slow  # waits on a provider's rate limit or injected hangs for many seconds
async def test_rate_limited_by_provider_retries_until_sent(runtime: Runtime) -> None:
    config = WhatsAppSimConfig(status_delays=FAST, mps=3)  # low, so even a slow machine outruns it
    # All 20 are queued before a worker starts, in ten conversations (the messages of one
    # conversation go out one after the other), so the first wave alone exceeds the cap.
    async with running_stack(runtime, config, channel_mps=200, worker=False) as stack:
        ids = []
        for customer in range(10):
            conv = await stack.customer_writes(wa_id=f"49151000020{customer:02d}")
            for i in range(2):
                response = await stack.reply(conv, {"kind": "text", "body": f"Nachricht {i}"})
                ids.append(response.json()["id"])
        async with helpers.worker_running(runtime):
            await stack.wait_states(ids, DONE, timeout=60)
        assert stack.sim.stats()["rejected"].get("130429", 0) > 0, (
            "the cap was never hit; the test proves nothing"
        )
        assert stack.sim.duplicates() == 0
        assert len(stack.sim.ledger) == 20


async def test_own_rate_limit_keeps_under_the_cap(runtime: Runtime) -> None:
    config = WhatsAppSimConfig(status_delays=FAST, mps=20)
    async with running_stack(runtime, config, channel_mps=15) as stack:
        conv = await stack.customer_writes()
        ids = [
            (await stack.reply(conv, {"kind": "text", "body": f"N{i}"})).json()["id"]
            for i in range(40)
        ]
        await stack.wait_states(ids, DONE, timeout=60)
        assert stack.sim.stats()["rejected"].get("130429", 0) == 0
        assert len(stack.sim.ledger) == 40


async def test_exhausted_retries_go_to_dead_letters_and_can_be_retried(runtime: Runtime) -> None:
    runtime.settings = runtime.settings.with_overrides(max_send_attempts=2)
    config = WhatsAppSimConfig(status_delays=FAST, fault_rate=1.0, fault_kinds=("5xx",))
    async with running_stack(runtime, config) as stack:
        conv = await stack.customer_writes()
        response = await stack.reply(conv, {"kind": "text", "body": "Hallo"})
        message_id = response.json()["id"]
        rows = await stack.wait_states([message_id], {"dead"}, timeout=30)
        assert rows[message_id].error_code == "retries_exhausted"
        dead = (await stack.api.get("/api/v1/jobs/dead")).json()
        assert [j["payload"]["message_id"] for j in dead] == [message_id]
        assert "131016" in dead[0]["last_error"] or "500" in dead[0]["last_error"]
        stack.sim.config.fault_rate = 0.0
        retried = await stack.api.post(f"/api/v1/jobs/{dead[0]['id']}/retry")
        assert retried.status_code == 202
        await stack.wait_states([message_id], DONE)
        assert (await stack.api.get("/api/v1/jobs/dead")).json() == []


@pytest.mark.slow  # waits on a provider's rate limit or injected hangs for many seconds
async def test_thirty_percent_transient_faults_deliver_everything(runtime: Runtime) -> None:
    runtime.settings = runtime.settings.with_overrides(send_timeout_seconds=3.0)
    config = WhatsAppSimConfig(
        status_delays=FAST,
        fault_rate=0.3,
        fault_after_accept_share=0.5,
        timeout_seconds=4.0,
        seed=7,
    )
    # A generous client timeout: only injected hangs (4 s) time out, not a slow answer on a busy machine.
    await runtime.http.aclose()
    runtime.http = httpx.AsyncClient(timeout=httpx.Timeout(3.0))
    async with running_stack(runtime, config) as stack:
        # Twelve customers, five messages each: each conversation's messages go out one after
        # the other (in order), the conversations in parallel.
        ids = []
        for customer in range(12):
            conv = await stack.customer_writes(wa_id=f"49151000010{customer:02d}")
            ids += [
                (await stack.reply(conv, {"kind": "text", "body": f"Teil {i}"})).json()["id"]
                for i in range(5)
            ]
        rows = await stack.wait_states(ids, DONE, timeout=120)
        faults = sum(stack.sim.stats()["faults"].values())
        assert faults >= 10, "not enough faults were injected to prove anything"
        accepted_ids = {e.biz_opaque_callback_data for e in stack.sim.ledger}
        assert accepted_ids == set(ids)
        after_accept = stack.sim.stats().get("faults_after_accept", faults)
        assert stack.sim.duplicates() <= after_accept, (stack.sim.duplicates(), stack.sim.stats())
        assert all(r.provider_message_id for r in rows.values())


async def test_messages_of_one_conversation_reach_the_provider_in_order(runtime: Runtime) -> None:
    """Quick replies with failing sends in between still arrive in the order they were written."""
    config = WhatsAppSimConfig(status_delays=FAST, fault_rate=0.3, fault_kinds=("5xx",), seed=3)
    async with running_stack(runtime, config, worker=False) as stack:
        conv = await stack.customer_writes()
        ids = [
            (await stack.reply(conv, {"kind": "text", "body": f"Satz {i}"})).json()["id"]
            for i in range(15)
        ]
        async with helpers.worker_running(runtime):  # 15 jobs due at once, claimed together
            await stack.wait_states(ids, DONE, timeout=90)
        assert sum(stack.sim.stats()["faults"].values()) >= 2, "no failures to reorder around"
        assert [e.payload["text"]["body"] for e in stack.sim.ledger] == [
            f"Satz {i}" for i in range(15)
        ]
