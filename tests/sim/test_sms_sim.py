"""Tests for the Twilio-compatible SMS simulator, over real HTTP."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest
from litestar import Litestar, Request, post
from litestar.response import Response

from tresen.channels.sms import signature
from tresen.sim.server import serve_asgi
from tresen.sim.sms import SmsSimConfig, SmsSimulator, run_sms_simulator

SID = "AC" + "ab" * 16
TOKEN = "sim-token"
NUMBER = "+4930123456700"
CUSTOMER = "+4915112345678"


@dataclass
class Receiver:
    """Captures form webhooks and checks their signatures."""

    url: str = ""
    forms: list[dict[str, str]] = field(default_factory=list)
    urls: list[str] = field(default_factory=list)
    valid: list[bool] = field(default_factory=list)
    answers: list[int] = field(default_factory=list)
    hits: int = 0

    async def wait_for(self, predicate: Callable[[Receiver], bool], timeout: float = 3.0) -> None:
        """Wait until predicate holds."""
        deadline = asyncio.get_running_loop().time() + timeout
        while not predicate(self):
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"timed out; got {self.forms}")
            await asyncio.sleep(0.01)

    def statuses(self) -> list[str]:
        """MessageStatus of every status callback received."""
        return [f["MessageStatus"] for f in self.forms if "MessageStatus" in f]


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    """A webhook receiver that verifies X-Twilio-Signature over its own URL."""
    rec = Receiver()

    @post("/hook", status_code=200)
    async def hook(request: Request[Any, Any, Any]) -> Response[str]:
        rec.hits += 1
        if rec.answers:
            return Response("no", status_code=rec.answers.pop(0))
        body = (await request.body()).decode()
        pairs = parse_qsl(body, keep_blank_values=True)
        full = str(request.url)
        rec.valid.append(signature(TOKEN, full, pairs) == request.headers.get("x-twilio-signature"))
        rec.forms.append(dict(pairs))
        rec.urls.append(full)
        return Response("<Response/>", status_code=200, media_type="text/xml")

    app = Litestar(route_handlers=[hook], openapi_config=None)
    async with serve_asgi(app) as base_url:
        rec.url = f"{base_url}/hook"
        yield rec


def make_config(receiver: Receiver | None = None, **overrides: Any) -> SmsSimConfig:
    """A fast test config."""
    cfg = SmsSimConfig(
        account_sid=SID,
        auth_token=TOKEN,
        phone_number=NUMBER,
        webhook_url=receiver.url if receiver else None,
        status_delays=(0.01, 0.02, 0.03),
        webhook_retry_delays=(0.02, 0.02),
        mps=100,
        seed=3,
    )
    return replace(cfg, **overrides)


async def send(
    sim: SmsSimulator, auth: tuple[str, str] = (SID, TOKEN), account: str = SID, **form: str
) -> httpx.Response:
    """POST Messages.json to the simulator."""
    data = {"To": CUSTOMER, "From": NUMBER, "Body": "Hallo", **form}
    async with httpx.AsyncClient(base_url=sim.base_url or "", timeout=5) as client:
        return await client.post(
            f"/2010-04-01/Accounts/{account}/Messages.json", data=data, auth=auth
        )


def assert_error(response: httpx.Response, status: int, code: int) -> None:
    """The response is a Twilio error body with this code."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"code", "message", "more_info", "status"}
    assert body["code"] == code and body["status"] == status and body["message"]


async def test_send_returns_sid_and_posts_signed_statuses(receiver: Receiver) -> None:
    async with run_sms_simulator(make_config()) as sim:
        callback = receiver.url + "?tresen_ref=01abc"
        response = await send(sim, StatusCallback=callback)
        assert response.status_code == 201
        data = response.json()
        assert data["sid"].startswith("SM") and len(data["sid"]) == 34
        assert data["status"] == "queued" and data["num_segments"] == "1"
        await receiver.wait_for(lambda r: len(r.statuses()) == 3)
        assert receiver.statuses() == ["queued", "sent", "delivered"]
        assert all(receiver.valid) and receiver.urls[0] == callback
        assert {f["MessageSid"] for f in receiver.forms} == {data["sid"]}
        assert sim.ledger[0].status == "delivered" and sim.duplicates() == 0
        fetched = await httpx.AsyncClient(base_url=sim.base_url or "").get(
            f"/2010-04-01/Accounts/{SID}/Messages/{data['sid']}.json", auth=(SID, TOKEN)
        )
        assert fetched.json()["status"] == "delivered"


async def test_auth_and_validation_errors() -> None:
    async with run_sms_simulator(make_config()) as sim:
        assert_error(await send(sim, auth=(SID, "wrong")), 401, 20003)
        assert_error(await send(sim, auth=("AC" + "0" * 32, TOKEN)), 401, 20003)
        assert_error(await send(sim, account="AC" + "0" * 32), 404, 20404)
        assert_error(await send(sim, To="0151"), 400, 21211)
        assert_error(await send(sim, From="+4930999"), 400, 21606)
        assert_error(await send(sim, Body=""), 400, 21602)
        assert_error(await send(sim, Body="x" * 1601), 400, 21617)
        assert_error(await send(sim, Body="", MediaUrl="ftp://x"), 400, 21620)
        assert sim.ledger == []
        assert sim.stats()["rejected"]["20003"] == 2


async def test_mms_and_segments() -> None:
    async with run_sms_simulator(make_config()) as sim:
        response = await send(sim, Body="🚲" * 40, MediaUrl="https://shop.example/a.jpg")
        assert response.json()["sid"].startswith("MM")
        assert response.json()["num_segments"] == "2" and response.json()["num_media"] == "1"
        assert sim.ledger[0].media_urls == ["https://shop.example/a.jpg"]


