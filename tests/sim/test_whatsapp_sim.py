"""Tests for the WhatsApp Cloud API simulator, over real HTTP."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace
from typing import Any

import httpx
import pytest
from litestar import Litestar, Request, post
from litestar.response import Response

from tresen.sim.server import serve_asgi
from tresen.sim.whatsapp import (
    WhatsAppSimConfig,
    WhatsAppSimulator,
    run_whatsapp_simulator,
)

TOKEN = "test-token"
SECRET = "test-secret"
PHONE_ID = "100000000000001"
CUSTOMER = "491701234567"


@dataclass
class Receiver:
    """Captures webhooks posted to it."""

    url: str = ""
    bodies: list[bytes] = field(default_factory=list)
    signatures: list[str] = field(default_factory=list)
    answers: list[int] = field(default_factory=list)
    hits: int = 0

    def payloads(self) -> list[dict[str, Any]]:
        """Return the captured bodies parsed."""
        return [json.loads(b) for b in self.bodies]

    def statuses(self) -> list[dict[str, Any]]:
        """Return every status object received."""
        return [
            s
            for p in self.payloads()
            for e in p["entry"]
            for c in e["changes"]
            for s in c["value"].get("statuses", [])
        ]

    def messages(self) -> list[dict[str, Any]]:
        """Return every inbound message object received."""
        return [
            m
            for p in self.payloads()
            for e in p["entry"]
            for c in e["changes"]
            for m in c["value"].get("messages", [])
        ]

    async def wait_for(self, predicate: Callable[[Receiver], bool], timeout: float = 3.0) -> None:
        """Wait until predicate holds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not predicate(self):
            if loop.time() > deadline:
                raise AssertionError(f"timed out; got {self.payloads()}")
            await asyncio.sleep(0.01)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    """Run a webhook receiver that records raw bodies."""
    rec = Receiver()

    @post("/hook", status_code=200)
    async def hook(request: Request[Any, Any, Any]) -> Response[str]:
        rec.hits += 1
        if rec.answers:
            return Response("no", status_code=rec.answers.pop(0))
        rec.bodies.append(await request.body())
        rec.signatures.append(request.headers.get("x-hub-signature-256", ""))
        return Response("ok", status_code=200)

    app = Litestar(route_handlers=[hook], openapi_config=None)
    async with serve_asgi(app) as base_url:
        rec.url = f"{base_url}/hook"
        yield rec


def make_config(receiver: Receiver | None = None, **overrides: Any) -> WhatsAppSimConfig:
    """Return a fast test config."""
    cfg = WhatsAppSimConfig(
        access_token=TOKEN,
        app_secret=SECRET,
        phone_number_id=PHONE_ID,
        webhook_url=receiver.url if receiver else None,
        status_delays=(0.01, 0.02, 0.03),
        webhook_retry_delays=(0.02, 0.02, 0.02),
        seed=7,
    )
    return replace(cfg, **overrides)


def text_payload(to: str = CUSTOMER, body: str = "Hallo", **extra: Any) -> dict[str, Any]:
    """Return a text send body."""
    return {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": to,
        "type": "text",
        "text": {"preview_url": False, "body": body},
        **extra,
    }


def template_payload(to: str = CUSTOMER) -> dict[str, Any]:
    """Return a template send body."""
    return {
        "messaging_product": "whatsapp",
        "to": to,
        "type": "template",
        "template": {
            "name": "order_update",
            "language": {"code": "de"},
            "components": [{"type": "body", "parameters": [{"type": "text", "text": "4711"}]}],
        },
    }


async def send(
    sim: WhatsAppSimulator,
    payload: dict[str, Any],
    token: str = TOKEN,
    timeout: float | httpx.Timeout = 5.0,
) -> httpx.Response:
    """POST a send request to the simulator."""
    async with httpx.AsyncClient(base_url=sim.base_url or "", timeout=timeout) as client:
        return await client.post(
            f"/v21.0/{PHONE_ID}/messages",
            json=payload,
            headers={"Authorization": f"Bearer {token}"},
        )


def error_code(response: httpx.Response) -> int:
    """Return the Graph error code of a response."""
    body = response.json()
    assert set(body["error"]) >= {"message", "type", "code", "error_data", "fbtrace_id"}
    assert body["error"]["type"] == "OAuthException"
    assert body["error"]["error_data"]["messaging_product"] == "whatsapp"
    return int(body["error"]["code"])


