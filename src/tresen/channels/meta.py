"""What Meta's platforms (WhatsApp Cloud API, Messenger, Instagram) share: the webhook handshake and signature."""

from __future__ import annotations

import hashlib
import hmac
from typing import Protocol, TypeVar

import msgspec

from tresen.channels.base import WebhookRejected, WebhookRequest


class _Enveloped(Protocol):
    object: str


_E = TypeVar("_E", bound=_Enveloped)


def hub_handshake(request: WebhookRequest, verify_token: str) -> str:
    """Meta's GET verification: echo hub.challenge when the verify token matches."""
    mode = request.query.get("hub.mode")
    token = request.query.get("hub.verify_token", "")
    challenge = request.query.get("hub.challenge")
    if mode != "subscribe" or challenge is None:
        raise WebhookRejected(400, "expected hub.mode=subscribe with hub.challenge")
    if not hmac.compare_digest(token.encode(), verify_token.encode()):
        raise WebhookRejected(403, "hub.verify_token does not match")
    return challenge


def verify_hub_signature(request: WebhookRequest, app_secret: bytes) -> None:
    """Check X-Hub-Signature-256 (HMAC-SHA256 of the raw body with the app secret) in constant time."""
    header = request.headers.get("x-hub-signature-256")
    if not header:
        raise WebhookRejected(401, "missing X-Hub-Signature-256 header")
    if not header.startswith("sha256="):
        raise WebhookRejected(403, "X-Hub-Signature-256 must start with sha256=")
    expected = hmac.new(app_secret, request.body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(header[7:].strip().lower().encode(), expected.encode()):
        raise WebhookRejected(403, "X-Hub-Signature-256 does not match the body")


def decode_envelope(body: bytes, envelope_type: type[_E], shape: str, expected: str) -> _E:
    """A webhook body as its typed envelope for object `expected`, or WebhookRejected(400)."""
    try:
        envelope = msgspec.json.decode(body, type=envelope_type)
    except msgspec.ValidationError as exc:
        raise WebhookRejected(400, f"webhook body does not have the {shape} shape: {exc}") from exc
    except msgspec.DecodeError as exc:
        raise WebhookRejected(400, f"webhook body is not valid JSON: {exc}") from exc
    if envelope.object != expected:
        raise WebhookRejected(400, f"object must be {expected!r}, got {envelope.object!r}")
    return envelope
