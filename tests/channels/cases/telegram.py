"""The Telegram row of the conformance table."""

from __future__ import annotations

import hashlib
import time
from typing import Any

from tests import helpers
from tests.channels.conformance import ChannelCase
from tresen.domain.message import ContentKind

TG_SECRET = "tg-secret_Token-1"
TG_CONFIG: dict[str, Any] = {
    "bot_token": "123456789:AAHsimulatedTokenForTests-0123456789",
    "secret_token": TG_SECRET,
}


def tg_sign(secret: str = TG_SECRET) -> dict[str, str]:
    """Headers Telegram sends with every webhook call after setWebhook(secret_token=...)."""
    return {"X-Telegram-Bot-Api-Secret-Token": secret, "Content-Type": "application/json"}


def _int(pid: str) -> int:
    """A stable positive message id for a test's string id."""
    return int.from_bytes(hashlib.sha256(pid.encode()).digest()[:4], "big") or 1


def tg_text(
    pid: str, sender: str = "4915100000001", text: str = "Hallo", date: int | None = None
) -> dict[str, Any]:
    """One Update carrying a private text message."""
    chat = int(sender)
    return {
        "update_id": _int("u" + pid),
        "message": {
            "message_id": _int(pid),
            "from": {"id": chat, "is_bot": False, "first_name": "Kundin", "language_code": "de"},
            "chat": {"id": chat, "first_name": "Kundin", "type": "private"},
            "date": date or int(time.time()),
            "text": text,
        },
    }


def _many(n: int) -> bytes:
    return helpers.dumps(
        {
            "ok": True,
            "result": [
                tg_text(f"many-{i:06d}", sender=f"49151{i % 50:07d}", text=f"Nachricht {i}")
                for i in range(n)
            ],
        }
    )


CASE = ChannelCase(
    kind="telegram",
    config=TG_CONFIG,
    sign=lambda _body, _url: tg_sign(),
    forge=lambda _body, _url: tg_sign("not-the-secret"),
    inbound_text=lambda pid, sender, text: helpers.dumps(tg_text(pid, sender, text)),
    unknown_type=lambda pid: helpers.dumps(
        {
            "update_id": _int("u" + pid),
            "teleport_request": {
                "from": {"id": 4915100000001, "is_bot": False, "first_name": "Kundin"},
                "chat": {"id": 4915100000001, "type": "private"},
                "destination": "mars",
            },
        }
    ),
    many_entries=_many,
    inbound_at=lambda pid, sender, text, at: helpers.dumps(
        tg_text(pid, sender, text, int(at.timestamp()))
    ),
    status=None,
    recorded={
        "telegram/inbound_text.json": ContentKind.TEXT,
        "telegram/inbound_photo.json": ContentKind.MEDIA,
        "telegram/inbound_document.json": ContentKind.MEDIA,
        "telegram/inbound_video.json": ContentKind.MEDIA,
        "telegram/inbound_voice.json": ContentKind.MEDIA,
        "telegram/inbound_sticker.json": ContentKind.MEDIA,
        "telegram/inbound_location.json": ContentKind.LOCATION,
        "telegram/inbound_venue.json": ContentKind.LOCATION,
        "telegram/inbound_contact.json": ContentKind.CONTACTS,
        "telegram/inbound_callback_query.json": ContentKind.INTERACTIVE,
        "telegram/inbound_edited_message.json": ContentKind.UNSUPPORTED,
        "telegram/inbound_dice.json": ContentKind.UNSUPPORTED,
        "telegram/inbound_unknown_future_type.json": ContentKind.UNSUPPORTED,
    },
    malformed={
        "not json": b"{this is not json",
        "json array": b"[1, 2, 3]",
        "no update_id": helpers.dumps({"message": tg_text("x")["message"]}),
        "update_id not a number": helpers.dumps({**tg_text("x"), "update_id": "seven"}),
        "message without chat": helpers.dumps(
            {"update_id": 1, "message": {"message_id": 1, "date": 1763800000, "text": "x"}}
        ),
        "message not an object": helpers.dumps({"update_id": 1, "message": "hello"}),
        "callback_query without id": helpers.dumps(
            {"update_id": 1, "callback_query": {"from": {"id": 1, "is_bot": False}, "data": "x"}}
        ),
        "result not a list": helpers.dumps({"ok": True, "result": {"update_id": 1}}),
        "invalid utf-8": b'{"update_id": 1, "message": "\xff\xfe"}',
    },
    empty=[
        helpers.dumps({"ok": True, "result": []}),
        helpers.dumps(
            {
                "update_id": 9,
                "poll": {"id": "5", "question": "?", "options": [], "is_closed": True},
            }
        ),
    ],
)