async def test_bearer_token_is_checked() -> None:
    async with run_whatsapp_simulator(make_config()) as sim:
        sim.open_window(CUSTOMER)
        bad = await send(sim, text_payload(), token="wrong")
        assert bad.status_code == 401
        assert error_code(bad) == 190
        async with httpx.AsyncClient(base_url=sim.base_url or "") as client:
            missing = await client.post(f"/v21.0/{PHONE_ID}/messages", json=text_payload())
            assert missing.status_code == 401
            unknown = await client.post(
                "/v19.0/999/messages",
                json=text_payload(),
                headers={"Authorization": f"Bearer {TOKEN}"},
            )
            assert unknown.status_code == 400 and error_code(unknown) == 100
        assert sim.ledger == []


async def test_text_send_produces_signed_status_webhooks(receiver: Receiver) -> None:
    async with run_whatsapp_simulator(make_config(receiver)) as sim:
        sim.open_window(CUSTOMER)
        response = await send(sim, text_payload(biz_opaque_callback_data="job-1"))
        assert response.status_code == 200
        body = response.json()
        wamid = body["messages"][0]["id"]
        assert wamid.startswith("wamid.")
        assert body["contacts"] == [{"input": CUSTOMER, "wa_id": CUSTOMER}]
        await receiver.wait_for(lambda r: len(r.statuses()) == 3)
        for raw, signature in zip(receiver.bodies, receiver.signatures, strict=True):
            expected = hmac.new(SECRET.encode(), raw, hashlib.sha256).hexdigest()
            assert hmac.compare_digest(signature, f"sha256={expected}")
        statuses = receiver.statuses()
        # Sent in this order after growing delays; on a loaded machine they may arrive in another.
        by_state = {s["status"]: s for s in statuses}
        assert sorted(by_state) == ["delivered", "read", "sent"]
        for s in statuses:
            assert s["id"] == wamid and s["recipient_id"] == CUSTOMER
            assert s["timestamp"].isdigit()
            assert s["biz_opaque_callback_data"] == "job-1"
        assert "origin" in by_state["sent"]["conversation"] and "pricing" in by_state["delivered"]
        envelope = receiver.payloads()[0]
        assert envelope["object"] == "whatsapp_business_account"
        value = envelope["entry"][0]["changes"][0]["value"]
        assert envelope["entry"][0]["changes"][0]["field"] == "messages"
        assert value["metadata"]["phone_number_id"] == PHONE_ID
        assert [e.wamid for e in sim.ledger] == [wamid]
        assert sim.ledger[0].status == "read"
        for _ in range(100):  # the simulator counts a webhook once it has read the answer
            if sim.webhook_stats.delivered == 3:
                break
            await asyncio.sleep(0.02)
        assert sim.webhook_stats.delivered == 3


async def test_validation_errors() -> None:
    async with run_whatsapp_simulator(make_config()) as sim:
        sim.open_window(CUSTOMER)
        cases: list[tuple[dict[str, Any], int]] = [
            ({**text_payload(), "messaging_product": "sms"}, 100),
            ({k: v for k, v in text_payload().items() if k != "to"}, 100),
            ({**text_payload(), "type": "carrier_pigeon"}, 100),
            (text_payload(body=""), 131009),
            (text_payload(body="x" * 4097), 131009),
            ({**text_payload(), "text": {}}, 131008),
            (
                {
                    "messaging_product": "whatsapp",
                    "to": CUSTOMER,
                    "type": "interactive",
                    "interactive": {
                        "type": "button",
                        "body": {"text": "Pick"},
                        "action": {
                            "buttons": [
                                {"type": "reply", "reply": {"id": str(i), "title": "t"}}
                                for i in range(4)
                            ]
                        },
                    },
                },
                131009,
            ),
            (
                {
                    "messaging_product": "whatsapp",
                    "to": CUSTOMER,
                    "type": "interactive",
                    "interactive": {
                        "type": "button",
                        "body": {"text": "Pick"},
                        "action": {
                            "buttons": [{"type": "reply", "reply": {"id": "a", "title": "x" * 21}}]
                        },
                    },
                },
                131009,
            ),
            (
                {
                    "messaging_product": "whatsapp",
                    "to": CUSTOMER,
                    "type": "template",
                    "template": {"name": "hello"},
                },
                131008,
            ),
        ]
        for payload, code in cases:
            response = await send(sim, payload)
            assert response.status_code == 400, payload
            assert error_code(response) == code, (payload, response.json())
        ok_list = {
            "messaging_product": "whatsapp",
            "to": CUSTOMER,
            "type": "interactive",
            "interactive": {
                "type": "list",
                "body": {"text": "Choose"},
                "action": {
                    "button": "Options",
                    "sections": [{"rows": [{"id": f"r{i}", "title": f"R{i}"} for i in range(10)]}],
                },
            },
        }
        assert (await send(sim, ok_list)).status_code == 200
        too_many = json.loads(json.dumps(ok_list))
        too_many["interactive"]["action"]["sections"][0]["rows"].append({"id": "r", "title": "R"})
        assert error_code(await send(sim, too_many)) == 131009


