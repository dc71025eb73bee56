"""Twilio's own Python library drives the SMS simulator: what a real client sends, it accepts.

`twilio.rest.Client` with the library's asynchronous HTTP client; `client.api.base_url` points
its REST domain at the simulator. Assertions are on the library's parsed instances and on the
simulator's ledger.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
from litestar.types import ASGIApp, Receive, Scope, Send
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.rest import Client

from tresen.sim.server import serve_asgi
from tresen.sim.sms import SmsSimConfig, SmsSimulator, run_sms_simulator

# The library hands aiohttp its login the way aiohttp now calls deprecated; not ours to fix.
pytestmark = pytest.mark.filterwarnings(
    "ignore:BasicAuth is deprecated:DeprecationWarning",
    "ignore:The 'auth' parameter is deprecated:DeprecationWarning",
)

SID = "AC" + "ab" * 16
TOKEN = "sim-token"
SERVICE = "MG" + "cd" * 16
NUMBER = "+4930123456700"
CUSTOMER = "+4915112345678"
PICTURE = b"\x89PNG\r\n\x1a\n" + bytes(40)


@pytest.fixture
async def sim() -> AsyncIterator[SmsSimulator]:
    """An account with one number in one Messaging Service."""
    config = SmsSimConfig(
        account_sid=SID,
        auth_token=TOKEN,
        phone_number=NUMBER,
        messaging_service_sid=SERVICE,
        mps=1000.0,
        status_delays=(0.01, 0.02, 0.03),
        seed=11,
    )
    async with run_sms_simulator(config) as running:
        yield running


@pytest.fixture
async def client(sim: SmsSimulator) -> AsyncIterator[Client]:
    """The library's client, pointed at the simulator."""
    http = AsyncTwilioHttpClient()
    twilio = Client(SID, TOKEN, http_client=http)
    twilio.api.base_url = sim.base_url or ""
    try:
        yield twilio
    finally:
        await http.close()


