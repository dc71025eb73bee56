"""Fuzzing the WhatsApp webhook parser and endpoint: never a 500, never a partial write."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests import helpers
from tests.examples import examples
from tresen.channels.base import WebhookRejected, WebhookRequest
from tresen.channels.whatsapp import WhatsAppChannel
from tresen.pipeline import inbound
from tresen.runtime import Runtime

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=5)
    ),
    max_leaves=25,
)
FIELD_NAMES = [
    "object",
    "entry",
    "changes",
    "field",
    "value",
    "messages",
    "statuses",
    "contacts",
    "metadata",
    "from",
    "id",
    "type",
    "timestamp",
    "text",
    "body",
    "status",
    "errors",
    "phone_number_id",
    "image",
    "location",
    "latitude",
    "interactive",
    "button_reply",
    "reaction",
    "wa_id",
    "profile",
]


@st.composite
def mutated_payloads(draw: st.DrawFn) -> Any:
    """A valid webhook with one part replaced by something arbitrary."""
    payload = json.loads(
        helpers.fixture_bytes(
            draw(
                st.sampled_from(
                    [
                        "whatsapp/inbound_text.json",
                        "whatsapp/inbound_location.json",
                        "whatsapp/inbound_interactive_list.json",
                        "whatsapp/status_failed.json",
                        "whatsapp/inbound_contacts.json",
                    ]
                )
            )
        )
    )
    node = payload
    path = draw(st.lists(st.sampled_from([*FIELD_NAMES, 0]), min_size=1, max_size=6))
    for key in path[:-1]:
        if isinstance(node, dict) and key in node:
            node = node[key]
        elif isinstance(node, list) and node and key == 0:
            node = node[0]
    last = path[-1]
    replacement = draw(json_values)
    if isinstance(node, dict):
        node[str(last)] = replacement
    elif isinstance(node, list) and node:
        node[0] = replacement
    return payload


def _channel() -> WhatsAppChannel:
    return WhatsAppChannel(helpers.WA_CONFIG, httpx.AsyncClient())


def _parse(body: bytes) -> None:
    try:
        _channel().parse(WebhookRequest("POST", "http://x", {}, {}, body))
    except WebhookRejected as exc:
        assert exc.status_code == 400 and exc.message


@settings(max_examples=examples(400), deadline=None)
@given(json_values)
def test_parser_never_crashes_on_arbitrary_json(value: Any) -> None:
    _parse(json.dumps(value).encode())


@settings(max_examples=examples(400), deadline=None)
@given(mutated_payloads())
def test_parser_never_crashes_on_mutated_webhooks(payload: Any) -> None:
    _parse(json.dumps(payload).encode())


@settings(max_examples=examples(200), deadline=None)
@given(st.binary(max_size=300))
def test_parser_never_crashes_on_bytes(body: bytes) -> None:
    _parse(body)


@settings(
    max_examples=examples(60),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(payload=mutated_payloads())
async def test_endpoint_never_500_never_partial(runtime: Runtime, payload: Any) -> None:
    _, channel = await helpers.seed_whatsapp(runtime)
    body = json.dumps(payload).encode()
    before = await helpers.count_rows(runtime)
    async with helpers.client_for(runtime) as client:
        response = await client.post(
            f"/webhooks/whatsapp/{channel.id}", content=body, headers=helpers.wa_sign(body)
        )
    assert response.status_code in (200, 400), response.text
    after = await helpers.count_rows(runtime)
    if response.status_code == 400:
        assert after == before, "a refused webhook left rows behind"
    else:
        parsed = _channel().parse(WebhookRequest("POST", "http://x", {}, {}, body))
        ids = {m.provider_message_id for m in parsed.messages}
        assert after["messages"] - before["messages"] <= len(ids)


async def test_failure_mid_webhook_rolls_everything_back(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:

    _, channel = await helpers.seed_whatsapp(runtime)
    original = inbound._store_message
    calls = 0

    async def flaky(*args: Any, **kwargs: Any) -> None:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise ConnectionError("database went away")
        await original(*args, **kwargs)

    monkeypatch.setattr(inbound, "_store_message", flaky)
    body = helpers.dumps(
        helpers.wa_envelope(
            messages=[
                helpers.wa_text("wamid.r1", "4915100000001"),
                helpers.wa_text("wamid.r2", "4915100000002"),
            ]
        )
    )
    before = await helpers.count_rows(runtime)
    async with helpers.client_for(runtime) as client:
        response = await client.post(
            f"/webhooks/whatsapp/{channel.id}", content=body, headers=helpers.wa_sign(body)
        )
    assert response.status_code >= 500, "the provider must retry"
    assert await helpers.count_rows(runtime) == before