@pytest.mark.parametrize("mode", ["response", "status"])
async def test_window_closed(receiver: Receiver, mode: str) -> None:
    async with run_whatsapp_simulator(make_config(receiver, window_violation=mode)) as sim:
        response = await send(sim, text_payload())
        if mode == "response":
            assert response.status_code == 400 and error_code(response) == 131047
            assert sim.ledger == []
        else:
            assert response.status_code == 200
            await receiver.wait_for(lambda r: len(r.statuses()) == 1)
            await asyncio.sleep(0.05)
            (failed,) = receiver.statuses()
            assert failed["status"] == "failed"
            assert failed["errors"][0]["code"] == 131047
            assert set(failed["errors"][0]) >= {"code", "title", "message", "error_data"}
            assert sim.ledger[0].status == "failed"
        template = await send(sim, template_payload())
        assert template.status_code == 200
        sim.open_window(CUSTOMER)
        assert (await send(sim, text_payload())).status_code == 200
        sim.close_window(CUSTOMER)
        assert (await send(sim, text_payload())).status_code == (400 if mode == "response" else 200)


async def test_throughput_cap() -> None:
    async with run_whatsapp_simulator(make_config(mps=5)) as sim:
        # 20 at once against a bucket of 5: whatever the machine's speed, most must wait.
        responses = await asyncio.gather(
            *(send(sim, template_payload(to=f"4917000000{i:02d}")) for i in range(20))
        )
        codes = [r.status_code for r in responses]
        for response in responses:
            if response.status_code != 200:
                assert response.status_code == 429 and error_code(response) == 130429
        assert 5 <= codes.count(200) < 20
        assert sim.stats()["rejected"]["130429"] == codes.count(429)


async def test_pair_limit() -> None:
    async with run_whatsapp_simulator(make_config(pair_limit=(2, 6.0))) as sim:
        assert (await send(sim, template_payload())).status_code == 200
        assert (await send(sim, template_payload())).status_code == 200
        third = await send(sim, template_payload())
        assert third.status_code == 400 and error_code(third) == 131056
        assert (await send(sim, template_payload(to="491709999999"))).status_code == 200


async def test_fault_5xx() -> None:
    async with run_whatsapp_simulator(make_config(fault_rate=1.0, fault_kinds=("5xx",))) as sim:
        sim.open_window(CUSTOMER)
        response = await send(sim, text_payload())
        assert response.status_code in (500, 503)
        assert error_code(response) == 131016
        assert sim.ledger == [] and sim.faults["5xx"] == 1


async def test_fault_timeout() -> None:
    cfg = make_config(fault_rate=1.0, fault_kinds=("timeout",), timeout_seconds=0.5)
    async with run_whatsapp_simulator(cfg) as sim:
        sim.open_window(CUSTOMER)
        # Only the answer may time out: connecting on a loaded machine can take longer than 0.1 s.
        with pytest.raises(httpx.ReadTimeout):
            await send(sim, text_payload(), timeout=httpx.Timeout(5.0, read=0.1))
        late = await send(sim, text_payload(), timeout=5)
        assert late.status_code == 500
        assert sim.ledger == []


async def test_fault_drop() -> None:
    async with run_whatsapp_simulator(make_config(fault_rate=1.0, fault_kinds=("drop",))) as sim:
        sim.open_window(CUSTOMER)
        with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
            await send(sim, text_payload())
        assert sim.ledger == []


async def test_fault_after_accept_ledgers_and_sends_statuses(receiver: Receiver) -> None:
    cfg = make_config(receiver, fault_rate=1.0, fault_kinds=("drop",), fault_after_accept_share=1.0)
    async with run_whatsapp_simulator(cfg) as sim:
        sim.open_window(CUSTOMER)
        with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
            await send(sim, text_payload(biz_opaque_callback_data="job-9"))
        assert len(sim.ledger) == 1
        await receiver.wait_for(lambda r: len(r.statuses()) == 3)
        assert {s["id"] for s in receiver.statuses()} == {sim.ledger[0].wamid}
        sim.config.fault_rate = 0.0
        assert (await send(sim, text_payload(biz_opaque_callback_data="job-9"))).status_code == 200
        assert sim.duplicates() == 1


