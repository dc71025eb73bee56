"""WhatsApp Business Cloud API (Meta Graph API) channel."""

from __future__ import annotations

import asyncio
import dataclasses
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar
from urllib.parse import quote

import httpx
import msgspec

from tresen.channels.addresses import phone_digits
from tresen.channels.base import (
    Attachment,
    AuthError,
    Capabilities,
    ChannelBase,
    ConfigError,
    FetchedMedia,
    InboundMessage,
    LinkTarget,
    MediaRef,
    MediaTooLarge,
    OutboundMessage,
    ParsedWebhook,
    PermanentError,
    PrivacyRecord,
    RateLimited,
    SendResult,
    StatusUpdate,
    TransientError,
    WebhookRejected,
    WebhookRequest,
    download,
)
from tresen.channels.calls import call_api
from tresen.channels.meta import decode_envelope, hub_handshake, verify_hub_signature
from tresen.domain.message import ContentKind, DeliveryState
from tresen.net.guard import same_host, under_domains

MEDIA_TYPES = ("image", "audio", "video", "document", "sticker")
DEFAULT_API_BASE = "https://graph.facebook.com"
MEDIA_DOMAINS = ("fbsbx.com", "facebook.com", "fbcdn.net", "whatsapp.net")
"""Where WhatsApp media downloads live (besides the configured API host)."""
DEFAULT_API_VERSION = "v21.0"

# Codes from https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes
_AUTH_CODES = {0, 190}
_RATE_CODES = {4: 60.0, 80007: 60.0, 130429: 1.0, 131048: 60.0, 131056: 6.0}
_TRANSIENT_CODES = {1, 2, 131000, 131016}


class _Metadata(msgspec.Struct):
    phone_number_id: str
    display_phone_number: str | None = None


class _Profile(msgspec.Struct):
    name: str | None = None


class _Contact(msgspec.Struct):
    wa_id: str
    profile: _Profile | None = None


class _StatusError(msgspec.Struct):
    code: int | None = None
    title: str | None = None
    message: str | None = None
    error_data: dict[str, Any] | None = None


class _Status(msgspec.Struct):
    id: str
    status: str
    timestamp: str | int | None = None
    recipient_id: str | None = None
    errors: list[_StatusError] = []
    biz_opaque_callback_data: str | None = None


class _Value(msgspec.Struct):
    messaging_product: str | None = None
    metadata: _Metadata | None = None
    contacts: list[_Contact] = []
    messages: list[dict[str, Any]] = []
    statuses: list[_Status] = []
    errors: list[dict[str, Any]] = []


class _Change(msgspec.Struct):
    field: str
    value: _Value


class _Entry(msgspec.Struct):
    id: str | int | None = None
    changes: list[_Change] = []


class _Envelope(msgspec.Struct):
    object: str
    entry: list[_Entry]


class _MessageHead(msgspec.Struct, rename={"from_": "from"}):
    from_: str
    id: str
    type: str
    timestamp: str | int | None = None
    context: dict[str, Any] | None = None


class _Text(msgspec.Struct):
    body: str


class _Media(msgspec.Struct):
    id: str | None = None
    mime_type: str | None = None
    sha256: str | None = None
    caption: str | None = None
    filename: str | None = None


class _Location(msgspec.Struct):
    latitude: float
    longitude: float
    name: str | None = None
    address: str | None = None


class _Reaction(msgspec.Struct):
    message_id: str | None = None
    emoji: str | None = None


class _Reply(msgspec.Struct):
    id: str
    title: str
    description: str | None = None


class _Interactive(msgspec.Struct):
    type: str
    button_reply: _Reply | None = None
    list_reply: _Reply | None = None


class _Button(msgspec.Struct):
    text: str | None = None
    payload: str | None = None