def public_file(content: bytes, content_type: str) -> ASGIApp:
    """A web server that serves one file to anyone (where a shop keeps its MMS pictures)."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        headers = [(b"content-type", content_type.encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": content})

    return app


async def wait_until_delivered(sim: SmsSimulator, sid: str) -> None:
    """Wait for the simulated carrier to report the message delivered."""
    for _ in range(500):
        if any(e.sid == sid and e.status == "delivered" for e in sim.ledger):
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{sid} was not delivered")


async def test_send_from_a_number_and_through_a_messaging_service(
    sim: SmsSimulator, client: Client
) -> None:
    direct = await client.messages.create_async(to=CUSTOMER, from_=NUMBER, body="Hallo")
    assert direct.sid.startswith("SM") and direct.status == "queued"
    assert direct.from_ == NUMBER and direct.to == CUSTOMER and direct.body == "Hallo"
    assert direct.messaging_service_sid is None and direct.num_segments == "1"

    pooled = await client.messages.create_async(
        to=CUSTOMER, messaging_service_sid=SERVICE, body="Über den Dienst"
    )
    assert pooled.status == "accepted" and pooled.messaging_service_sid == SERVICE
    assert pooled.from_ is None  # the service picks the sender when it queues the message
    await wait_until_delivered(sim, pooled.sid)
    fetched = await client.messages(pooled.sid).fetch_async()
    assert fetched.status == "delivered" and fetched.from_ == NUMBER
    assert fetched.date_sent is not None and fetched.direction == "outbound-api"

    assert [(e.sid, e.messaging_service_sid) for e in sim.ledger] == [
        (direct.sid, None),
        (pooled.sid, SERVICE),
    ]
    with pytest.raises(TwilioRestException) as unknown:
        await client.messages.create_async(
            to=CUSTOMER, messaging_service_sid="MG" + "ef" * 16, body="x"
        )
    assert unknown.value.code == 21705 and unknown.value.status == 400
    with pytest.raises(TwilioRestException) as no_sender:
        await client.messages.create_async(to=CUSTOMER, body="x")
    assert no_sender.value.code == 21606
    assert len(sim.ledger) == 2


async def test_list_and_fetch_messages_of_both_directions(
    sim: SmsSimulator, client: Client
) -> None:
    inbound_sid = await sim.customer_sends(CUSTOMER, "Ist mein Rad fertig?")
    for n in range(4):
        await client.messages.create_async(to=CUSTOMER, from_=NUMBER, body=f"Antwort {n}")
    await client.messages.create_async(to="+4915199999999", from_=NUMBER, body="Andere")

    everything = await client.messages.list_async()
    assert len(everything) == 6
    assert everything[0].body == "Andere"  # newest first
    to_customer = await client.messages.list_async(to=CUSTOMER, page_size=2)
    assert [m.body for m in to_customer] == [f"Antwort {n}" for n in (3, 2, 1, 0)]
    limited = await client.messages.list_async(to=CUSTOMER, limit=3, page_size=2)
    assert len(limited) == 3
    from_customer = await client.messages.list_async(from_=CUSTOMER)
    assert [(m.sid, m.direction, m.status) for m in from_customer] == [
        (inbound_sid, "inbound", "received")
    ]
    received = await client.messages(inbound_sid).fetch_async()
    assert received.body == "Ist mein Rad fertig?" and received.to == NUMBER
    with pytest.raises(TwilioRestException) as missing:
        await client.messages("SM" + "00" * 16).fetch_async()
    assert missing.value.status == 404 and missing.value.code == 20404


async def test_media_of_inbound_and_outbound_messages(sim: SmsSimulator, client: Client) -> None:
    inbound_sid = await sim.customer_sends(CUSTOMER, "Foto", media=[(PICTURE, "image/png")])
    files = await client.messages(inbound_sid).media.list_async()
    assert [(f.parent_sid, f.content_type) for f in files] == [(inbound_sid, "image/png")]
    one = await client.messages(inbound_sid).media(files[0].sid).fetch_async()
    assert one.sid == files[0].sid and one.uri.endswith(f"/Media/{files[0].sid}.json")
    # The file itself sits at the resource's URI without ".json", behind the account's login.
    async with httpx.AsyncClient(base_url=sim.base_url or "") as http:
        content = await http.get(one.uri.removesuffix(".json"), auth=(SID, TOKEN))
        anonymous = await http.get(one.uri.removesuffix(".json"))
    assert content.content == PICTURE and content.headers["content-type"] == "image/png"
    assert anonymous.status_code == 401

    # An MMS out: Twilio copies the file behind MediaUrl and lists it under the message.
    async with serve_asgi(public_file(b"GIF89a" + bytes(20), "image/gif"), lifespan="off") as web:
        sent = await client.messages.create_async(
            to=CUSTOMER, from_=NUMBER, body="Ihr Beleg", media_url=[f"{web}/beleg.gif"]
        )
        assert sent.sid.startswith("MM") and sent.num_media == "1"
        await wait_until_delivered(sim, sent.sid)
        copies = await client.messages(sent.sid).media.list_async()
        assert len(copies) == 1
        for _ in range(500):
            if sim.media[copies[0].sid].content:
                break
            await asyncio.sleep(0.01)
    copy = await client.messages(sent.sid).media(copies[0].sid).fetch_async()
    assert copy.content_type == "image/gif"
    assert sim.media[copies[0].sid].content == b"GIF89a" + bytes(20)

    assert await client.messages(sent.sid).media(copies[0].sid).delete_async()
    assert await client.messages(sent.sid).media.list_async() == []
    assert await client.messages(inbound_sid).delete_async()
    assert [m.sid for m in await client.messages.list_async()] == [sent.sid]


async def test_refusals_map_to_the_library_errors(sim: SmsSimulator) -> None:
    http = AsyncTwilioHttpClient()
    wrong = Client(SID, "wrong-token", http_client=http)
    wrong.api.base_url = sim.base_url or ""
    try:
        with pytest.raises(TwilioRestException) as denied:
            await wrong.messages.create_async(to=CUSTOMER, from_=NUMBER, body="x")
        assert denied.value.status == 401 and denied.value.code == 20003
        # Lists raise the library's plain exception with the answer attached.
        with pytest.raises(TwilioException, match="401"):
            await wrong.messages.list_async()
    finally:
        await http.close()
    assert sim.ledger == []


async def test_opted_out_customer_is_refused(sim: SmsSimulator, client: Client) -> None:
    await sim.customer_sends(CUSTOMER, "STOP")
    with pytest.raises(TwilioRestException) as stopped:
        await client.messages.create_async(to=CUSTOMER, messaging_service_sid=SERVICE, body="x")
    assert stopped.value.code == 21610
    await sim.customer_sends(CUSTOMER, "START")
    again = await client.messages.create_async(
        to=CUSTOMER, messaging_service_sid=SERVICE, body="Willkommen zurück"
    )
    assert again.status == "accepted"