async def test_stop_blocks_with_21610_and_start_unblocks(receiver: Receiver) -> None:
    async with run_sms_simulator(make_config(receiver)) as sim:
        await sim.customer_sends(CUSTOMER, "Stop")
        assert_error(await send(sim), 400, 21610)
        await sim.customer_sends(CUSTOMER, "ABMELDEN")  # not a Twilio keyword: tresen's job
        await sim.customer_sends(CUSTOMER, " start ")
        assert (await send(sim)).status_code == 201
        await sim.customer_sends("+4915199999999", "ABMELDEN")
        assert (await send(sim, To="+4915199999999")).status_code == 201


async def test_rate_cap_answers_20429() -> None:
    # One token per 20 s: however slow a loaded machine sends, the third finds none left.
    async with run_sms_simulator(make_config(mps=0.05, burst=2)) as sim:
        answers = [(await send(sim, Body=f"n{i}")).status_code for i in range(4)]
        assert answers[:2] == [201, 201] and 429 in answers[2:]
        assert_error(await send(sim), 429, 20429)


async def test_queue_full_answers_21611() -> None:
    async with run_sms_simulator(make_config(queue_limit=1, status_delays=(5, 5, 5))) as sim:
        assert (await send(sim)).status_code == 201
        assert_error(await send(sim, Body="b"), 400, 21611)


async def test_undeliverable_number_gets_error_code(receiver: Receiver) -> None:
    config = make_config(undeliverable={CUSTOMER: 30003})
    async with run_sms_simulator(config) as sim:
        await send(sim, StatusCallback=receiver.url)
        await receiver.wait_for(lambda r: "undelivered" in r.statuses())
        last = receiver.forms[-1]
        assert last["MessageStatus"] == "undelivered" and last["ErrorCode"] == "30003"
        assert sim.ledger[0].error_code == 30003


async def test_faults_are_injected() -> None:
    config = make_config(fault_rate=1.0, fault_kinds=("5xx",))
    async with run_sms_simulator(config) as sim:
        response = await send(sim)
        assert response.status_code in (500, 503) and response.json()["code"] == 20500
    config = make_config(fault_rate=1.0, fault_kinds=("drop",))
    async with run_sms_simulator(config) as sim:
        with pytest.raises(httpx.HTTPError):
            await send(sim)
    config = make_config(fault_rate=1.0, fault_kinds=("timeout",), timeout_seconds=5)
    async with run_sms_simulator(config) as sim:
        with pytest.raises(httpx.ReadTimeout):
            read_only = httpx.Timeout(5.0, read=0.3)
            async with httpx.AsyncClient(base_url=sim.base_url or "", timeout=read_only) as c:
                await c.post(
                    f"/2010-04-01/Accounts/{SID}/Messages.json",
                    data={"To": CUSTOMER, "From": NUMBER, "Body": "x"},
                    auth=(SID, TOKEN),
                )
    with pytest.raises(ValueError):
        SmsSimulator(make_config(fault_kinds=("meteor",)))


async def test_duplicates_counts_repeated_references() -> None:
    async with run_sms_simulator(make_config()) as sim:
        await send(sim, StatusCallback="http://x/hook?tresen_ref=1")
        await send(sim, StatusCallback="http://x/hook?tresen_ref=1")
        await send(sim, StatusCallback="http://x/hook?tresen_ref=2")
        await send(sim, Body="same")
        await send(sim, Body="same")
        assert sim.duplicates() == 2


async def test_customer_sends_signed_form_with_media(receiver: Receiver) -> None:
    async with run_sms_simulator(make_config(receiver)) as sim:
        sid = await sim.customer_sends(
            CUSTOMER,
            "Foto",
            media_urls=["https://media.example/1", "https://media.example/2"],
            media_types=["image/jpeg", "image/png"],
        )
        [form] = receiver.forms
        assert receiver.valid == [True]
        assert form["MessageSid"] == sid and sid.startswith("MM")
        assert form["NumMedia"] == "2" and form["MediaContentType1"] == "image/png"
        assert form["From"] == CUSTOMER and form["To"] == NUMBER and form["AccountSid"] == SID
        with pytest.raises(ValueError):
            await sim.customer_sends("0151", "x")
        with pytest.raises(ValueError):
            await sim.customer_sends(CUSTOMER, "")


async def test_webhook_retries_non_2xx(receiver: Receiver) -> None:
    receiver.answers = [500, 503]
    async with run_sms_simulator(make_config(receiver)) as sim:
        await sim.customer_sends(CUSTOMER, "Hallo")
        assert receiver.hits == 3 and len(receiver.forms) == 1
        assert sim.webhook_stats.retried == 2 and sim.webhook_stats.delivered == 1


async def test_sim_http_endpoints(receiver: Receiver) -> None:
    async with (
        run_sms_simulator(make_config(receiver)) as sim,
        httpx.AsyncClient(base_url=sim.base_url or "") as client,
    ):
        posted = await client.post("/_sim/inbound", json={"from": CUSTOMER, "body": "Hi"})
        assert posted.status_code == 200 and posted.json()["sid"].startswith("SM")
        bad = await client.post("/_sim/inbound", json={"from": "nope", "body": "Hi"})
        assert bad.status_code == 400
        assert (await client.post("/_sim/inbound", content=b"{")).status_code == 400
        await receiver.wait_for(lambda r: len(r.forms) == 1)
        await send(sim)
        ledger = (await client.get("/_sim/ledger")).json()
        assert ledger[0]["to"] == CUSTOMER
        messages = (await client.get("/_sim/messages", params={"number": CUSTOMER})).json()
        assert messages[0]["body"] == "Hallo"
        stats = (await client.get("/_sim/stats")).json()
        assert stats["accepted"] == 1 and stats["inbound"] == 1
