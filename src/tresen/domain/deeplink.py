"""Deep-link payloads: a prefilled text in a Telegram ?start= or Messenger ?ref= parameter."""

from __future__ import annotations

import base64
import binascii
import re

MAX_PAYLOAD = 64
_PAYLOAD = re.compile(r"[A-Za-z0-9_-]{1,64}")
_WORD = re.compile(r"[A-Za-z0-9]+")
_B64 = "b64_"


class PayloadTooLong(ValueError):
    """A prefilled text that does not fit a Telegram start / Messenger ref payload."""


def encode_payload(text: str) -> str:
    """A start/ref payload (A-Za-z0-9_-, at most 64) for a prefilled text.

    Words of letters and digits stay readable ("START ticker" -> "START-ticker"); anything
    else is sent as "b64_" + URL-safe base64 of its UTF-8.
    """
    words = text.split()
    if words and " ".join(words) == text and all(_WORD.fullmatch(w) for w in words):
        readable = "-".join(words)
        if len(readable) <= MAX_PAYLOAD:
            return readable
    encoded = _B64 + base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")
    if len(encoded) > MAX_PAYLOAD:
        raise PayloadTooLong(
            f"the text is too long for a start payload ({MAX_PAYLOAD} characters encoded)"
        )
    return encoded


def decode_payload(payload: str) -> str | None:
    """The text a payload stands for; None for one that is not ours."""
    if not isinstance(payload, str) or not _PAYLOAD.fullmatch(payload):
        return None
    if payload.startswith(_B64):
        raw = payload[len(_B64) :]
        try:
            text = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode()
        except (binascii.Error, UnicodeDecodeError, ValueError):
            return None
        return text if text.strip() else None
    return payload.replace("-", " ")
