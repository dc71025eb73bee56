"""SMS (Twilio-compatible) in the conformance table."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlencode

from tests.channels.conformance import ChannelCase
from tresen.channels.sms import signature
from tresen.domain.message import ContentKind

ACCOUNT_SID = "AC1234567890abcdef1234567890abcdef"
AUTH_TOKEN = "sms-test-auth-token"
BUSINESS = "+4930123456700"
CONFIG: dict[str, Any] = {
    "account_sid": ACCOUNT_SID,
    "auth_token": AUTH_TOKEN,
    "from_number": BUSINESS,
}
FORM = "application/x-www-form-urlencoded"


def sign(body: bytes, url: str, token: str = AUTH_TOKEN) -> dict[str, str]:
    """Headers of a correctly signed Twilio webhook posted to url."""
    params = parse_qsl(body.decode("utf-8", errors="replace"), keep_blank_values=True)
    return {"X-Twilio-Signature": signature(token, url, params), "Content-Type": FORM}


def inbound(sid: str, sender: str, body: str, **extra: str) -> bytes:
    """An inbound SMS webhook body as Twilio posts it."""
    fields = {
        "ToCountry": "DE",
        "SmsMessageSid": sid,
        "NumMedia": "0",
        "SmsSid": sid,
        "SmsStatus": "received",
        "Body": body,
        "FromCountry": "DE",
        "To": BUSINESS,
        "NumSegments": "1",
        "MessageSid": sid,
        "AccountSid": ACCOUNT_SID,
        "From": sender if sender.startswith("+") else "+" + sender,
        "ApiVersion": "2010-04-01",
        **extra,
    }
    return urlencode(fields).encode()


def status(sid: str, state: str, **extra: str) -> bytes:
    """A status callback body as Twilio posts it."""
    fields = {
        "ApiVersion": "2010-04-01",
        "MessageStatus": state,
        "SmsSid": sid,
        "SmsStatus": state,
        "To": "+4915100000009",
        "From": BUSINESS,
        "MessageSid": sid,
        "AccountSid": ACCOUNT_SID,
        **extra,
    }
    return urlencode(fields).encode()


def _without(*names: str) -> bytes:
    fields = parse_qsl(inbound("SMx", "+4915100000001", "x").decode())
    return urlencode([(k, v) for k, v in fields if k not in names]).encode()


CASE = ChannelCase(
    kind="sms",
    config=CONFIG,
    sign=sign,
    forge=lambda body, url: sign(body, url, token="not-the-token"),
    content_type=FORM,
    inbound_text=inbound,
    status=status,
    unknown_type=lambda sid: inbound(sid, "+4915100000001", "", MessageType="teleport"),
    many_entries=None,
    recorded={
        "sms/inbound_sms.txt": ContentKind.TEXT,
        "sms/inbound_sms_emoji.txt": ContentKind.TEXT,
        "sms/inbound_mms.txt": ContentKind.MEDIA,
        "sms/inbound_mms_no_body.txt": ContentKind.MEDIA,
        "sms/inbound_stop.txt": ContentKind.TEXT,
        "sms/inbound_abmelden.txt": ContentKind.TEXT,
        "sms/inbound_location.txt": ContentKind.LOCATION,
        "sms/inbound_unknown_type.txt": ContentKind.UNSUPPORTED,
    },
    malformed={
        "not a form": b"{this is not json",
        "json": b'{"MessageSid": "SM1", "AccountSid": "AC1"}',
        "empty body": b"",
        "without MessageSid": _without("MessageSid", "SmsSid", "SmsMessageSid"),
        "without AccountSid": _without("AccountSid"),
        "without From": _without("From"),
        "foreign AccountSid": inbound(
            "SMforeign", "+4915100000001", "x", AccountSid="AC" + "f" * 32
        ),
        "duplicate field": inbound("SMdup", "+4915100000001", "x") + b"&Body=y",
        "NumMedia not a number": inbound("SMnm", "+4915100000001", "x", NumMedia="zwei"),
        "too much media": inbound("SMnm2", "+4915100000001", "x", NumMedia="99"),
        "invalid utf-8": b"MessageSid=SM1&AccountSid=" + ACCOUNT_SID.encode() + b"&Body=\xff\xfe",
        "status not a name": status("SMbad", "%%%!"),
    },
    empty=[
        status("SMaccepted", "accepted"),
        status("SMscheduled", "scheduled"),
        status("SMfuture", "some_future_status"),
    ],
)
