"""WhatsApp adapter units: handshake, signature, parsing, payloads, error mapping."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest

from tests import helpers
from tresen.channels.base import (
    AuthError,
    ConfigError,
    OutboundMessage,
    PermanentError,
    RateLimited,
    TransientError,
    WebhookRejected,
    WebhookRequest,
)
from tresen.channels.whatsapp import WhatsAppChannel
from tresen.domain.message import ContentKind, DeliveryState


def _channel(handler: Any = None) -> WhatsAppChannel:
    transport = httpx.MockTransport(handler or (lambda r: httpx.Response(500)))
    return WhatsAppChannel(
        {**helpers.WA_CONFIG, "api_base": "http://graph.test"},
        httpx.AsyncClient(transport=transport),
    )


def _req(
    body: bytes = b"", headers: dict[str, str] | None = None, query: dict[str, str] | None = None
) -> WebhookRequest:
    return WebhookRequest(
        "POST",
        "http://x/webhooks/whatsapp/1",
        {k.lower(): v for k, v in (headers or {}).items()},
        query or {},
        body,
    )


def test_handshake_echoes_challenge_only_with_the_right_token() -> None:
    ch = _channel()
    ok = {"hub.mode": "subscribe", "hub.verify_token": "verify-me", "hub.challenge": "1158201444"}
    assert ch.handshake(_req(query=ok)) == "1158201444"
    with pytest.raises(WebhookRejected) as bad:
        ch.handshake(_req(query={**ok, "hub.verify_token": "nope"}))
    assert bad.value.status_code == 403
    with pytest.raises(WebhookRejected) as missing:
        ch.handshake(_req(query={"hub.mode": "subscribe"}))
    assert missing.value.status_code == 400


def test_signature_is_checked_on_raw_bytes() -> None:
    ch = _channel()
    body = helpers.fixture_bytes("whatsapp/inbound_text.json")
    ch.verify(_req(body, helpers.wa_sign(body)))
    reformatted = json.dumps(json.loads(body)).encode()
    assert reformatted != body
    with pytest.raises(WebhookRejected) as exc:
        ch.verify(_req(reformatted, helpers.wa_sign(body)))
    assert exc.value.status_code == 403


@pytest.mark.parametrize(
    ("name", "kind", "body"),
    [
        ("inbound_text", ContentKind.TEXT, "Hallo! Habt ihr das Trekkingrad noch in 56 cm? 🚲"),
        ("inbound_image", ContentKind.MEDIA, "So sieht der Schaden aus"),
        ("inbound_location", ContentKind.LOCATION, "Radhaus"),
        ("inbound_contacts", ContentKind.CONTACTS, "Max Mustermann"),
        ("inbound_reaction", ContentKind.REACTION, "👍"),
        ("inbound_interactive_button", ContentKind.INTERACTIVE, "Ja"),
        ("inbound_interactive_list", ContentKind.INTERACTIVE, "42"),
        ("inbound_button", ContentKind.BUTTON, "Abmelden"),
        ("inbound_unsupported", ContentKind.UNSUPPORTED, None),
        ("inbound_unknown_future_type", ContentKind.UNSUPPORTED, None),
    ],
)
def test_parse_inbound_types(name: str, kind: ContentKind, body: str | None) -> None:
    raw = helpers.fixture_bytes(f"whatsapp/{name}.json")
    [message] = _channel().parse(_req(raw)).messages
    assert message.content_kind == kind
    assert message.body == body
    assert message.sender_address == "4915112345678"
    assert message.sender_name == "Jana Müller"
    assert (
        message.payload["type"]
        == json.loads(raw)["entry"][0]["changes"][0]["value"]["messages"][0]["type"]
    )


def test_button_reply_context_is_kept() -> None:
    [message] = (
        _channel().parse(_req(helpers.fixture_bytes("whatsapp/inbound_button.json"))).messages
    )
    assert message.reply_to_provider_id == "wamid.HBgLNDkxNTExMjM0NTY3OBUCABEYEjQ3"


def test_known_type_with_broken_object_is_kept_as_unsupported() -> None:
    body = helpers.dumps(
        helpers.wa_envelope(
            messages=[{"from": "49151", "id": "wamid.b", "type": "text", "text": {"nobody": 1}}]
        )
    )
    [message] = _channel().parse(_req(body)).messages
    assert message.content_kind == ContentKind.UNSUPPORTED


def test_failed_status_carries_code_and_reason() -> None:
    [status] = _channel().parse(_req(helpers.fixture_bytes("whatsapp/status_failed.json"))).statuses
    assert status.state == DeliveryState.FAILED
    assert status.error_code == "131047"
    assert "24 hours" in (status.error_reason or "")


def test_unknown_status_values_are_ignored() -> None:
    body = helpers.dumps(helpers.wa_envelope(statuses=[helpers.wa_status("wamid.1", "deleted")]))
    assert _channel().parse(_req(body)).statuses == []


def test_config_is_validated() -> None:
    with pytest.raises(ConfigError, match="phone_number_id"):
        WhatsAppChannel.check_config({**helpers.WA_CONFIG, "phone_number_id": "abc"})
    with pytest.raises(ConfigError, match="access_token"):
        WhatsAppChannel.check_config(
            {k: v for k, v in helpers.WA_CONFIG.items() if k != "access_token"}
        )
    with pytest.raises(ConfigError, match="api_base"):
        WhatsAppChannel.check_config({**helpers.WA_CONFIG, "api_base": "ftp://x"})


def _out(
    kind: ContentKind, body: str | None = "Hallo", payload: dict[str, Any] | None = None
) -> OutboundMessage:
    return OutboundMessage(
        to="4915112345678",
        content_kind=kind,
        body=body,
        payload=payload or {},
        client_reference="01abc",
    )


def test_payloads_follow_the_cloud_api() -> None:
    ch = _channel()
    text = ch.build_payload(_out(ContentKind.TEXT))
    assert (
        text["type"] == "text"
        and text["text"]["body"] == "Hallo"
        and text["messaging_product"] == "whatsapp"
    )
    assert text["biz_opaque_callback_data"] == "01abc"
    tpl = ch.build_payload(
        _out(
            ContentKind.TEMPLATE,
            None,
            {"name": "order_confirmation", "language": "de", "parameters": ["Jana", "4711"]},
        )
    )
    assert tpl["template"]["components"][0]["parameters"][1] == {"type": "text", "text": "4711"}
    buttons = ch.build_payload(
        _out(
            ContentKind.INTERACTIVE,
            "Größe?",
            {"buttons": [{"id": "41", "title": "41"}, {"id": "42", "title": "42"}]},
        )
    )
    assert (
        buttons["interactive"]["type"] == "button"
        and len(buttons["interactive"]["action"]["buttons"]) == 2
    )
    media = ch.build_payload(
        _out(
            ContentKind.MEDIA,
            "Rechnung",
            {"media_type": "document", "link": "https://shop.example/r.pdf", "filename": "r.pdf"},
        )
    )
    assert media["document"] == {
        "link": "https://shop.example/r.pdf",
        "caption": "Rechnung",
        "filename": "r.pdf",
    }


def _graph_error(status: int, code: int, message: str = "x") -> Any:
    return lambda r: httpx.Response(
        status,
        json={
            "error": {
                "message": message,
                "type": "OAuthException",
                "code": code,
                "error_data": {"details": "d"},
                "fbtrace_id": "A",
            }
        },
    )


@pytest.mark.parametrize(
    ("handler", "error"),
    [
        (_graph_error(401, 190), AuthError),
        (_graph_error(400, 131047), PermanentError),
        (_graph_error(400, 131026), PermanentError),
        (_graph_error(429, 130429), RateLimited),
        (_graph_error(400, 131056), RateLimited),
        (_graph_error(500, 131016), TransientError),
        (_graph_error(503, 131000), TransientError),
        (lambda r: httpx.Response(502, text="bad gateway"), TransientError),
        (lambda r: httpx.Response(200, json={"messaging_product": "whatsapp"}), TransientError),
    ],
)
async def test_send_maps_errors_to_four_kinds(handler: Any, error: type[Exception]) -> None:
    with pytest.raises(error):
        await _channel(handler).send(_out(ContentKind.TEXT))


async def test_send_maps_network_failures_to_transient() -> None:
    def boom(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    with pytest.raises(TransientError):
        await _channel(boom).send(_out(ContentKind.TEXT))


async def test_send_returns_wamid_and_sends_bearer() -> None:
    seen: dict[str, Any] = {}

    def ok(request: httpx.Request) -> httpx.Response:
        seen["auth"] = request.headers["authorization"]
        seen["url"] = str(request.url)
        return httpx.Response(
            200,
            json={
                "messaging_product": "whatsapp",
                "contacts": [{"input": "1", "wa_id": "1"}],
                "messages": [{"id": "wamid.OK"}],
            },
        )

    result = await _channel(ok).send(_out(ContentKind.TEXT))
    assert result.provider_message_id == "wamid.OK"
    assert seen == {
        "auth": "Bearer sim-access-token",
        "url": "http://graph.test/v21.0/100000000000001/messages",
    }


def test_permanent_error_keeps_provider_code() -> None:
    with pytest.raises(PermanentError) as exc:
        asyncio.run(
            _channel(_graph_error(400, 131026, "Message undeliverable")).send(
                _out(ContentKind.TEXT)
            )
        )
    assert exc.value.code == "131026" and "undeliverable" in exc.value.reason
