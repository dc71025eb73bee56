"""The Messenger/Instagram simulator: Send API rules, signed webhooks, ledger."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx
from litestar import Litestar, Request, post

from tresen.sim.messenger import MessengerSimConfig, run_messenger_simulator
from tresen.sim.server import serve_asgi
from tresen.sim.whatsapp import sign_body

PSID = "6945112233445566"


def _send(text: str = "Hallo", **extra: Any) -> dict[str, Any]:
    return {
        "recipient": {"id": PSID},
        "messaging_type": "RESPONSE",
        "message": {"text": text},
        **extra,
    }


async def test_send_rules_and_signed_receipts() -> None:
    received: list[tuple[bytes, str]] = []

    @post("/hook", status_code=200)
    async def hook(request: Request[Any, Any, Any]) -> None:
        received.append((await request.body(), request.headers["x-hub-signature-256"]))

    async with serve_asgi(Litestar([hook])) as hook_url:
        config = MessengerSimConfig(
            webhook_url=f"{hook_url}/hook", status_delays=(0.01, 0.02), echoes=True
        )
        async with (
            run_messenger_simulator(config) as sim,
            httpx.AsyncClient(base_url=sim.base_url) as c,
        ):
            url = "/v21.0/me/messages"
            token = {"access_token": "sim-page-token"}
            bad = await c.post(url, params={"access_token": "nope"}, json=_send())
            assert bad.json()["error"]["code"] == 190
            unknown = await c.post(url, params=token, json=_send())
            assert unknown.json()["error"]["error_subcode"] == 2018001
            await sim.customer_sends(PSID, body="Hallo")
            ok = await c.post(url, params=token, json=_send("eins"))
            assert ok.status_code == 200 and ok.json()["recipient_id"] == PSID
            sim.customer_wrote(PSID, time.time() - 3 * 86400)
            late = await c.post(url, params=token, json=_send())
            assert (late.json()["error"]["code"], late.json()["error"]["error_subcode"]) == (
                10,
                2018278,
            )
            tagged = await c.post(
                url,
                params=token,
                json=_send("zwei", messaging_type="MESSAGE_TAG", tag="HUMAN_AGENT"),
            )
            assert tagged.status_code == 200
            sim.customer_wrote(PSID, time.time() - 8 * 86400)
            too_late = await c.post(
                url, params=token, json=_send(messaging_type="MESSAGE_TAG", tag="HUMAN_AGENT")
            )
            assert too_late.json()["error"]["code"] == 10
            update = await c.post(
                url,
                params=token,
                json=_send("drei", messaging_type="MESSAGE_TAG", tag="ACCOUNT_UPDATE"),
            )
            assert update.status_code == 200
            long = await c.post(url, params=token, json=_send("x" * 2001))
            assert long.json()["error"]["code"] == 100
            sim.blocked.add(PSID)
            gone = await c.post(url, params=token, json=_send())
            assert gone.json()["error"]["code"] == 551
            await asyncio.sleep(0.3)
            ledger = (await c.get("/_sim/ledger")).json()
            assert len(ledger) == 3 and sim.duplicates() == 0
    for body, signature in received:
        assert signature == sign_body("sim-app-secret", body)
    events = [e for b, _ in received for e in json.loads(b)["entry"][0]["messaging"]]
    keys = sorted({k for e in events for k in ("message", "delivery", "read") if k in e})
    assert keys == ["delivery", "message", "read"]
    assert any(e.get("message", {}).get("is_echo") for e in events)


async def test_rate_cap_faults_and_instagram_flavour() -> None:
    config = MessengerSimConfig(object="instagram", mps=5, auto_read=False)
    async with (
        run_messenger_simulator(config) as sim,
        httpx.AsyncClient(base_url=sim.base_url) as c,
    ):
        assert (await c.post("/_sim/inbound", json={"psid": PSID, "body": "Hi"})).status_code == 200
        answers = [
            (
                await c.post(
                    "/v21.0/me/messages", params={"access_token": "sim-page-token"}, json=_send()
                )
            ).json()
            for _ in range(10)
        ]
        assert any(a.get("error", {}).get("code") == 613 for a in answers)
        assert all(a["message_id"].startswith("aWdf") for a in answers if "message_id" in a)
        ig_tag = await c.post(
            "/v21.0/me/messages",
            params={"access_token": "sim-page-token"},
            json=_send(messaging_type="MESSAGE_TAG", tag="POST_PURCHASE_UPDATE"),
        )
        assert ig_tag.json()["error"]["code"] == 100
        sim.config.fault_rate, sim.config.fault_kinds = 1.0, ("5xx",)
        await asyncio.sleep(1)
        fault = await c.post(
            "/v21.0/me/messages", params={"access_token": "sim-page-token"}, json=_send()
        )
        assert fault.status_code >= 500 and fault.json()["error"]["code"] in (1, 2)
        assert (await c.get("/_sim/messages", params={"psid": PSID})).json()
        assert (await c.post("/_sim/inbound", json={"psid": "x"})).status_code == 400
