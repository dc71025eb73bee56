"""Telegram adapter units: secret header, parsing, requests, error mapping, setWebhook."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tests import helpers
from tests.channels import conformance  # noqa: F401  (imports every case module first)

# isort: split
from tests.channels.cases.telegram import TG_CONFIG, TG_SECRET, tg_text
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
from tresen.channels.telegram import TelegramChannel, map_error, set_webhook
from tresen.domain.message import ContentKind

API = "http://tg.test"
TOKEN = TG_CONFIG["bot_token"]


def _channel(handler: Any = None) -> TelegramChannel:
    transport = httpx.MockTransport(handler or (lambda r: httpx.Response(500)))
    return TelegramChannel({**TG_CONFIG, "api_base": API}, httpx.AsyncClient(transport=transport))


def _req(body: bytes = b"", headers: dict[str, str] | None = None) -> WebhookRequest:
    return WebhookRequest(
        "POST",
        "http://x/webhooks/telegram/1",
        {k.lower(): v for k, v in (headers or {}).items()},
        {},
        body,
    )


def _parse(name: str) -> Any:
    return _channel().parse(_req(helpers.fixture_bytes(f"telegram/{name}.json")))


def _out(
    kind: ContentKind = ContentKind.TEXT, body: str | None = "Hallo", **payload: Any
) -> OutboundMessage:
    return OutboundMessage(
        to="111222333", content_kind=kind, body=body, payload=payload, client_reference="m1"
    )


def _ok(message_id: int = 55, chat_id: int = 111222333) -> httpx.Response:
    return httpx.Response(
        200,
        json={
            "ok": True,
            "result": {
                "message_id": message_id,
                "chat": {"id": chat_id, "type": "private"},
                "date": 1,
            },
        },
    )


# -- configuration ------------------------------------------------------------------------


def test_config_is_checked_with_clear_messages() -> None:
    assert TelegramChannel.check_config(TG_CONFIG)["api_base"] == "https://api.telegram.org"
    assert TelegramChannel.check_config(TG_CONFIG)["messages_per_second"] == 30.0
    for bad, words in [
        ({"secret_token": "has space"}, "secret_token"),
        ({"secret_token": ""}, "secret_token"),
        ({"secret_token": "x" * 257}, "secret_token"),
        ({"bot_token": "no-colon"}, "bot_token"),
        ({"api_base": "ftp://x"}, "api_base"),
        ({"messages_per_second": 0}, "messages_per_second"),
        ({"unknown": 1}, "unknown"),
    ]:
        with pytest.raises(ConfigError, match=words):
            TelegramChannel.check_config({**TG_CONFIG, **bad})
    assert TelegramChannel.check_config({**TG_CONFIG, "secret_token": "A" * 256})


# -- verify -------------------------------------------------------------------------------


def test_secret_header_good_wrong_missing() -> None:
    ch = _channel()
    body = helpers.dumps(tg_text("a"))
    ch.verify(_req(body, {"X-Telegram-Bot-Api-Secret-Token": TG_SECRET}))
    with pytest.raises(WebhookRejected) as wrong:
        ch.verify(_req(body, {"X-Telegram-Bot-Api-Secret-Token": TG_SECRET + "x"}))
    assert wrong.value.status_code == 403
    for headers in ({}, {"X-Telegram-Bot-Api-Secret-Token": ""}):
        with pytest.raises(WebhookRejected) as missing:
            ch.verify(_req(body, headers))
        assert missing.value.status_code == 401


def test_get_handshake_is_refused() -> None:
    with pytest.raises(WebhookRejected) as exc:
        _channel().handshake(_req())
    assert exc.value.status_code == 405


# -- parse --------------------------------------------------------------------------------


def test_text_message() -> None:
    [m] = _parse("inbound_text").messages
    assert m.provider_message_id == "111222333:101"
    assert m.sender_address == "111222333"
    assert m.sender_name == "Jana Müller"
    assert m.content_kind == ContentKind.TEXT and m.body == "Habt ihr das Rad in 56 cm? 🚲"
    assert m.sent_at.timestamp() == 1763800000
    assert m.acknowledgement is None
    assert m.payload["update_id"] == 700000001


def test_photo_keeps_largest_size_and_caption() -> None:
    [m] = _parse("inbound_photo").messages
    assert m.content_kind == ContentKind.MEDIA and m.body == "So sieht der Schaden aus"
    assert m.payload["media"] == {
        "type": "photo",
        "file_id": "AgACAgIAAxkBAAIBZmVfLarge",
        "mime_type": "image/jpeg",
    }


@pytest.mark.parametrize(
    ("name", "media_type", "body"),
    [
        ("inbound_document", "document", "rechnung-4711.pdf"),
        ("inbound_video", "video", "Das Geräusch beim Bremsen"),
        ("inbound_voice", "voice", None),
        ("inbound_sticker", "sticker", "👍"),
    ],
)
def test_files_are_media(name: str, media_type: str, body: str | None) -> None:
    [m] = _parse(name).messages
    assert m.content_kind == ContentKind.MEDIA and m.body == body
    assert m.payload["media"]["type"] == media_type and m.payload["media"]["file_id"]


def test_location_venue_contact() -> None:
    [loc] = _parse("inbound_location").messages
    assert loc.content_kind == ContentKind.LOCATION and loc.body == "52.520008,13.404954"
    [venue] = _parse("inbound_venue").messages
    assert venue.content_kind == ContentKind.LOCATION and venue.body == "Brandenburger Tor"
    [contact] = _parse("inbound_contact").messages
    assert contact.content_kind == ContentKind.CONTACTS and contact.body == "Erika Mustermann"


def test_callback_query_is_interactive_with_button_text_and_acknowledgement() -> None:
    [m] = _parse("inbound_callback_query").messages
    assert m.content_kind == ContentKind.INTERACTIVE
    assert m.body == "58 cm"
    assert m.provider_message_id == "cb:4382bfdwdsb323b2d9"
    assert m.sender_address == "111222333"
    assert m.reply_to_provider_id == "111222333:110"
    assert m.acknowledgement == {"callback_query_id": "4382bfdwdsb323b2d9"}


def test_callback_query_without_message_uses_data_and_user() -> None:
    body = helpers.dumps(
        {
            "update_id": 5,
            "callback_query": {
                "id": "q1",
                "from": {"id": 77, "is_bot": False, "first_name": "A"},
                "chat_instance": "1",
                "data": "yes",
            },
        }
    )
    [m] = _channel().parse(_req(body)).messages
    assert (m.body, m.sender_address, m.reply_to_provider_id) == ("yes", "77", None)


def test_edited_unknown_and_odd_messages_are_unsupported_not_dropped() -> None:
    [edited] = _parse("inbound_edited_message").messages
    assert edited.content_kind == ContentKind.UNSUPPORTED
    assert edited.provider_message_id == "u:700000011"
    assert edited.sender_address == "111222333" and edited.sent_at.timestamp() == 1763800200
    [dice] = _parse("inbound_dice").messages
    assert (
        dice.content_kind == ContentKind.UNSUPPORTED and dice.provider_message_id == "111222333:112"
    )
    [future] = _parse("inbound_unknown_future_type").messages
    assert future.content_kind == ContentKind.UNSUPPORTED and future.sender_name == "Jana Müller"


def test_update_without_any_person_is_reported_not_stored() -> None:
    parsed = _channel().parse(_req(helpers.dumps({"update_id": 3, "poll": {"id": "1"}})))
    assert parsed.messages == [] and parsed.errors == ["update 3 (poll) has no chat"]


def test_reply_to_and_repeated_update_give_the_same_id() -> None:
    update = tg_text("r1")
    update["message"]["reply_to_message"] = {
        "message_id": 9,
        "chat": update["message"]["chat"],
        "date": 1,
    }
    first = _channel().parse(_req(helpers.dumps(update))).messages[0]
    again = _channel().parse(_req(helpers.dumps(update))).messages[0]
    assert first.provider_message_id == again.provider_message_id
    assert first.reply_to_provider_id == "4915100000001:9"


def test_get_updates_batch() -> None:
    body = helpers.dumps({"ok": True, "result": [tg_text("a"), tg_text("b")]})
    assert len(_channel().parse(_req(body)).messages) == 2


@pytest.mark.parametrize(
    "body",
    [
        b"nope",
        b"[]",
        b'{"message": {}}',
        b'{"update_id": 1, "message": {"message_id": 1}}',
        b'{"update_id": 1, "callback_query": {"id": "", "from": {"id": 1}}}',
        b'{"ok": true, "result": [1]}',
        b'{"update_id": 1, "message": "\xff\xfe"}',
    ],
)
def test_malformed_is_400(body: bytes) -> None:
    with pytest.raises(WebhookRejected) as exc:
        _channel().parse(_req(body))
    assert exc.value.status_code == 400


# -- send ---------------------------------------------------------------------------------


async def test_send_text_posts_to_bot_token_path() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return _ok()

    result = await _channel(handler).send(_out())
    assert result.provider_message_id == "111222333:55"
    assert str(seen[0].url) == f"{API}/bot{TOKEN}/sendMessage"
    assert json.loads(seen[0].content) == {"chat_id": "111222333", "text": "Hallo"}


def test_buttons_become_an_inline_keyboard() -> None:
    method, body = _channel().build_request(
        _out(
            ContentKind.INTERACTIVE,
            "Größe?",
            buttons=[{"id": "s56", "title": "56 cm"}, {"id": "s58", "title": "58 cm"}],
        )
    )
    assert method == "sendMessage"
    assert body["reply_markup"] == {
        "inline_keyboard": [
            [{"text": "56 cm", "callback_data": "s56"}],
            [{"text": "58 cm", "callback_data": "s58"}],
        ]
    }
    _, listed = _channel().build_request(
        _out(
            ContentKind.INTERACTIVE,
            "Filiale?",
            sections=[{"title": "B", "rows": [{"id": "b1", "title": "Mitte"}]}],
        )
    )
    assert listed["reply_markup"]["inline_keyboard"] == [[{"text": "Mitte", "callback_data": "b1"}]]


def test_callback_data_over_64_bytes_is_refused() -> None:
    with pytest.raises(PermanentError) as exc:
        _channel().build_request(
            _out(ContentKind.INTERACTIVE, "?", buttons=[{"id": "ü" * 33, "title": "x"}])
        )
    assert exc.value.code == "callback_data_too_long"


def test_media_uses_the_matching_method() -> None:
    method, body = _channel().build_request(
        _out(
            ContentKind.MEDIA, "Rechnung", media_type="document", link="https://shop.example/r.pdf"
        )
    )
    assert method == "sendDocument"
    assert body == {
        "chat_id": "111222333",
        "document": "https://shop.example/r.pdf",
        "caption": "Rechnung",
    }
    assert (
        _channel().build_request(_out(ContentKind.MEDIA, None, link="https://x/p.jpg"))[0]
        == "sendPhoto"
    )
    with pytest.raises(PermanentError):
        _channel().build_request(_out(ContentKind.TEMPLATE, None, name="t"))


def _error(status: int, description: str, **params: Any) -> httpx.Response:
    body: dict[str, Any] = {"ok": False, "error_code": status, "description": description}
    if params:
        body["parameters"] = params
    return httpx.Response(status, json=body)


@pytest.mark.parametrize(
    ("response", "kind", "extra"),
    [
        (
            _error(429, "Too Many Requests: retry after 7", retry_after=7),
            RateLimited,
            {"retry_after": 7.0},
        ),
        (
            _error(403, "Forbidden: bot was blocked by the user"),
            PermanentError,
            {"unreachable": True},
        ),
        (_error(403, "Forbidden: user is deactivated"), PermanentError, {"unreachable": True}),
        (
            _error(403, "Forbidden: not enough rights to send text messages to the chat"),
            PermanentError,
            {"unreachable": False},
        ),
        (
            _error(400, "Bad Request: chat not found"),
            PermanentError,
            {"reason": "Bad Request: chat not found", "code": "400"},
        ),
        (_error(401, "Unauthorized"), AuthError, {}),
        (_error(404, "Not Found"), AuthError, {}),
        (_error(502, "Bad Gateway"), TransientError, {}),
        (httpx.Response(503, text="<html>"), TransientError, {}),
        (httpx.Response(200, json={"ok": True, "result": True}), TransientError, {}),
    ],
)
async def test_error_mapping(
    response: httpx.Response, kind: type[Exception], extra: dict[str, Any]
) -> None:
    with pytest.raises(kind) as exc:
        await _channel(lambda r: response).send(_out())
    for name, value in extra.items():
        assert getattr(exc.value, name) == value


@pytest.mark.parametrize("error", [httpx.ConnectError("refused"), httpx.ReadTimeout("slow")])
async def test_network_errors_are_transient(error: Exception) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise error

    with pytest.raises(TransientError):
        await _channel(handler).send(_out())


def test_map_error_without_body() -> None:
    assert isinstance(map_error(401, None), AuthError)
    assert isinstance(map_error(400, None), PermanentError)


# -- acknowledge and setWebhook -------------------------------------------------------------


async def test_acknowledge_answers_the_callback_query() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if len(seen) == 2:
            return _error(400, "Bad Request: query is too old and response timeout expired")
        return httpx.Response(200, json={"ok": True, "result": True})

    ch = _channel(handler)
    await ch.acknowledge({"callback_query_id": "q1"})
    await ch.acknowledge({"callback_query_id": "q1"})  # too old: nothing left to do
    await ch.acknowledge({})
    assert [r.url.path for r in seen] == [f"/bot{TOKEN}/answerCallbackQuery"] * 2
    assert json.loads(seen[0].content) == {"callback_query_id": "q1"}
    with pytest.raises(TransientError):
        await _channel().acknowledge({"callback_query_id": "q2"})


async def test_set_webhook_sends_url_secret_and_allowed_updates() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(
            200, json={"ok": True, "result": True, "description": "Webhook was set"}
        )

    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    await set_webhook(
        http, {**TG_CONFIG, "api_base": API}, "https://shop.example/webhooks/telegram/c1"
    )
    body = json.loads(seen[0].content)
    assert seen[0].url.path == f"/bot{TOKEN}/setWebhook"
    assert body["url"] == "https://shop.example/webhooks/telegram/c1"
    assert body["secret_token"] == TG_SECRET
    assert "callback_query" in body["allowed_updates"] and "message" in body["allowed_updates"]
    bad = httpx.AsyncClient(transport=httpx.MockTransport(lambda r: _error(401, "Unauthorized")))
    with pytest.raises(AuthError):
        await set_webhook(bad, TG_CONFIG, "https://x")
