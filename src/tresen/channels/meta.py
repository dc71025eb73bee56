"""What Meta's platforms (WhatsApp Cloud API, Messenger, Instagram) share: the webhook handshake and signature."""

from __future__ import annotations

import hashlib
import hmac

from tresen.channels.base import WebhookRejected, WebhookRequest


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
