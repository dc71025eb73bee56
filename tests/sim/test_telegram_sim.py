"""The Telegram Bot API simulator itself, over real HTTP."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from typing import Any

import httpx
import pytest
from litestar import Litestar, Request, post
from litestar.response import Response

from tresen.channels.telegram import TelegramChannel, set_webhook
from tresen.sim.server import serve_asgi
from tresen.sim.telegram import TelegramSimConfig, TelegramSimulator, run_telegram_simulator

CHAT = 4711


@dataclass
class Receiver:
    """Captures webhooks posted to it."""

    url: str = ""
    bodies: list[dict[str, Any]] = field(default_factory=list)
    secrets: list[str] = field(default_factory=list)
    answers: list[int] = field(default_factory=list)
    hits: int = 0


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    """A webhook receiver that records updates."""
    rec = Receiver()

    @post("/hook", status_code=200)
    async def hook(request: Request[Any, Any, Any]) -> Response[str]:
        rec.hits += 1
        if rec.answers:
            return Response("no", status_code=rec.answers.pop(0))
        rec.bodies.append(json.loads(await request.body()))
        rec.secrets.append(request.headers.get("x-telegram-bot-api-secret-token", ""))
        return Response("ok", status_code=200)

    async with serve_asgi(Litestar(route_handlers=[hook], openapi_config=None)) as base_url:
        rec.url = f"{base_url}/hook"
        yield rec


def config(receiver: Receiver | None = None, **overrides: Any) -> TelegramSimConfig:
    """A fast test configuration."""
    cfg = TelegramSimConfig(
        webhook_url=receiver.url if receiver else None,
        webhook_retry_delays=(0.02, 0.02, 0.02),
        seed=3,
    )
    return replace(cfg, **overrides)


async def call(
    sim: TelegramSimulator, method: str, body: dict[str, Any], token: str | None = None
) -> httpx.Response:
    """POST one Bot API method."""
    async with httpx.AsyncClient(base_url=sim.base_url or "", timeout=5) as client:
        return await client.post(f"/bot{token or sim.config.bot_token}/{method}", json=body)


async def test_send_message_returns_a_message_and_ledgers_it() -> None:
    async with run_telegram_simulator(config()) as sim:
        first = await call(sim, "sendMessage", {"chat_id": CHAT, "text": "Hallo"})
        second = await call(sim, "sendMessage", {"chat_id": str(CHAT), "text": "Noch was"})
        assert first.status_code == 200
        result = first.json()["result"]
        assert first.json()["ok"] is True and result["chat"]["id"] == CHAT
        assert second.json()["result"]["message_id"] == result["message_id"] + 1
        assert [e.payload["text"] for e in sim.ledger] == ["Hallo", "Noch was"]
        async with httpx.AsyncClient(base_url=sim.base_url or "") as client:
            ledger = (await client.get("/_sim/ledger")).json()
            shown = (await client.get("/_sim/messages", params={"chat_id": CHAT})).json()
        assert len(ledger) == 2 and [m["summary"] for m in shown] == ["Hallo", "Noch was"]
        assert sim.duplicates() == 0


async def test_wrong_token_and_bad_requests() -> None:
    async with run_telegram_simulator(config()) as sim:
        wrong = await call(sim, "sendMessage", {"chat_id": CHAT, "text": "x"}, token="1:nope")
        assert wrong.status_code == 401 and wrong.json() == {
            "ok": False,
            "error_code": 401,
            "description": "Unauthorized",
        }
        empty = await call(sim, "sendMessage", {"chat_id": CHAT, "text": " "})
        assert empty.status_code == 400 and "text is empty" in empty.json()["description"]
        long = await call(sim, "sendMessage", {"chat_id": CHAT, "text": "x" * 4097})
        assert "too long" in long.json()["description"]
        data = await call(
            sim,
            "sendMessage",
            {
                "chat_id": CHAT,
                "text": "?",
                "reply_markup": {"inline_keyboard": [[{"text": "a", "callback_data": "x" * 65}]]},
            },
        )
        assert data.status_code == 400 and "BUTTON_DATA_INVALID" in data.json()["description"]
        unknown = await call(sim, "launchRocket", {})
        assert unknown.status_code == 404
        assert sim.ledger == []


async def test_per_chat_and_overall_limits_answer_429_with_retry_after() -> None:
    # Both buckets refill far slower than a loaded machine sends: the limit is always hit.
    async with run_telegram_simulator(config(per_chat=(2, 0.05), retry_after=2)) as sim:
        answers = [
            await call(sim, "sendMessage", {"chat_id": CHAT, "text": f"n{i}"}) for i in range(3)
        ]
        assert [a.status_code for a in answers] == [200, 200, 429]
        assert answers[2].json()["parameters"] == {"retry_after": 2}
        assert answers[2].json()["description"] == "Too Many Requests: retry after 2"
        other = await call(sim, "sendMessage", {"chat_id": CHAT + 1, "text": "n"})
        assert other.status_code == 200
    # A cap of one message per 10 s: sends that go out one after another surely hit it.
    async with run_telegram_simulator(config(mps=0.1)) as sim:
        codes = [
            (await call(sim, "sendMessage", {"chat_id": 100 + i, "text": "n"})).status_code
            for i in range(5)
        ]
        assert codes.count(429) >= 1 and len(sim.ledger) == codes.count(200)


async def test_blocked_chat_gets_403() -> None:
    async with run_telegram_simulator(config()) as sim:
        async with httpx.AsyncClient(base_url=sim.base_url or "") as client:
            assert (await client.post("/_sim/block", json={"chat_id": CHAT})).status_code == 200
        answer = await call(sim, "sendMessage", {"chat_id": CHAT, "text": "Hallo"})
        assert answer.status_code == 403
        assert answer.json()["description"] == "Forbidden: bot was blocked by the user"


async def test_faults_are_injected() -> None:
    async with run_telegram_simulator(config(fault_rate=1.0, fault_kinds=("5xx",))) as sim:
        answer = await call(sim, "sendMessage", {"chat_id": CHAT, "text": "x"})
        assert answer.status_code == 502 and sim.faults["5xx"] == 1 and sim.ledger == []
    async with run_telegram_simulator(config(fault_rate=1.0, fault_kinds=("drop",))) as sim:
        with pytest.raises(httpx.HTTPError):
            await call(sim, "sendMessage", {"chat_id": CHAT, "text": "x"})


async def test_customer_messages_reach_the_webhook_with_the_secret(receiver: Receiver) -> None:
    async with run_telegram_simulator(config(receiver)) as sim:
        first = await sim.customer_sends(CHAT, first_name="Jana", body="Hallo")
        await sim.customer_sends(CHAT, type="photo", body="Bild")
        async with httpx.AsyncClient(base_url=sim.base_url or "") as client:
            answer = await client.post("/_sim/inbound", json={"chat_id": CHAT, "type": "location"})
            assert answer.status_code == 200
            bad = await client.post("/_sim/inbound", json={"chat_id": -5, "body": "x"})
            assert bad.status_code == 400
        for _ in range(100):
            if len(receiver.bodies) == 3:
                break
            await asyncio.sleep(0.02)
    assert receiver.secrets == [sim.config.secret_token] * 3
    text, photo, location = receiver.bodies
    assert text["update_id"] == first and photo["update_id"] == first + 1
    assert text["message"]["text"] == "Hallo" and text["message"]["chat"]["id"] == CHAT
    assert len(photo["message"]["photo"]) == 3 and photo["message"]["caption"] == "Bild"
    assert "latitude" in location["message"]["location"]


async def test_webhook_is_retried_until_2xx(receiver: Receiver) -> None:
    receiver.answers = [500, 503]
    async with run_telegram_simulator(config(receiver)) as sim:
        assert await sim.customer_sends(CHAT, body="hi")
        assert sim.webhook_stats.retried == 2 and sim.webhook_stats.delivered == 1
    assert receiver.hits == 3 and len(receiver.bodies) == 1


async def test_duplicate_delivery_repeats_the_same_update(receiver: Receiver) -> None:
    async with run_telegram_simulator(config(receiver, duplicate_rate=1.0)) as sim:
        await sim.customer_sends(CHAT, body="zweimal")
    assert len(receiver.bodies) == 2 and receiver.bodies[0] == receiver.bodies[1]


async def test_button_press_and_answer_callback_query(receiver: Receiver) -> None:
    async with run_telegram_simulator(config(receiver)) as sim:
        await sim.customer_sends(CHAT, body="Hallo")
        keyboard = {"inline_keyboard": [[{"text": "Ja", "callback_data": "yes"}]]}
        sent = await call(
            sim, "sendMessage", {"chat_id": CHAT, "text": "Ok?", "reply_markup": keyboard}
        )
        query_id = await sim.customer_presses(CHAT, "yes")
        query = receiver.bodies[-1]["callback_query"]
        assert query["id"] == query_id and query["data"] == "yes"
        assert query["message"]["message_id"] == sent.json()["result"]["message_id"]
        assert query["message"]["reply_markup"] == keyboard
        with pytest.raises(ValueError):
            await sim.customer_presses(CHAT, "no-such-button")
        ok = await call(sim, "answerCallbackQuery", {"callback_query_id": query_id})
        assert ok.json() == {"ok": True, "result": True}
        again = await call(sim, "answerCallbackQuery", {"callback_query_id": query_id})
        assert again.status_code == 400 and "query is too old" in again.json()["description"]
        assert sim.stats()["answered_callbacks"] == 1


async def test_set_webhook_from_the_adapter_configures_the_simulator(receiver: Receiver) -> None:
    async with run_telegram_simulator(config()) as sim, httpx.AsyncClient() as http:
        channel_config = {
            "bot_token": sim.config.bot_token,
            "secret_token": "new_Secret-42",
            "api_base": sim.base_url,
        }
        TelegramChannel.check_config(channel_config)
        await set_webhook(http, channel_config, receiver.url)
        assert sim.webhook_calls == [
            {
                "url": receiver.url,
                "secret_token": "new_Secret-42",
                "allowed_updates": [
                    "message",
                    "edited_message",
                    "callback_query",
                    "my_chat_member",
                ],
            }
        ]
        await sim.customer_sends(CHAT, body="nach setWebhook")
        info = await call(sim, "getWebhookInfo", {})
        assert info.json()["result"]["url"] == receiver.url
    assert receiver.secrets == ["new_Secret-42"]


async def test_get_requests_are_accepted_like_post() -> None:
    async with run_telegram_simulator(config()) as sim:
        async with httpx.AsyncClient(base_url=sim.base_url or "", timeout=5) as client:
            me = await client.get(f"/bot{sim.config.bot_token}/getMe")
            sent = await client.get(
                f"/bot{sim.config.bot_token}/sendMessage",
                params={"chat_id": str(CHAT), "text": "per GET"},
            )
            info = await client.get(f"/bot{sim.config.bot_token}/getWebhookInfo")
        assert me.status_code == 200 and me.json()["result"]["is_bot"] is True
        assert sent.status_code == 200 and sent.json()["result"]["text"] == "per GET"
        assert info.json()["result"] == {
            "url": "",
            "has_custom_certificate": False,
            "pending_update_count": 0,
        }
        assert [e.payload["text"] for e in sim.ledger] == ["per GET"]
