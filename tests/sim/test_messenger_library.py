"""python-facebook-api drives the Messenger/Instagram simulator through the Send API.

Meta publishes no Python client for the Messenger Platform. python-facebook-api (pyfacebook)
is a maintained Graph API client with a `base_url` setting; it has no Send API helper, so the
calls go through its generic `post_object`, which posts form fields (objects as JSON text,
the token as a field) as many Graph clients do. The library is synchronous (requests): its
calls run in a worker thread while the simulator serves on the test's event loop.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from pyfacebook import FacebookError, GraphAPI

from tresen.sim.messenger import MessengerSimConfig, MessengerSimulator, run_messenger_simulator

TOKEN = "lib-page-token"
PSID = "6945112233445566"
VERSION = "v21.0"


@pytest.fixture(params=["page", "instagram"])
async def sim(request: pytest.FixtureRequest) -> AsyncIterator[MessengerSimulator]:
    """A Facebook Page, or an Instagram professional account."""
    config = MessengerSimConfig(page_access_token=TOKEN, object=request.param, seed=4)
    async with run_messenger_simulator(config) as running:
        yield running


def graph_for(sim: MessengerSimulator, token: str = TOKEN) -> GraphAPI:
    """The library's client, pointed at the simulator."""
    return GraphAPI(
        access_token=token,
        version=VERSION,
        base_url=f"{sim.base_url}/",
        sleep_on_rate_limit=False,
        timeout=10,
    )


async def send(graph: GraphAPI, **fields: Any) -> dict[str, Any]:
    """POST /me/messages through the library (form fields, objects as JSON text)."""
    data = {k: json.dumps(v) if isinstance(v, dict | list) else v for k, v in fields.items()}
    result: dict[str, Any] = await asyncio.to_thread(
        graph.post_object, object_id="me", connection="messages", data=data
    )
    return result


async def test_text_quick_replies_and_attachments(sim: MessengerSimulator) -> None:
    graph = graph_for(sim)
    await sim.customer_sends(PSID, body="Hallo")
    text = await send(
        graph, recipient={"id": PSID}, messaging_type="RESPONSE", message={"text": "Guten Tag!"}
    )
    assert text["recipient_id"] == PSID and text["message_id"] == sim.ledger[-1].mid
    choice = await send(
        graph,
        recipient={"id": PSID},
        messaging_type="RESPONSE",
        message={
            "text": "Abholen oder liefern?",
            "quick_replies": [
                {"content_type": "text", "title": "Abholen", "payload": "pickup"},
                {"content_type": "text", "title": "Liefern", "payload": "delivery"},
            ],
        },
    )
    picture = await send(
        graph,
        recipient={"id": PSID},
        messaging_type="RESPONSE",
        message={"attachment": {"type": "image", "payload": {"url": "https://shop.example/w.jpg"}}},
    )
    payloads = {e.mid: e.payload for e in sim.ledger}
    assert payloads[text["message_id"]]["message"] == {"text": "Guten Tag!"}
    replies = payloads[choice["message_id"]]["message"]["quick_replies"]
    assert [r["payload"] for r in replies] == ["pickup", "delivery"]
    assert payloads[picture["message_id"]]["message"]["attachment"]["payload"]["url"] == (
        "https://shop.example/w.jpg"
    )
    assert [e.messaging_type for e in sim.ledger] == ["RESPONSE"] * 3


async def test_refusals_come_back_as_the_library_errors(sim: MessengerSimulator) -> None:
    graph = graph_for(sim)
    with pytest.raises(FacebookError) as unknown_user:
        await send(graph, recipient={"id": PSID}, messaging_type="RESPONSE", message={"text": "x"})
    assert unknown_user.value.code == 100
    await sim.customer_sends(PSID, body="Hallo")
    sim.customer_wrote(PSID, time.time() - 3 * 86400)  # 24 hours passed, 7 days have not
    with pytest.raises(FacebookError) as outside:
        await send(graph, recipient={"id": PSID}, messaging_type="RESPONSE", message={"text": "x"})
    assert outside.value.code == 10
    tagged = await send(
        graph,
        recipient={"id": PSID},
        messaging_type="MESSAGE_TAG",
        tag="HUMAN_AGENT",
        message={"text": "Eine Kollegin meldet sich."},
    )
    assert tagged["recipient_id"] == PSID
    with pytest.raises(FacebookError) as denied:
        await send(
            graph_for(sim, token="wrong"),
            recipient={"id": PSID},
            messaging_type="RESPONSE",
            message={"text": "x"},
        )
    assert denied.value.code == 190
    assert [e.tag for e in sim.ledger] == ["HUMAN_AGENT"]
