"""SMS adapter units: signatures, parsing, segments, keywords, sending and error mapping."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest

from tests import helpers
from tests.channels import conformance  # noqa: F401  (the table loads the case modules first)
from tests.channels.cases.sms import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    BUSINESS,
    CONFIG,
    inbound,
    sign,
    status,
)
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
from tresen.channels.registry import channel_factory
from tresen.channels.sms import SegmentInfo, SmsChannel, classify_keyword, segments, signature
from tresen.domain.message import ContentKind, DeliveryState

URL = "https://tresen.example/webhooks/sms/01abc"


def request(body: bytes, headers: dict[str, str] | None = None, url: str = URL) -> WebhookRequest:
    """A webhook request as the web layer builds it."""
    query = dict(parse_qsl(url.partition("?")[2]))
    return WebhookRequest(
        method="POST",
        url="http://127.0.0.1:8000" + url.split("example", 1)[1],
        headers={k.lower(): v for k, v in (headers or {}).items()},
        query=query,
        body=body,
        public_url=url,
    )


def channel(handler: Any = None, **overrides: Any) -> SmsChannel:
    """An adapter whose HTTP calls go to `handler`."""
    transport = httpx.MockTransport(handler or (lambda r: httpx.Response(500)))
    return SmsChannel({**CONFIG, **overrides}, httpx.AsyncClient(transport=transport))


def parse(body: bytes, url: str = URL) -> Any:
    ch = channel()
    req = request(body, sign(body, url), url)
    ch.verify(req)
    return ch.parse(req)


# -- signature -------------------------------------------------------------------------


def test_published_twilio_test_vector() -> None:
    params = [
        ("CallSid", "CA1234567890ABCDE"),
        ("Caller", "+12349013030"),
        ("Digits", "1234"),
        ("From", "+12349013030"),
        ("To", "+18005551212"),
    ]
    url = "https://mycompany.com/myapp.php?foo=1&bar=2"
    assert signature("12345", url, params) == "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
    assert signature("12345", url, list(reversed(params))) == "0/KCTR6DLpKmkAf8muzZqo1nDgQ="


def test_verify_accepts_the_published_vector_through_the_adapter() -> None:
    ch = channel(auth_token="12345")
    body = (
        b"CallSid=CA1234567890ABCDE&Caller=%2B12349013030&Digits=1234"
        b"&From=%2B12349013030&To=%2B18005551212"
    )
    url = "https://mycompany.com/myapp.php?foo=1&bar=2"
    ch.verify(
        WebhookRequest(
            "POST",
            "http://internal/myapp.php?foo=1&bar=2",
            {"x-twilio-signature": "0/KCTR6DLpKmkAf8muzZqo1nDgQ="},
            {"foo": "1", "bar": "2"},
            body,
            public_url=url,
        )
    )


def test_verify_good_bad_missing() -> None:
    ch = channel()
    body = inbound("SM1", "+4915112345678", "Hallo")
    ch.verify(request(body, sign(body, URL)))
    with pytest.raises(WebhookRejected) as missing:
        ch.verify(request(body, {}))
    assert missing.value.status_code == 401
    for headers in (
        sign(body, URL, token="wrong"),
        sign(body, URL + "?x=1"),
        sign(body, "https://evil.example/webhooks/sms/01abc"),
        sign(body + b"&Extra=1", URL),
        {"X-Twilio-Signature": "garbage"},
    ):
        with pytest.raises(WebhookRejected) as bad:
            ch.verify(request(body, headers))
        assert bad.value.status_code == 403


def test_signature_covers_the_query_string_of_the_public_url() -> None:
    url = URL + "?tresen_ref=01msg"
    body = status("SM1", "delivered")
    channel().verify(request(body, sign(body, url), url))
    with pytest.raises(WebhookRejected):
        channel().verify(request(body, sign(body, URL), url))


def test_default_port_variants_are_accepted() -> None:
    body = inbound("SM1", "+4915112345678", "Hallo")
    with_port = "https://tresen.example:443/webhooks/sms/01abc"
    channel().verify(request(body, sign(body, with_port), URL))


# -- parsing ---------------------------------------------------------------------------


def test_parse_text_keeps_every_field() -> None:
    body = inbound("SM1", "+4915112345678", "Grüß Gott 🚲", NewTwilioField="42")
    [msg] = parse(body).messages
    assert msg.provider_message_id == "SM1"
    assert msg.sender_address == "+4915112345678"
    assert msg.content_kind == ContentKind.TEXT and msg.body == "Grüß Gott 🚲"
    assert msg.payload["NewTwilioField"] == "42" and msg.payload["To"] == BUSINESS
    assert "keyword" not in msg.payload


@pytest.mark.parametrize(
    ("name", "kind", "body"),
    [
        ("inbound_sms.txt", ContentKind.TEXT, "Hallo, ist das Rad in 56 cm noch da? Grüße, Jana"),
        ("inbound_sms_emoji.txt", ContentKind.TEXT, "Danke 🚲👍"),
        ("inbound_mms.txt", ContentKind.MEDIA, "Hier das Foto vom Schaden"),
        ("inbound_mms_no_body.txt", ContentKind.MEDIA, None),
        ("inbound_location.txt", ContentKind.LOCATION, "Laden Mitte"),
        ("inbound_unknown_type.txt", ContentKind.UNSUPPORTED, None),
    ],
)
def test_parse_recorded_inbound(name: str, kind: ContentKind, body: str | None) -> None:
    [msg] = parse(helpers.fixture_bytes(f"sms/{name}")).messages
    assert msg.content_kind == kind and msg.body == body
    assert msg.payload["AccountSid"] == ACCOUNT_SID


def test_parse_mms_lists_media() -> None:
    [msg] = parse(helpers.fixture_bytes("sms/inbound_mms.txt")).messages
    assert [m["content_type"] for m in msg.payload["media"]] == ["image/jpeg", "image/png"]
    assert all(m["url"].startswith("https://api.twilio.com/") for m in msg.payload["media"])
    assert msg.payload["NumMedia"] == "2"


def test_parse_marks_keywords() -> None:
    [stop] = parse(helpers.fixture_bytes("sms/inbound_stop.txt")).messages
    [german] = parse(helpers.fixture_bytes("sms/inbound_abmelden.txt")).messages
    assert stop.payload["keyword"] == "opt_out" and stop.body == "Stop"
    assert german.payload["keyword"] == "opt_out" and german.body == " ABMELDEN "
    [help_] = parse(inbound("SMh", "+4915112345678", "hilfe")).messages
    assert help_.payload["keyword"] == "help"


@pytest.mark.parametrize(
    ("name", "state", "code"),
    [
        ("status_queued.txt", DeliveryState.QUEUED, None),
        ("status_sent.txt", DeliveryState.SENT, None),
        ("status_delivered.txt", DeliveryState.DELIVERED, None),
        ("status_undelivered.txt", DeliveryState.FAILED, "30003"),
        ("status_failed_opted_out.txt", DeliveryState.FAILED, "21610"),
    ],
)
def test_parse_status_callbacks(name: str, state: DeliveryState, code: str | None) -> None:
    parsed = parse(helpers.fixture_bytes(f"sms/{name}"))
    assert parsed.messages == []
    [st] = parsed.statuses
    assert st.state == state and st.error_code == code
    assert st.recipient_address == "+4915112345678"
    if code:
        assert st.error_reason and (
            "unreachable" in st.error_reason or "opted out" in st.error_reason
        )
    if state == DeliveryState.DELIVERED:
        assert st.occurred_at.isoformat().startswith("2025-11-22T15:30")


@pytest.mark.parametrize("code", ["30003", "30005", "30006", "30007", "21610"])
def test_failure_codes_carry_a_human_reason(code: str) -> None:
    [st] = parse(status("SMf", "undelivered", ErrorCode=code)).statuses
    assert st.error_code == code and st.error_reason and "Twilio error" not in st.error_reason


def test_status_callback_reference_comes_from_the_callback_url() -> None:
    url = URL + "?tresen_ref=01msgid"
    [st] = parse(status("SM1", "sent"), url).statuses
    assert st.client_reference == "01msgid"


@pytest.mark.parametrize("state", ["accepted", "scheduled", "receiving", "brand_new"])
def test_other_statuses_are_ignored(state: str) -> None:
    parsed = parse(status("SM1", state))
    assert parsed.messages == [] and parsed.statuses == []


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"{not a form",
        b"MessageSid=SM1&From=%2B49151",
        inbound("SM1", "+49151", "x", AccountSid="AC" + "0" * 32),
        inbound("SM1", "+49151", "x") + b"&From=%2B49152",
        inbound("SM1", "+49151", "x", NumMedia="-1"),
        inbound("SM1", "+49151", "x", From=""),
        inbound("S" * 65, "+49151", "x"),
    ],
)
def test_malformed_is_400(body: bytes) -> None:
    ch = channel()
    with pytest.raises(WebhookRejected) as err:
        ch.parse(request(body))
    assert err.value.status_code == 400


def test_handshake_is_refused() -> None:
    with pytest.raises(WebhookRejected) as err:
        channel().handshake(request(b""))
    assert err.value.status_code == 405


# -- segments and keywords -------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", SegmentInfo("GSM-7", 0, 0)),
        ("Hallo", SegmentInfo("GSM-7", 1, 5)),
        ("a" * 160, SegmentInfo("GSM-7", 1, 160)),
        ("a" * 161, SegmentInfo("GSM-7", 2, 161)),
        ("a" * 306, SegmentInfo("GSM-7", 2, 306)),
        ("a" * 307, SegmentInfo("GSM-7", 3, 307)),
        ("Grüße aus Köln, schöne Füße ÄÖÜ ß", SegmentInfo("GSM-7", 1, 33)),
        ("ä" * 160, SegmentInfo("GSM-7", 1, 160)),
        ("€" * 80, SegmentInfo("GSM-7", 1, 80)),
        ("€" * 81, SegmentInfo("GSM-7", 2, 81)),
        ("a" * 159 + "€", SegmentInfo("GSM-7", 2, 160)),
        ("[{}]~|^\\", SegmentInfo("GSM-7", 1, 8)),
        ("Preis: 5 €", SegmentInfo("GSM-7", 1, 10)),
        ("Hallo 🚲", SegmentInfo("UCS-2", 1, 7)),
        ("x" * 70 + "ç", SegmentInfo("UCS-2", 2, 71)),
        ("ç" * 70, SegmentInfo("UCS-2", 1, 70)),
        ("ç" * 134, SegmentInfo("UCS-2", 2, 134)),
        ("ç" * 135, SegmentInfo("UCS-2", 3, 135)),
        ("🚲" * 35, SegmentInfo("UCS-2", 1, 35)),
        ("🚲" * 36, SegmentInfo("UCS-2", 2, 36)),
        ("Straße „Am Ring“", SegmentInfo("UCS-2", 1, 16)),
    ],
)
def test_segments(text: str, expected: SegmentInfo) -> None:
    assert segments(text) == expected


def test_segment_packing_never_splits_an_escape_or_a_surrogate_pair() -> None:
    # 152 plain septets then "€" (2 septets) does not fit the first 153-septet part.
    assert segments("a" * 152 + "€" + "a" * 153).segments == 3
    assert segments("a" * 151 + "€" + "a" * 153).segments == 2
    # 66 code units + one emoji (2 units) must start the next 67-unit part.
    assert segments("ç" * 66 + "🚲" + "ç" * 67).segments == 3
    assert segments("ç" * 65 + "🚲" + "ç" * 67).segments == 2


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("STOP", "opt_out"),
        (" stop\n", "opt_out"),
        ("Stopp", "opt_out"),
        ("StopAll", "opt_out"),
        ("unsubscribe", "opt_out"),
        ("END", "opt_out"),
        ("quit", "opt_out"),
        ("Cancel", "opt_out"),
        ("revoke", "opt_out"),
        ("optout", "opt_out"),
        ("Abmelden", "opt_out"),
        ("abbestellen", "opt_out"),
        ("kündigen", "opt_out"),
        ("KÜNDIGEN", "opt_out"),
        ("Ku\u0308ndigen", "opt_out"),
        ("start", "opt_in"),
        ("Yes", "opt_in"),
        ("UNSTOP", "opt_in"),
        ("help", "help"),
        ("Info", "help"),
        ("HILFE", "help"),
        ("Stop the delivery please", None),
        ("Bitte nicht abmelden", None),
        ("", None),
        (None, None),
    ],
)
def test_classify_keyword(text: str | None, expected: str | None) -> None:
    assert classify_keyword(text) == expected


# -- configuration ---------------------------------------------------------------------


def test_registered_and_config_checked() -> None:
    assert channel_factory("sms") is SmsChannel
    checked = SmsChannel.check_config({**CONFIG, "from_number": "+49 30 1234567-00"})
    assert checked["from_number"] == "+4930123456700"
    assert checked["messages_per_second"] == 1.0
    assert checked["api_base"] == "https://api.twilio.com"


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"account_sid": "123"}, "account_sid"),
        ({"auth_token": " "}, "auth_token"),
        ({"from_number": ""}, "from_number"),
        ({"from_number": "030123456"}, "E.164"),
        ({"messaging_service_sid": "MGxyz"}, "messaging_service_sid"),
        ({"api_base": "ftp://x"}, "api_base"),
        ({"status_callback_url": "nope"}, "status_callback_url"),
        ({"messages_per_second": 0}, "messages_per_second"),
        ({"surprise": 1}, "surprise"),
    ],
)
def test_bad_config_is_refused_clearly(change: dict[str, Any], words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        SmsChannel.check_config({**CONFIG, **change})


def test_messaging_service_instead_of_number() -> None:
    sid = "MG" + "a" * 32
    checked = SmsChannel.check_config(
        {"account_sid": ACCOUNT_SID, "auth_token": AUTH_TOKEN, "messaging_service_sid": sid}
    )
    form = SmsChannel(checked, httpx.AsyncClient()).build_form(_out("Hallo"))
    assert form["MessagingServiceSid"] == sid and "From" not in form


# -- sending ---------------------------------------------------------------------------


def _out(body: str | None, kind: ContentKind = ContentKind.TEXT, **payload: Any) -> OutboundMessage:
    return OutboundMessage(
        to="+4915112345678", content_kind=kind, body=body, payload=payload, client_reference="01m"
    )


async def test_send_posts_the_form_with_basic_auth() -> None:
    seen: list[httpx.Request] = []

    def handler(req: httpx.Request) -> httpx.Response:
        seen.append(req)
        return httpx.Response(201, json={"sid": "SM" + "1" * 32, "status": "queued"})

    ch = channel(handler, status_callback_url=URL)
    result = await ch.send(_out("Hallo €"))
    assert result.provider_message_id == "SM" + "1" * 32
    [req] = seen
    assert str(req.url) == (
        f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
    )
    assert req.headers["authorization"] == httpx.BasicAuth(ACCOUNT_SID, AUTH_TOKEN)._auth_header
    form = dict(parse_qsl(req.content.decode()))
    assert form == {
        "To": "+4915112345678",
        "From": BUSINESS,
        "Body": "Hallo €",
        "StatusCallback": URL + "?tresen_ref=01m",
    }


async def test_send_media_and_no_status_callback_when_unset() -> None:
    seen: list[dict[str, str]] = []

    def handler(req: httpx.Request) -> httpx.Response:
        seen.append(dict(parse_qsl(req.content.decode())))
        return httpx.Response(201, json={"sid": "MM1", "status": "queued"})

    await channel(handler).send(
        _out("Foto", ContentKind.MEDIA, link="https://shop.example/a.jpg", media_type="image")
    )
    assert seen == [
        {
            "To": "+4915112345678",
            "From": BUSINESS,
            "Body": "Foto",
            "MediaUrl": "https://shop.example/a.jpg",
        }
    ]


async def test_send_refuses_what_sms_cannot_carry() -> None:
    ch = channel()
    with pytest.raises(PermanentError):
        await ch.send(_out("x" * 1601))
    with pytest.raises(PermanentError):
        await ch.send(_out("hi", ContentKind.INTERACTIVE, buttons=[]))
    with pytest.raises(PermanentError):
        await ch.send(_out(None, ContentKind.MEDIA, link="file:///etc/passwd"))


def _error(status: int, code: int, message: str = "x", **headers: str) -> Any:
    body = {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }
    return lambda req: httpx.Response(status, json=body, headers=headers)


@pytest.mark.parametrize(
    ("handler", "kind", "code", "retry_after"),
    [
        (
            _error(429, 20429, "Too Many Requests", **{"Retry-After": "3"}),
            RateLimited,
            "20429",
            3.0,
        ),
        (_error(429, 20429, "Too Many Requests"), RateLimited, "20429", 1.0),
        (_error(400, 21611, "queue full"), RateLimited, "21611", 30.0),
        (_error(401, 20003, "Authenticate"), AuthError, "20003", None),
        (_error(400, 21211, "Invalid To"), PermanentError, "21211", None),
        (
            _error(400, 21610, "Attempt to send to unsubscribed recipient"),
            PermanentError,
            "21610",
            None,
        ),
        (_error(500, 20500, "Internal"), TransientError, "20500", None),
        (lambda r: httpx.Response(503, text="<html>"), TransientError, "503", None),
        (lambda r: httpx.Response(404, text="not found"), PermanentError, "404", None),
        (lambda r: httpx.Response(201, json={"status": "queued"}), TransientError, None, None),
    ],
)
async def test_error_mapping(
    handler: Any, kind: type, code: str | None, retry_after: float | None
) -> None:
    with pytest.raises(kind) as err:
        await channel(handler).send(_out("Hallo"))
    assert err.value.code == code
    if retry_after is not None:
        assert err.value.retry_after == retry_after


async def test_opted_out_recipient_is_permanent_unreachable_with_a_clear_reason() -> None:
    with pytest.raises(PermanentError) as err:
        await channel(_error(400, 21610, "Attempt to send to unsubscribed recipient")).send(
            _out("Hallo")
        )
    assert err.value.unreachable
    assert "opted out" in err.value.reason and "START" in err.value.reason


@pytest.mark.parametrize(
    "exc",
    [httpx.ConnectError("refused"), httpx.ReadTimeout("slow"), httpx.RemoteProtocolError("x")],
)
async def test_network_errors_are_transient(exc: Exception) -> None:
    def handler(req: httpx.Request) -> httpx.Response:
        raise exc

    with pytest.raises(TransientError):
        await channel(handler).send(_out("Hallo"))


async def test_secrets_do_not_appear_in_error_reasons() -> None:
    with pytest.raises(AuthError) as err:
        await channel(_error(401, 20003, "Authenticate")).send(_out("Hallo"))
    assert AUTH_TOKEN not in err.value.reason and "+4915112345678" not in err.value.reason