class WhatsAppConfig(msgspec.Struct, forbid_unknown_fields=True):
    """Stored configuration of one WhatsApp number."""

    phone_number_id: str
    app_secret: str
    verify_token: str
    access_token: str
    api_base: str = DEFAULT_API_BASE
    api_version: str = DEFAULT_API_VERSION
    messages_per_second: float = 80.0
    waba_id: str = ""
    """The WhatsApp Business Account id; needed to manage message templates."""
    display_phone_number: str = ""
    """The number customers see, with country code (e.g. 4930123456); for wa.me links."""


def _timestamp(raw: str | int | None) -> datetime:
    try:
        return datetime.fromtimestamp(int(raw), UTC) if raw is not None else datetime.now(UTC)
    except (ValueError, OverflowError, OSError):
        return datetime.now(UTC)


def _message_content(head: _MessageHead, raw: dict[str, Any]) -> tuple[ContentKind, str | None]:
    """Map one inbound message to its content kind and display text."""
    obj = raw.get(head.type)
    try:
        if head.type == "text":
            return ContentKind.TEXT, msgspec.convert(obj, _Text).body
        if head.type in MEDIA_TYPES:
            return ContentKind.MEDIA, msgspec.convert(obj, _Media).caption
        if head.type == "location":
            loc = msgspec.convert(obj, _Location)
            return (
                ContentKind.LOCATION,
                loc.name or loc.address or f"{loc.latitude},{loc.longitude}",
            )
        if head.type == "contacts":
            names = (
                [
                    str((c.get("name") or {}).get("formatted_name", ""))
                    for c in obj
                    if isinstance(c, dict)
                ]
                if isinstance(obj, list)
                else []
            )
            if not isinstance(obj, list):
                raise msgspec.ValidationError("contacts must be an array")
            return ContentKind.CONTACTS, ", ".join(n for n in names if n) or None
        if head.type == "reaction":
            return ContentKind.REACTION, msgspec.convert(obj, _Reaction).emoji
        if head.type == "interactive":
            inter = msgspec.convert(obj, _Interactive)
            reply = inter.button_reply or inter.list_reply
            return ContentKind.INTERACTIVE, reply.title if reply else None
        if head.type == "button":
            return ContentKind.BUTTON, msgspec.convert(obj, _Button).text
    except msgspec.ValidationError:
        return ContentKind.UNSUPPORTED, None
    return ContentKind.UNSUPPORTED, None


_STATUS_STATES = {
    "sent": DeliveryState.SENT,
    "delivered": DeliveryState.DELIVERED,
    "read": DeliveryState.READ,
    "failed": DeliveryState.FAILED,
}


