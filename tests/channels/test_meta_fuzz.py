"""Fuzzing the Messenger/Instagram parser: a clear 400 or typed events, and one bad event never costs the others."""

from __future__ import annotations

import json
from typing import Any

import httpx
from hypothesis import given, settings
from hypothesis import strategies as st

from tests import helpers
from tests.examples import examples
from tresen.channels.base import WebhookRejected, WebhookRequest
from tresen.channels.instagram import InstagramChannel
from tresen.channels.messenger import MessengerChannel

CONFIG = {
    "page_id": "300000000000001",
    "app_secret": "s",
    "verify_token": "v",
    "page_access_token": "t",
}
IG_CONFIG = {**CONFIG, "page_id": "17841400000000001"}
FIXTURES = [
    "messenger/inbound_text.json",
    "messenger/inbound_fallback_null_payload.json",
    "messenger/inbound_product_template.json",
    "messenger/inbound_location.json",
    "messenger/batch_sender_less_events.json",
    "messenger/standby.json",
    "messenger/delivery.json",
    "messenger/echo.json",
    "instagram/inbound_ig_post.json",
    "instagram/inbound_reel.json",
    "instagram/read.json",
    "instagram/standby.json",
]
KEYS = [
    "entry", "messaging", "standby", "sender", "recipient", "id", "message", "mid", "text",
    "attachments", "payload", "type", "url", "title", "product", "elements", "read", "delivery",
    "mids", "watermark", "timestamp", "is_echo", "postback", "reaction", "reply_to",
]  # fmt: skip
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


def _adapter(name: str) -> MessengerChannel:
    if name.startswith("instagram/"):
        return InstagramChannel(IG_CONFIG, httpx.AsyncClient())
    return MessengerChannel(CONFIG, httpx.AsyncClient())


def _request(body: bytes) -> WebhookRequest:
    return WebhookRequest("POST", "http://t/w", {}, {}, body)


def _replace(node: Any, path: list[Any], value: Any) -> None:
    for key in path[:-1]:
        if isinstance(node, dict) and key in node:
            node = node[key]
        elif isinstance(node, list) and isinstance(key, int) and node:
            node = node[key % len(node)]
        else:
            return
    last = path[-1]
    if isinstance(node, dict):
        node[last if isinstance(last, str) else "id"] = value
    elif isinstance(node, list) and node and isinstance(last, int):
        node[last % len(node)] = value


@settings(max_examples=examples(200), deadline=None)
@given(
    st.sampled_from(FIXTURES),
    st.lists(st.sampled_from([*KEYS, 0, 1]), min_size=1, max_size=6),
    json_values,
)
def test_any_mutation_is_parsed_or_refused_with_400(name: str, path: list[Any], value: Any) -> None:
    payload = json.loads(helpers.fixture_bytes(name))
    _replace(payload, path, value)
    try:
        parsed = _adapter(name).parse(_request(helpers.dumps(payload)))
    except WebhookRejected as exc:
        assert exc.status_code == 400 and exc.message
        return
    for msg in parsed.messages:
        assert msg.provider_message_id and msg.sender_address


@settings(max_examples=examples(150), deadline=None)
@given(json_values, st.booleans())
def test_a_customer_message_survives_any_neighbour_event(neighbour: Any, standby: bool) -> None:
    good = {
        "sender": {"id": "6945112233445566"},
        "recipient": {"id": CONFIG["page_id"]},
        "timestamp": 1763800000000,
        "message": {"mid": "m_survivor", "text": "Hallo"},
    }
    events = [neighbour, good] if standby else [good, neighbour]
    body = {"object": "page", "entry": [{"id": CONFIG["page_id"], "messaging": events}]}
    parsed = _adapter("messenger/x").parse(_request(helpers.dumps(body)))
    assert "m_survivor" in [m.provider_message_id for m in parsed.messages]