async def test_webhook_retried_until_200(receiver: Receiver) -> None:
    receiver.answers = [500, 500]
    async with run_whatsapp_simulator(make_config(receiver)) as sim:
        wamid = await sim.customer_sends(CUSTOMER, body="Hallo")
        assert [m["id"] for m in receiver.messages()] == [wamid]
        assert receiver.hits == 3
        assert sim.webhook_stats.retried == 2 and sim.webhook_stats.failed == 0


async def test_webhook_given_up(receiver: Receiver) -> None:
    receiver.answers = [500] * 10
    async with run_whatsapp_simulator(make_config(receiver)) as sim:
        await sim.customer_sends(CUSTOMER, body="Hallo")
        assert receiver.messages() == []
        assert sim.webhook_stats.failed == 1 and receiver.hits == 4


async def test_out_of_order_and_duplicates(receiver: Receiver) -> None:
    cfg = make_config(receiver, out_of_order=True, duplicate_rate=1.0)
    async with run_whatsapp_simulator(cfg) as sim:
        sim.open_window(CUSTOMER)
        assert (await send(sim, text_payload())).status_code == 200
        await receiver.wait_for(lambda r: len(r.statuses()) == 6)
        order = [s["status"] for s in receiver.statuses()]
        assert sorted(set(order)) == ["delivered", "read", "sent"]
        firsts = list(dict.fromkeys(order))
        assert firsts != ["sent", "delivered", "read"]
        assert sim.webhook_stats.duplicated == 3


INBOUND_CASES: list[tuple[str, Any, str]] = [
    ("text", "Hallo", "text"),
    ("image", "Foto", "image"),
    ("audio", None, "audio"),
    ("video", None, "video"),
    ("document", "rechnung.pdf", "document"),
    ("sticker", None, "sticker"),
    ("location", {"latitude": 48.1, "longitude": 11.5, "name": "Laden"}, "location"),
    ("contacts", "Erika Mustermann", "contacts"),
    ("interactive", {"button_reply": {"id": "yes", "title": "Ja"}}, "interactive"),
    ("interactive", {"id": "r1", "title": "Rot", "description": "Rotwein"}, "interactive"),
    ("button", "Stop", "button"),
    ("unsupported", None, "errors"),
    ("poll", {"question": "?"}, "poll"),
]


async def test_customer_sends_every_type(receiver: Receiver) -> None:
    async with run_whatsapp_simulator(make_config(receiver)) as sim:
        for mtype, body, _key in INBOUND_CASES:
            await sim.customer_sends(CUSTOMER, name="Eva", type=mtype, body=body)
        sim.open_window(CUSTOMER)
        biz = await send(sim, text_payload())
        biz_id = biz.json()["messages"][0]["id"]
        await sim.customer_sends(CUSTOMER, type="reaction", body="\u2764")
        reply = await sim.customer_sends(CUSTOMER, body="Danke", context_id=biz_id)
        envelopes = [
            p for p in receiver.payloads() if "messages" in p["entry"][0]["changes"][0]["value"]
        ]
        assert len(envelopes) == len(INBOUND_CASES) + 2
        for envelope in envelopes:
            value = envelope["entry"][0]["changes"][0]["value"]
            assert value["contacts"][0]["wa_id"] == CUSTOMER
            assert value["contacts"][0]["profile"]["name"] in ("Eva", "Kunde")
            assert value["metadata"]["phone_number_id"] == PHONE_ID
        messages = receiver.messages()
        for msg, (mtype, _body, key) in zip(messages, INBOUND_CASES, strict=False):
            assert msg["type"] == mtype and key in msg
            assert msg["from"] == CUSTOMER and msg["id"].startswith("wamid.")
            assert msg["timestamp"].isdigit()
        by_type: dict[str, dict[str, Any]] = {}
        for m in messages:
            by_type.setdefault(m["type"], m)
        assert by_type["text"]["text"] == {"body": "Hallo"}
        assert {"id", "mime_type", "sha256", "caption"} <= set(by_type["image"]["image"])
        assert by_type["document"]["document"]["filename"] == "rechnung.pdf"
        assert by_type["location"]["location"]["latitude"] == 48.1
        assert by_type["contacts"]["contacts"][0]["name"]["formatted_name"] == "Erika Mustermann"
        assert by_type["button"]["button"] == {"payload": "Stop", "text": "Stop"}
        assert by_type["unsupported"]["errors"][0]["code"] == 131051
        assert by_type["poll"]["poll"] == {"question": "?"}
        interactive = [m["interactive"] for m in messages if m["type"] == "interactive"]
        assert interactive[0] == {
            "type": "button_reply",
            "button_reply": {"id": "yes", "title": "Ja"},
        }
        assert interactive[1]["type"] == "list_reply"
        assert interactive[1]["list_reply"]["description"] == "Rotwein"
        assert by_type["reaction"]["reaction"] == {"emoji": "\u2764", "message_id": biz_id}
        assert messages[-1]["id"] == reply
        assert messages[-1]["context"]["id"] == biz_id
        # Status webhooks of the business message may arrive in between: pick the reaction's.
        [reaction_body] = [b for b in receiver.bodies if b'"type":"reaction"' in b]
        assert b"\\u2764" in reaction_body
        with pytest.raises(ValueError):
            await sim.customer_sends("not-a-number", body="x")


