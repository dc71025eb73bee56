"""Messenger adapter: signatures, parsing every event, payloads, windows and error mapping."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
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
from tresen.channels.messenger import MessengerChannel
from tresen.channels.registry import channel_factory
from tresen.domain.message import ContentKind, DeliveryState

PSID = "6945112233445566"
PAGE_ID = "300000000000001"
CONFIG: dict[str, Any] = {
    "page_id": PAGE_ID,
    "app_secret": "sim-app-secret",
    "verify_token": "verify-me",
    "page_access_token": "sim-page-token",
}


def sign(body: bytes, secret: str = "sim-app-secret") -> dict[str, str]:
    return helpers.wa_sign(body, secret=secret)


def channel(handler: Any = None) -> MessengerChannel:
    transport = httpx.MockTransport(handler or (lambda r: httpx.Response(500)))
    return MessengerChannel(CONFIG, httpx.AsyncClient(transport=transport))


def request(body: bytes, headers: dict[str, str] | None = None, **query: str) -> WebhookRequest:
    return WebhookRequest(
        "POST", "http://t/webhooks", {k.lower(): v for k, v in (headers or {}).items()}, query, body
    )


def out(**kw: Any) -> OutboundMessage:
    base: dict[str, Any] = {
        "to": PSID,
        "content_kind": ContentKind.TEXT,
        "body": "Hallo",
        "payload": {},
        "client_reference": "01hmsg",
        "last_inbound_at": datetime.now(UTC) - timedelta(minutes=5),
    }
    return OutboundMessage(**(base | kw))


def test_registered_and_config_checked() -> None:
    assert channel_factory("messenger") is MessengerChannel
    with pytest.raises(ConfigError, match="page_id must be digits"):
        MessengerChannel.check_config({**CONFIG, "page_id": "abc"})
    with pytest.raises(ConfigError, match="page_access_token"):
        MessengerChannel.check_config({k: v for k, v in CONFIG.items() if k != "page_access_token"})
    with pytest.raises(ConfigError, match="unknown"):
        MessengerChannel.check_config({**CONFIG, "nope": 1})
    assert MessengerChannel.check_config(CONFIG)["api_base"] == "https://graph.facebook.com"


def test_handshake() -> None:
    ch = channel()
    q = {"hub.mode": "subscribe", "hub.verify_token": "verify-me", "hub.challenge": "1158201444"}
    assert ch.handshake(request(b"", **q)) == "1158201444"
    with pytest.raises(WebhookRejected) as exc:
        ch.handshake(request(b"", **{**q, "hub.verify_token": "wrong"}))
    assert exc.value.status_code == 403


def test_verify_good_bad_missing() -> None:
    ch = channel()
    body = helpers.fixture_bytes("messenger/inbound_text.json")
    ch.verify(request(body, sign(body)))
    for headers, code in (({}, 401), (sign(body, "other"), 403), (sign(body + b" "), 403)):
        with pytest.raises(WebhookRejected) as exc:
            ch.verify(request(body, headers))
        assert exc.value.status_code == code


@pytest.mark.parametrize(
    ("name", "kind", "body"),
    [
        ("inbound_text", ContentKind.TEXT, "Habt ihr das Rad noch in 56 cm? 🚲"),
        ("inbound_image", ContentKind.MEDIA, None),
        ("inbound_location", ContentKind.LOCATION, "Alexanderplatz"),
        ("inbound_quick_reply", ContentKind.INTERACTIVE, "Größe 42"),
        ("inbound_postback", ContentKind.BUTTON, "Mit einem Menschen sprechen"),
        ("inbound_reaction", ContentKind.REACTION, "\u2764\ufe0f"),
        ("inbound_fallback", ContentKind.TEXT, "Shared link\nhttps://example.com"),
        (
            "inbound_fallback_null_payload",
            ContentKind.TEXT,
            "Radtour an der Havel\nhttps://www.example.com/touren/havel",
        ),
        ("inbound_fallback_empty", ContentKind.UNSUPPORTED, None),
        ("inbound_unknown_future_type", ContentKind.UNSUPPORTED, "https://example.com/h"),
        (
            "inbound_product_template",
            ContentKind.TEXT,
            "Regenjacke Rot\n79,00 €\nhttps://scontent.example/jacke.jpg",
        ),
    ],
)
def test_parse_inbound(name: str, kind: ContentKind, body: str | None) -> None:
    parsed = channel().parse(request(helpers.fixture_bytes(f"messenger/{name}.json")))
    [msg] = parsed.messages
    assert (msg.content_kind, msg.body, msg.sender_address) == (kind, body, PSID)
    assert msg.sent_at == datetime(2025, 11, 22, 8, 26, 40, tzinfo=UTC)
    assert parsed.statuses == []


def test_reply_to_and_quick_reply_payload_kept() -> None:
    [msg] = (
        channel().parse(request(helpers.fixture_bytes("messenger/inbound_reply_to.json"))).messages
    )
    assert msg.reply_to_provider_id == "m_fx_our_message_0001"
    [qr] = (
        channel()
        .parse(request(helpers.fixture_bytes("messenger/inbound_quick_reply.json")))
        .messages
    )
    assert qr.payload["message"]["quick_reply"]["payload"] == "size_42"


def test_delivery_gives_per_mid_and_watermark_statuses() -> None:
    parsed = channel().parse(request(helpers.fixture_bytes("messenger/delivery.json")))
    per_mid, mark = parsed.statuses
    assert (per_mid.provider_message_id, per_mid.state) == (
        "m_fx_our_message_0001",
        DeliveryState.DELIVERED,
    )
    assert mark.provider_message_id == "" and mark.recipient_address == PSID
    assert mark.watermark == datetime(2025, 11, 22, 8, 26, 39, tzinfo=UTC)


def test_read_is_a_watermark_for_the_customer() -> None:
    [status] = channel().parse(request(helpers.fixture_bytes("messenger/read.json"))).statuses
    assert status.state == DeliveryState.READ and status.provider_message_id == ""
    assert status.recipient_address == PSID
    assert status.watermark == datetime(2025, 11, 22, 8, 26, 39, 500000, tzinfo=UTC)


def test_echo_is_a_sent_receipt_not_a_customer_message() -> None:
    parsed = channel().parse(request(helpers.fixture_bytes("messenger/echo.json")))
    assert parsed.messages == []
    [status] = parsed.statuses
    assert (status.state, status.client_reference, status.recipient_address) == (
        DeliveryState.SENT,
        "01hclientref",
        PSID,
    )


def test_foreign_page_and_non_message_events_are_skipped() -> None:
    body = helpers.dumps(
        {
            "object": "page",
            "entry": [
                {
                    "id": "1",
                    "messaging": [{"sender": {"id": "2"}, "message": {"mid": "m", "text": "x"}}],
                },
                {"id": PAGE_ID, "messaging": [{"sender": {"id": "2"}, "optin": {"ref": "x"}}]},
            ],
        }
    )
    parsed = channel().parse(request(body))
    assert parsed.messages == [] and len(parsed.errors) == 2


def test_payload_within_24_hours_is_a_response() -> None:
    payload = channel().build_payload(out())
    assert payload == {
        "recipient": {"id": PSID},
        "messaging_type": "RESPONSE",
        "message": {"text": "Hallo", "metadata": "01hmsg"},
    }


def test_agent_after_24_hours_uses_human_agent_tag_bot_does_not() -> None:
    late = datetime.now(UTC) - timedelta(days=3)
    agent = channel().build_payload(out(last_inbound_at=late))
    assert (agent["messaging_type"], agent["tag"]) == ("MESSAGE_TAG", "HUMAN_AGENT")
    bot = channel().build_payload(out(last_inbound_at=late, sender_kind="bot"))
    assert bot["messaging_type"] == "RESPONSE" and "tag" not in bot
    old = channel().build_payload(out(last_inbound_at=datetime.now(UTC) - timedelta(days=8)))
    assert "tag" not in old


def test_template_is_a_business_update_tag() -> None:
    payload = channel().build_payload(
        out(
            content_kind=ContentKind.TEMPLATE,
            body=None,
            payload={"name": "POST_PURCHASE_UPDATE", "parameters": ["Paket 4711 ist unterwegs"]},
            last_inbound_at=None,
        )
    )
    assert payload["tag"] == "POST_PURCHASE_UPDATE" and payload["messaging_type"] == "MESSAGE_TAG"
    assert payload["message"]["text"] == "Paket 4711 ist unterwegs"
    with pytest.raises(PermanentError, match="message tags"):
        channel().build_payload(
            out(content_kind=ContentKind.TEMPLATE, payload={"name": "promo_sale"})
        )


def test_buttons_and_lists_become_quick_replies_media_an_attachment() -> None:
    buttons = channel().build_payload(
        out(
            content_kind=ContentKind.INTERACTIVE,
            body="Welche Größe?",
            payload={"buttons": [{"id": "s41", "title": "41"}, {"id": "s42", "title": "42"}]},
        )
    )
    assert buttons["message"]["quick_replies"] == [
        {"content_type": "text", "title": "41", "payload": "s41"},
        {"content_type": "text", "title": "42", "payload": "s42"},
    ]
    rows = channel().build_payload(
        out(
            content_kind=ContentKind.INTERACTIVE,
            body="Filiale?",
            payload={"sections": [{"rows": [{"id": "b1", "title": "Mitte"}]}]},
        )
    )
    assert rows["message"]["quick_replies"][0]["payload"] == "b1"
    media = channel().build_payload(
        out(
            content_kind=ContentKind.MEDIA,
            payload={"media_type": "document", "link": "https://shop.example/r.pdf"},
        )
    )
    assert media["message"]["attachment"] == {
        "type": "file",
        "payload": {"url": "https://shop.example/r.pdf", "is_reusable": True},
    }


async def test_send_returns_message_id_and_puts_token_in_query() -> None:
    seen: list[httpx.Request] = []

    def handler(r: httpx.Request) -> httpx.Response:
        seen.append(r)
        return httpx.Response(200, json={"recipient_id": PSID, "message_id": "m_abc"})

    result = await channel(handler).send(out())
    assert result.provider_message_id == "m_abc"
    assert seen[0].url.path == "/v21.0/me/messages"
    assert seen[0].url.params["access_token"] == "sim-page-token"
    assert json.loads(seen[0].content)["recipient"] == {"id": PSID}


def _error(status: int, code: int, subcode: int | None = None, **headers: str) -> Any:
    err: dict[str, Any] = {"message": f"(#{code}) boom", "type": "OAuthException", "code": code}
    if subcode:
        err["error_subcode"] = subcode
    return lambda r: httpx.Response(status, json={"error": err}, headers=headers)


@pytest.mark.parametrize(
    ("handler", "kind", "code"),
    [
        (_error(400, 10, 2018278), PermanentError, "10"),
        (_error(400, 613), RateLimited, "613"),
        (_error(400, 4), RateLimited, "4"),
        (_error(400, 32), RateLimited, "32"),
        (_error(400, 190), AuthError, "190"),
        (_error(400, 551), PermanentError, "551"),
        (_error(500, 1), TransientError, "1"),
        (_error(503, 2), TransientError, "2"),
        (_error(400, 100), PermanentError, "100"),
        (lambda r: httpx.Response(502, text="bad gateway"), TransientError, None),
    ],
)
async def test_error_mapping(handler: Any, kind: type[Exception], code: str | None) -> None:
    with pytest.raises(kind) as exc:
        await channel(handler).send(out())
    assert getattr(exc.value, "code", None) == code


async def test_window_error_says_so_and_unavailable_person_is_unreachable() -> None:
    with pytest.raises(PermanentError) as exc:
        await channel(_error(400, 10, 2018278)).send(out())
    assert "outside of the allowed window" in exc.value.reason
    with pytest.raises(PermanentError) as gone:
        await channel(_error(400, 551)).send(out())
    assert gone.value.unreachable


async def test_rate_limit_retry_after() -> None:
    with pytest.raises(RateLimited) as exc:
        await channel(_error(400, 613)).send(out())
    assert exc.value.retry_after == 1.0
    with pytest.raises(RateLimited) as hinted:
        await channel(_error(400, 4, **{"Retry-After": "7"})).send(out())
    assert hinted.value.retry_after == 7.0


@pytest.mark.parametrize("exc", [httpx.ConnectError("x"), httpx.ReadTimeout("x")])
async def test_network_errors_are_transient(exc: Exception) -> None:
    def handler(r: httpx.Request) -> httpx.Response:
        raise exc

    with pytest.raises(TransientError):
        await channel(handler).send(out())


def test_events_without_a_sender_are_skipped_not_the_batch(
    caplog: pytest.LogCaptureFixture,
) -> None:
    body = helpers.fixture_bytes("messenger/batch_sender_less_events.json")
    with caplog.at_level("INFO", logger="tresen.channels.messenger"):
        parsed = channel().parse(request(body))
    [msg] = parsed.messages
    assert (msg.provider_message_id, msg.body) == ("m_fx_batch_0001", "Ist die Jacke noch da?")
    assert parsed.errors == [
        "event without a sender skipped (policy_enforcement)",
        "event without a sender skipped (app_roles)",
        "event without a sender skipped (optin)",
    ]
    logged = " ".join(r.getMessage() for r in caplog.records)
    assert "policy_enforcement" in logged and PAGE_ID in logged
    assert "checkout-box" not in logged and "checkbox-7f3a" not in logged  # ids and kinds only


def test_a_bad_event_costs_only_itself() -> None:
    good = {"sender": {"id": PSID}, "recipient": {"id": PAGE_ID}, "timestamp": 1,
            "message": {"mid": "m_good", "text": "Hallo"}}  # fmt: skip
    no_mid = {"sender": {"id": PSID}, "message": {"text": "ohne mid"}}
    long_mid = {"sender": {"id": PSID}, "message": {"mid": "m" * 300, "text": "x"}}
    envelope = {"object": "page", "entry": [{"id": PAGE_ID, "messaging": [no_mid, good, long_mid]}]}
    parsed = channel().parse(request(helpers.dumps(envelope)))
    assert [m.provider_message_id for m in parsed.messages] == ["m_good"]
    assert len(parsed.errors) == 2 and "bad shape" in parsed.errors[0]
    alone = {"object": "page", "entry": [{"id": PAGE_ID, "messaging": [no_mid]}]}
    with pytest.raises(WebhookRejected) as exc:
        channel().parse(request(helpers.dumps(alone)))
    assert exc.value.status_code == 400 and "bad shape" in exc.value.message


def test_standby_messages_are_kept_and_marked() -> None:
    parsed = channel().parse(request(helpers.fixture_bytes("messenger/standby.json")))
    [msg] = parsed.messages
    assert msg.body == "Hallo? Ist da jemand?" and msg.payload["standby"] is True
    [read] = parsed.statuses
    assert read.state == DeliveryState.READ and read.recipient_address == PSID
    [plain] = (
        channel().parse(request(helpers.fixture_bytes("messenger/inbound_text.json"))).messages
    )
    assert "standby" not in plain.payload


def test_handover_events_are_not_messages_but_say_who_owns_the_thread() -> None:
    body = helpers.fixture_bytes("messenger/handover_pass_thread_control.json")
    parsed = channel().parse(request(body))
    assert parsed.messages == [] and parsed.errors == []
    [thread] = parsed.threads
    assert (thread.address, thread.owner) == ("6945112233445566", None), "passed to us"
    taken = json.loads(body)
    event = taken["entry"][0]["messaging"][0]
    event["take_thread_control"] = event.pop("pass_thread_control")
    [thread] = channel().parse(request(helpers.dumps(taken))).threads
    assert thread.owner == "123456789", "taken from us by the named app"


def test_every_attachment_keeps_its_links_once() -> None:
    attachments = [
        {"type": "fallback", "payload": None, "title": "A", "url": "https://a.example"},
        {"type": "fallback", "payload": {"title": "A", "url": "https://a.example"}},
        {"type": "template", "payload": {"elements": [{"title": "B", "item_url": "https://b"}]}},
        {"type": "teleport", "payload": {"to": "mars"}},
    ]
    event = {"sender": {"id": PSID}, "message": {"mid": "m_links", "text": "Schau mal",
             "attachments": attachments}}  # fmt: skip
    envelope = {"object": "page", "entry": [{"id": PAGE_ID, "messaging": [event]}]}
    [msg] = channel().parse(request(helpers.dumps(envelope))).messages
    assert msg.content_kind == ContentKind.TEXT
    assert msg.body == "Schau mal\nA\nhttps://a.example\nB\nhttps://b"
