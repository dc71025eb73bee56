"""Messenger in the conformance table (and the shared builders Instagram's case reuses)."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from tests import helpers
from tests.channels.conformance import ChannelCase
from tresen.domain.message import ContentKind

SECRET = "sim-app-secret"
PAGE_ID = "300000000000001"
CONFIG: dict[str, Any] = {
    "page_id": PAGE_ID,
    "app_secret": SECRET,
    "verify_token": "verify-me",
    "page_access_token": "sim-page-token",
}
# The customer whose conversation the shared status tests write into (see conformance `_outbound`).
STATUS_CUSTOMER = "4915100000009"


def sign(body: bytes, secret: str = SECRET) -> dict[str, str]:
    """Headers of a correctly signed Messenger Platform webhook."""
    return helpers.wa_sign(body, secret=secret)


def envelope(obj: str, page: str, events: list[dict[str, Any]]) -> dict[str, Any]:
    """One entry with messaging events."""
    return {
        "object": obj,
        "entry": [{"id": page, "time": int(time.time() * 1000), "messaging": events}],
    }


def event(page: str, sender: str, **fields: Any) -> dict[str, Any]:
    """One messaging event from a customer to the page."""
    return {
        "sender": {"id": sender},
        "recipient": {"id": page},
        "timestamp": int(time.time() * 1000),
        **fields,
    }


def make_case(
    kind: str,
    obj: str,
    config: dict[str, Any],
    *,
    read_by_mid: bool,
    recorded: dict[str, ContentKind],
) -> ChannelCase:
    """The conformance description for a Messenger-platform channel."""
    page = config["page_id"]

    def body(*events: dict[str, Any]) -> bytes:
        return helpers.dumps(envelope(obj, page, list(events)))

    def inbound_text(pid: str, sender: str, text: str) -> bytes:
        return body(event(page, sender, message={"mid": pid, "text": text}))

    def inbound_at(pid: str, sender: str, text: str, at: datetime) -> bytes:
        sent = {**event(page, sender, message={"mid": pid, "text": text})}
        sent["timestamp"] = int(at.timestamp() * 1000)
        return body(sent)

    def status(pid: str, state: str) -> bytes:
        now_ms = int(time.time() * 1000)
        if state == "sent":
            echo = event(page, page, message={"mid": pid, "is_echo": True, "text": "Antwort"})
            echo["recipient"] = {"id": STATUS_CUSTOMER}
            return body(echo)
        if state == "delivered":
            delivery = {"mids": [pid], "watermark": now_ms}
            return body(event(page, STATUS_CUSTOMER, delivery=delivery))
        read = {"mid": pid} if read_by_mid else {"watermark": now_ms + 1000}
        return body(event(page, STATUS_CUSTOMER, read=read))

    def unknown_type(pid: str) -> bytes:
        attachment = {"type": "teleport", "payload": {"to": "mars"}}
        return body(event(page, "4915100000001", message={"mid": pid, "attachments": [attachment]}))

    def many_entries(n: int) -> bytes:
        entries = [
            {
                "id": page,
                "time": 1763800000000,
                "messaging": [
                    event(
                        page,
                        f"49151{i % 50:07d}",
                        message={"mid": f"m_many{i:06d}", "text": f"Nachricht {i}"},
                    )
                ],
            }
            for i in range(n)
        ]
        return helpers.dumps({"object": obj, "entry": entries})

    other = "page" if obj == "instagram" else "instagram"
    return ChannelCase(
        kind=kind,
        config=config,
        sign=lambda b, _url: sign(b),
        forge=lambda b, _url: sign(b, secret="not-the-secret"),
        inbound_text=inbound_text,
        inbound_at=inbound_at,
        status=status,
        unknown_type=unknown_type,
        many_entries=many_entries,
        recorded=recorded,
        malformed={
            "not json": b"{this is not json",
            "json array": b"[1, 2, 3]",
            "wrong object": helpers.dumps(envelope(other, page, [])),
            "entry not a list": helpers.dumps({"object": obj, "entry": {"id": page}}),
            "messaging not a list": helpers.dumps(
                {"object": obj, "entry": [{"id": page, "messaging": "nope"}]}
            ),
            "message without mid": body(event(page, "4915100000001", message={"text": "x"})),
            "mids not a list": body(event(page, "4915100000001", delivery={"mids": "m.1"})),
            "invalid utf-8": b'{"object": "' + obj.encode() + b'", "entry": ["\xff\xfe"]}',
        },
        empty=[
            helpers.dumps({"object": obj, "entry": []}),
            helpers.dumps({"object": obj, "entry": [{"id": page, "time": 1, "messaging": []}]}),
            body(event(page, "4915100000001", optin={"ref": "shop-footer"})),
            # Issue 17: an event without a sender (policy enforcement, app roles, checkbox
            # opt-in ...) is skipped with 200; refusing it made Meta retry the whole batch.
            body(
                {"recipient": {"id": page}, "timestamp": 1, "message": {"mid": "m.x", "text": "x"}}
            ),
            body({"recipient": {"id": page}, "timestamp": 1, "app_roles": {"1": ["primary"]}}),
            helpers.dumps(
                envelope(
                    obj,
                    "999999",
                    [event("999999", "4915100000001", message={"mid": "m.foreign", "text": "x"})],
                )
            ),
        ],
    )


CASE = make_case(
    "messenger",
    "page",
    CONFIG,
    read_by_mid=False,
    recorded={
        "messenger/inbound_text.json": ContentKind.TEXT,
        "messenger/inbound_image.json": ContentKind.MEDIA,
        "messenger/inbound_sticker.json": ContentKind.MEDIA,
        "messenger/inbound_audio.json": ContentKind.MEDIA,
        "messenger/inbound_video.json": ContentKind.MEDIA,
        "messenger/inbound_file.json": ContentKind.MEDIA,
        "messenger/inbound_location.json": ContentKind.LOCATION,
        "messenger/inbound_quick_reply.json": ContentKind.INTERACTIVE,
        "messenger/inbound_postback.json": ContentKind.BUTTON,
        "messenger/inbound_reaction.json": ContentKind.REACTION,
        "messenger/inbound_reply_to.json": ContentKind.TEXT,
        "messenger/inbound_fallback.json": ContentKind.TEXT,
        "messenger/inbound_fallback_null_payload.json": ContentKind.TEXT,
        "messenger/inbound_fallback_empty.json": ContentKind.UNSUPPORTED,
        "messenger/inbound_product_template.json": ContentKind.TEXT,
        "messenger/standby.json": ContentKind.TEXT,
        "messenger/inbound_unknown_future_type.json": ContentKind.UNSUPPORTED,
    },
)