async def test_inbound_opens_window() -> None:
    async with run_whatsapp_simulator(make_config()) as sim:
        assert (await send(sim, text_payload())).status_code == 400
        await sim.customer_sends(CUSTOMER, body="Hallo")
        assert (await send(sim, text_payload())).status_code == 200


async def test_duplicates_counts_resend() -> None:
    async with run_whatsapp_simulator(make_config()) as sim:
        sim.open_window(CUSTOMER)
        await send(sim, text_payload(body="Ihre Bestellung"))
        await send(sim, text_payload(body="Etwas anderes"))
        assert sim.duplicates() == 0
        await send(sim, text_payload(body="Ihre Bestellung"))
        assert sim.duplicates() == 1


async def test_sim_http_endpoints(receiver: Receiver) -> None:
    async with (
        run_whatsapp_simulator(make_config(receiver)) as sim,
        httpx.AsyncClient(base_url=sim.base_url or "") as client,
    ):
        page = await client.get("/")
        assert page.status_code == 200 and "text/html" in page.headers["content-type"]
        assert "innerHTML" not in page.text and "<script src" not in page.text
        created = await client.post(
            "/_sim/inbound", json={"wa_id": CUSTOMER, "name": "Eva", "type": "text", "body": "Hi"}
        )
        assert created.status_code == 200 and created.json()["id"].startswith("wamid.")
        bad = await client.post("/_sim/inbound", json={"wa_id": "abc", "body": "Hi"})
        assert bad.status_code == 400
        assert (await client.post("/_sim/inbound", content=b"{")).status_code == 400
        await receiver.wait_for(lambda r: len(r.messages()) == 1)
        response = await send(sim, text_payload(body="Willkommen"))
        assert response.status_code == 200
        await receiver.wait_for(lambda r: len(r.statuses()) == 3)
        msgs = (await client.get("/_sim/messages", params={"wa_id": CUSTOMER})).json()
        assert [(m["summary"], m["status"]) for m in msgs] == [("Willkommen", "read")]
        ledger = (await client.get("/_sim/ledger")).json()
        assert ledger[0]["to"] == CUSTOMER and ledger[0]["type"] == "text"
        stats = (await client.get("/_sim/stats")).json()
        assert stats["accepted"] == 1 and stats["inbound"] == 1
        assert stats["webhooks"]["delivered"] == 4 and stats["duplicates"] == 0


async def test_phone_page_lists_what_the_customer_sent() -> None:
    async with (
        run_whatsapp_simulator(WhatsAppSimConfig()) as sim,
        httpx.AsyncClient(base_url=sim.base_url) as client,
    ):
        await sim.customer_sends("4915100000001", body="Hallo <b>da</b>")
        await sim.customer_sends(
            "4915100000001", type="interactive", body={"button_reply": {"id": "ja", "title": "Ja"}}
        )
        await sim.customer_sends("4915100000002", body="andere Person")
        sent = (await client.get("/_sim/sent", params={"wa_id": "4915100000001"})).json()
        page = (await client.get("/")).text
    assert [m["summary"] for m in sent] == ["Hallo <b>da</b>", "[Ja]"]
    assert "innerHTML" not in page, "the page must not render data as HTML"