class WhatsAppChannel(ChannelBase):
    """One WhatsApp business number on the Cloud API."""

    kind: ClassVar[str] = "whatsapp"
    display_name: ClassVar[str] = "WhatsApp"
    address_form: ClassVar[str | None] = "phone number with country code (stored as wa_id digits)"
    write_first: ClassVar[bool] = False
    poller: ClassVar[str | None] = None
    simulator: ClassVar[str | None] = "whatsapp"
    widget: ClassVar[bool] = False
    privacy: ClassVar[PrivacyRecord] = PrivacyRecord(
        "WhatsApp Ireland Ltd. / Meta Platforms Ireland Ltd. (WhatsApp Business Platform, "
        "Cloud API hosted by Meta)",
        "Ireland (EU)",
        ("USA (Meta Platforms, Inc.)",),
        "EU-US Data Privacy Framework (Meta is certified); standard contractual clauses in "
        "Meta's data processing terms",
        "WhatsApp Business Solution Terms and the data processing terms accepted in Meta "
        "Business Manager",
    )

    @staticmethod
    def normalise_address(raw: str) -> str:
        """wa_id digits (+49..., 0049... or bare digits with country code)."""
        return phone_digits(raw, bare_digits=True)

    @staticmethod
    def chat_link(
        config: Mapping[str, Any], channel_id: str, text: str, base_url: str
    ) -> LinkTarget | None:
        """wa.me/NUMBER?text=..."""
        number = str(config.get("display_phone_number") or "")
        if not number:
            return LinkTarget(
                None, "display_phone_number (the number customers see, e.g. +4930123456)"
            )
        return LinkTarget(f"https://wa.me/{number}?text={quote(text, safe='')}")

    config_type: ClassVar[type[WhatsAppConfig]] = WhatsAppConfig
    capabilities: ClassVar[Capabilities] = Capabilities(
        template_catalog=True,
        max_text_length=4096,
        window=timedelta(hours=24),
        templates=True,
        media=True,
        interactive=True,
        messages_per_second=80.0,
        max_buttons=3,
    )

    def __init__(self, config: Mapping[str, Any], http: httpx.AsyncClient):
        self.config = msgspec.convert(self.check_config(config), WhatsAppConfig)
        self.http = http
        self._secret = self.config.app_secret.encode()
        self._url = (
            f"{self.config.api_base.rstrip('/')}/{self.config.api_version}/"
            f"{self.config.phone_number_id}/messages"
        )

    @staticmethod
    def check_config(config: Mapping[str, Any]) -> dict[str, Any]:
        """Validate a configuration and return it normalised."""
        try:
            parsed = msgspec.convert(dict(config), WhatsAppConfig)
        except msgspec.ValidationError as exc:
            raise ConfigError(
                "whatsapp channel configuration: {detail}", params={"detail": str(exc)}
            ) from exc
        for name in ("phone_number_id", "app_secret", "verify_token", "access_token"):
            if not getattr(parsed, name).strip():
                raise ConfigError(
                    "whatsapp channel configuration: {field} must not be empty",
                    params={"field": name},
                )
        if not parsed.phone_number_id.isdigit():
            raise ConfigError("whatsapp channel configuration: phone_number_id must be digits")
        if not parsed.api_base.startswith(("http://", "https://")):
            raise ConfigError("whatsapp channel configuration: api_base must be an http(s) URL")
        if parsed.messages_per_second <= 0:
            raise ConfigError("whatsapp channel configuration: messages_per_second must be > 0")
        shown = re.sub(r"[\s\-()/.]", "", parsed.display_phone_number).removeprefix("+")
        if shown.startswith("00"):
            shown = shown[2:]
        if shown and not (shown.isdigit() and 7 <= len(shown) <= 15 and shown[0] != "0"):
            raise ConfigError(
                "whatsapp channel configuration: display_phone_number must be the number with "
                "country code, e.g. +49 30 123456"
            )
        parsed.display_phone_number = shown
        return msgspec.to_builtins(parsed)

    @property
    def messages_per_second(self) -> float:
        """This number's throughput tier."""
        return self.config.messages_per_second

    def templates(self) -> WhatsAppTemplates:
        """Template management of this number's business account."""
        return WhatsAppTemplates(self)

    def handshake(self, request: WebhookRequest) -> str:
        """Meta's GET verification: echo hub.challenge when the verify token matches."""
        return hub_handshake(request, self.config.verify_token)

    def verify(self, request: WebhookRequest) -> None:
        """Check X-Hub-Signature-256 over the raw body in constant time."""
        verify_hub_signature(request, self._secret)

    def parse(self, request: WebhookRequest) -> ParsedWebhook:
        """Parse a Cloud API webhook into typed messages and statuses."""
        envelope = decode_envelope(
            request.body, _Envelope, "Cloud API", "whatsapp_business_account"
        )
        parsed = ParsedWebhook()
        for entry in envelope.entry:
            for change in entry.changes:
                if change.field != "messages":
                    continue
                self._parse_value(change.value, parsed)
        return parsed

    def _parse_value(self, value: _Value, parsed: ParsedWebhook) -> None:
        if value.metadata and value.metadata.phone_number_id != self.config.phone_number_id:
            raise WebhookRejected(400, "metadata.phone_number_id does not belong to this channel")
        names = {c.wa_id: (c.profile.name if c.profile else None) for c in value.contacts}
        for raw in value.messages:
            try:
                head = msgspec.convert(raw, _MessageHead)
            except msgspec.ValidationError as exc:
                raise WebhookRejected(400, f"message without from/id/type: {exc}") from exc
            if not head.id or len(head.id) > 256 or not head.from_ or len(head.from_) > 64:
                raise WebhookRejected(400, "message id or sender is empty or too long")
            kind, body = _message_content(head, raw)
            reply_to = head.context.get("id") if head.context else None
            parsed.messages.append(
                InboundMessage(
                    provider_message_id=head.id,
                    sender_address=head.from_,
                    sender_name=names.get(head.from_),
                    sent_at=_timestamp(head.timestamp),
                    content_kind=kind,
                    body=body,
                    payload=raw,
                    reply_to_provider_id=reply_to if isinstance(reply_to, str) else None,
                )
            )
        for status in value.statuses:
            state = _STATUS_STATES.get(status.status)
            if state is None or not status.id or len(status.id) > 256:
                continue
            code = reason = None
            if status.errors:
                err = status.errors[0]
                code = str(err.code) if err.code is not None else None
                details = (err.error_data or {}).get("details")
                reason = (
                    " — ".join(str(p) for p in (err.title or err.message, details) if p) or None
                )
            parsed.statuses.append(
                StatusUpdate(
                    provider_message_id=status.id,
                    state=state,
                    occurred_at=_timestamp(status.timestamp),
                    recipient_address=status.recipient_id,
                    error_code=code,
                    error_reason=reason,
                    client_reference=status.biz_opaque_callback_data,
                )
            )
        for value_error in value.errors:
            parsed.errors.append(str(value_error.get("code", "?")))

    def build_payload(self, message: OutboundMessage) -> dict[str, Any]:
        """The Cloud API request body for one outbound message."""
        base: dict[str, Any] = {
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": message.to,
            "biz_opaque_callback_data": message.client_reference,
        }
        p = message.payload
        kind = message.content_kind
        if kind == ContentKind.TEXT:
            base |= {"type": "text", "text": {"preview_url": False, "body": message.body or ""}}
        elif kind == ContentKind.TEMPLATE:
            template: dict[str, Any] = {
                "name": p["name"],
                "language": {"code": p.get("language", "de")},
            }
            params = p.get("parameters") or []
            if params:
                template["components"] = [
                    {
                        "type": "body",
                        "parameters": [{"type": "text", "text": str(v)} for v in params],
                    }
                ]
            base |= {"type": "template", "template": template}
        elif kind == ContentKind.INTERACTIVE:
            base |= {"type": "interactive", "interactive": _interactive(message.body or "", p)}
        elif kind == ContentKind.MEDIA:
            media_type = p.get("media_type", "image")
            media: dict[str, Any] = (
                {"id": p["uploaded_id"]} if p.get("uploaded_id") else {"link": p["link"]}
            )
            if message.body and media_type != "audio" and media_type != "sticker":
                media["caption"] = message.body
            if media_type == "document" and p.get("filename"):
                media["filename"] = p["filename"]
            base |= {"type": media_type, media_type: media}
        else:
            raise PermanentError(
                f"whatsapp cannot send content kind {kind}", code="unsupported_kind"
            )
        return base

    async def acknowledge(self, data: dict[str, Any]) -> None:
        """WhatsApp needs no acknowledgement beyond the webhook's 200."""

    @staticmethod
    def media_refs(payload: dict[str, Any]) -> list[MediaRef]:
        """The media object of an image/audio/video/document/sticker message."""
        kind = payload.get("type")
        obj = payload.get(kind) if isinstance(kind, str) and kind in MEDIA_TYPES else None
        if not isinstance(obj, dict) or not isinstance(obj.get("id"), str) or not obj["id"]:
            return []
        mime = obj.get("mime_type")
        name = obj.get("filename")
        return [
            MediaRef(
                kind="image" if kind == "sticker" else str(kind),
                ref={"id": obj["id"]},
                mime_type=mime if isinstance(mime, str) else None,
                filename=name if isinstance(name, str) else None,
            )
        ]

    async def fetch_media(self, ref: MediaRef, max_bytes: int) -> FetchedMedia:
        """Ask the Graph API for the media URL, then download it with the access token."""
        media_id = str(ref.ref.get("id", ""))
        if not media_id.isdigit():
            raise PermanentError("the media id is not a number", code="media_id")
        auth = {"Authorization": f"Bearer {self.config.access_token}"}
        url = f"{self.config.api_base.rstrip('/')}/{self.config.api_version}/{media_id}"
        response, data = await call_api(self.http.get(url, headers=auth), "WhatsApp")
        if response.status_code != 200 or not isinstance(data, dict):
            raise _map_error(response.status_code, data)
        link = data.get("url")
        if not isinstance(link, str) or not link.startswith(("http://", "https://")):
            raise PermanentError("WhatsApp returned no download URL for the media", code="131052")
        if not (same_host(link, self.config.api_base) or under_domains(link, MEDIA_DOMAINS)):
            raise PermanentError("WhatsApp named a download URL off its hosts", code="media_host")
        size = data.get("file_size")
        if isinstance(size, int) and size > max_bytes:
            raise MediaTooLarge(
                f"the file is {size} bytes; at most {max_bytes} are accepted", code="too_large"
            )
        fetched = await download(self.http, link, max_bytes, provider="WhatsApp", headers=auth)
        declared = data.get("mime_type")
        return FetchedMedia(
            fetched.content,
            declared if isinstance(declared, str) else fetched.content_type,
            ref.filename,
        )

    async def upload(self, attachment: Attachment) -> str:
        """POST a file to /{phone_number_id}/media; returns the media id to send it by."""
        content = await asyncio.to_thread(attachment.read)
        response, data = await call_api(
            self.http.post(
                self._url.removesuffix("/messages") + "/media",
                data={"messaging_product": "whatsapp", "type": attachment.content_type},
                files={"file": (attachment.filename, content, attachment.content_type)},
                headers={"Authorization": f"Bearer {self.config.access_token}"},
            ),
            "WhatsApp",
            upload=True,
        )
        media_id = data.get("id") if isinstance(data, dict) else None
        if response.status_code == 200 and isinstance(media_id, str) and media_id:
            return media_id
        raise _map_error(response.status_code, data)

    async def check(self) -> str | None:
        """Read the business number's profile from the Graph API: its name and number."""
        cfg = self.config
        url = f"{cfg.api_base.rstrip('/')}/{cfg.api_version}/{cfg.phone_number_id}"
        response, data = await call_api(
            self.http.get(
                url,
                params={"fields": "verified_name,display_phone_number"},
                headers={"Authorization": f"Bearer {cfg.access_token}"},
            ),
            "WhatsApp",
        )
        if response.status_code == 200 and isinstance(data, dict):
            parts = (data.get("verified_name"), data.get("display_phone_number"))
            return " · ".join(str(p) for p in parts if p) or cfg.phone_number_id
        raise _map_error(response.status_code, data)

    async def send(self, message: OutboundMessage) -> SendResult:
        """POST the message to the Cloud API and map errors to the four kinds."""
        if message.attachment is not None and message.content_kind == ContentKind.MEDIA:
            # An agent's file is uploaded first and sent by its media id (no public URL needed).
            uploaded = await self.upload(message.attachment)
            message = dataclasses.replace(
                message, payload={**message.payload, "uploaded_id": uploaded}
            )
        response, data = await call_api(
            self.http.post(
                self._url,
                json=self.build_payload(message),
                headers={"Authorization": f"Bearer {self.config.access_token}"},
            ),
            "WhatsApp",
        )
        if response.status_code == 200 and isinstance(data, dict):
            messages = data.get("messages")
            if isinstance(messages, list) and messages and isinstance(messages[0], dict):
                wamid = messages[0].get("id")
                if isinstance(wamid, str) and wamid:
                    return SendResult(provider_message_id=wamid)
            raise TransientError("WhatsApp answered 200 without a message id")
        raise _map_error(response.status_code, data)


class WhatsAppTemplates:
    """Message template management of a WhatsApp Business Account (list and submit)."""

    def __init__(self, channel: WhatsAppChannel) -> None:
        self.config = channel.config
        self.http = channel.http
        if not self.config.waba_id.strip():
            raise ConfigError(
                "this WhatsApp channel has no WhatsApp Business Account id, which templates "
                "need; set it with `tresen channel set CHANNEL_ID --waba-id ID`"
            )
        self._url = (
            f"{self.config.api_base.rstrip('/')}/{self.config.api_version}/"
            f"{self.config.waba_id}/message_templates"
        )

    async def _call(self, method: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        response, data = await call_api(
            self.http.request(
                method,
                self._url,
                json=body,
                headers={"Authorization": f"Bearer {self.config.access_token}"},
            ),
            "WhatsApp",
        )
        if response.status_code == 200 and isinstance(data, dict):
            return data
        raise _map_error(response.status_code, data)

    async def list(self) -> list[dict[str, Any]]:
        """Every template of the account: name, language, category, status, body text."""
        data = await self._call("GET")
        found = []
        for item in data.get("data") or []:
            if not isinstance(item, dict):
                continue
            body = next(
                (
                    c.get("text")
                    for c in item.get("components") or []
                    if isinstance(c, dict) and c.get("type") == "BODY"
                ),
                "",
            )
            found.append(
                {
                    "provider_id": str(item.get("id", "")),
                    "name": str(item.get("name", "")),
                    "language": str(item.get("language", "")),
                    "category": str(item.get("category", "")).lower(),
                    "status": str(item.get("status", "")).lower(),
                    "rejected_reason": item.get("rejected_reason"),
                    "body": str(body or ""),
                }
            )
        return found

    async def submit(self, name: str, language: str, category: str, body: str) -> str:
        """Submit a template for review; its provider id."""
        data = await self._call(
            "POST",
            {
                "name": name,
                "language": language,
                "category": category.upper(),
                "components": [{"type": "BODY", "text": body}],
            },
        )
        return str(data.get("id", ""))


def _map_error(status: int, data: Any) -> Exception:
    err = data.get("error") if isinstance(data, dict) else None
    if not isinstance(err, dict):
        if status >= 500 or status == 429:
            return TransientError(f"WhatsApp answered HTTP {status}")
        return PermanentError(
            f"WhatsApp answered HTTP {status} without an error body", code=str(status)
        )
    raw_code = err.get("code")
    code = raw_code if isinstance(raw_code, int) else -1
    details = (
        (err.get("error_data") or {}).get("details")
        if isinstance(err.get("error_data"), dict)
        else None
    )
    reason = " — ".join(str(p) for p in (err.get("message"), details) if p) or f"HTTP {status}"
    if status == 401 or code in _AUTH_CODES:
        return AuthError(reason, code=str(code))
    if code in _RATE_CODES:
        return RateLimited(reason, code=str(code), retry_after=_RATE_CODES[code])
    if code in _TRANSIENT_CODES or status >= 500:
        return TransientError(reason, code=str(code))
    return PermanentError(reason, code=str(code))


def _interactive(body: str, p: dict[str, Any]) -> dict[str, Any]:
    if "buttons" in p:
        return {
            "type": "button",
            "body": {"text": body},
            "action": {
                "buttons": [
                    {"type": "reply", "reply": {"id": str(b["id"]), "title": str(b["title"])}}
                    for b in p["buttons"]
                ]
            },
        }
    return {
        "type": "list",
        "body": {"text": body},
        "action": {"button": str(p.get("button", "Auswahl")), "sections": p["sections"]},
    }
