"""Facebook Messenger (Meta Messenger Platform) channel; Instagram messaging reuses it."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import httpx
import msgspec

from tresen.channels.addresses import numeric_id
from tresen.channels.base import (
    OTHER_APP,
    AuthError,
    Capabilities,
    ChannelBase,
    ChannelError,
    ConfigError,
    FetchedMedia,
    InboundMessage,
    LinkTarget,
    MediaRef,
    OutboundMessage,
    ParsedWebhook,
    PermanentError,
    PrivacyRecord,
    RateLimited,
    SendResult,
    StatusUpdate,
    ThreadOwner,
    TransientError,
    WebhookRejected,
    WebhookRequest,
    download,
)
from tresen.channels.calls import call_api
from tresen.channels.meta import decode_envelope, hub_handshake, verify_hub_signature
from tresen.domain.deeplink import decode_payload, encode_payload
from tresen.domain.message import ContentKind, DeliveryState
from tresen.net.guard import same_host, under_domains

logger = logging.getLogger(__name__)

DEFAULT_API_BASE = "https://graph.facebook.com"
MEDIA_DOMAINS = ("fbcdn.net", "fbsbx.com", "facebook.com", "cdninstagram.com", "instagram.com")
"""Where Messenger and Instagram attachments live (besides the configured API host)."""
DEFAULT_API_VERSION = "v21.0"
WINDOW = timedelta(hours=24)
HUMAN_AGENT_WINDOW = timedelta(days=7)
HUMAN_AGENT = "HUMAN_AGENT"
# Non-promotional tags for business updates outside the window:
# https://developers.facebook.com/docs/messenger-platform/send-messages/message-tags
UPDATE_TAGS = frozenset({"CONFIRMED_EVENT_UPDATE", "POST_PURCHASE_UPDATE", "ACCOUNT_UPDATE"})
MAX_QUICK_REPLIES = 13
MAX_QUICK_REPLY_TITLE = 20
MEDIA_ATTACHMENTS = frozenset(
    {"image", "video", "audio", "file", "sticker", "ig_reel", "reel", "story_mention"}
)
# Attachments that are a link to something on the platform, kept by their title and URL:
# https://developers.facebook.com/docs/messenger-platform/reference/webhook-events/messages
# https://developers.facebook.com/docs/instagram-platform/webhooks/new (share and ig_post)
_LINKED_MEDIA = frozenset({"ig_reel", "reel", "story_mention"})
_LINK_SHARES = frozenset({"share", "ig_post", "fallback", "template"})
PAGE_INBOX_APP = "263902037430900"
"""Meta's Page inbox (Business Suite) as the app that owns a thread."""
STANDBY = "standby"
"""Payload key of a message that came on the standby channel (another app owns the thread)."""
_ENVELOPE_KEYS = frozenset({"sender", "recipient", "timestamp"})
_IN_MEDIA = {
    "image": "image",
    "video": "video",
    "audio": "audio",
    "file": "document",
    "sticker": "image",
}
_OUT_MEDIA = {"image": "image", "audio": "audio", "video": "video", "document": "file"}

# Codes from https://developers.facebook.com/docs/messenger-platform/error-codes
_AUTH_CODES = {102, 190}
_RATE_CODES = {613: 1.0, 4: 60.0, 17: 60.0, 32: 60.0}
_TRANSIENT_CODES = {1, 2}
_UNREACHABLE_CODES = {551}
WINDOW_CODE = 10
WINDOW_SUBCODE = 2018278


class MessengerConfig(msgspec.Struct, forbid_unknown_fields=True):
    """Stored configuration of one Facebook Page (or Instagram professional account)."""

    page_id: str
    app_secret: str
    verify_token: str
    page_access_token: str
    api_base: str = DEFAULT_API_BASE
    api_version: str = DEFAULT_API_VERSION
    messages_per_second: float = 300.0
    page_username: str = ""
    """The Page's username (facebook.com/<username>); m.me links use the page id without it."""


class _Party(msgspec.Struct):
    id: str | None = None


class _QuickReply(msgspec.Struct):
    payload: str | None = None


class _ReplyTo(msgspec.Struct):
    mid: str | None = None


class _Message(msgspec.Struct):
    mid: str
    text: str | None = None
    quick_reply: _QuickReply | None = None
    attachments: list[dict[str, Any]] = []
    is_echo: bool = False
    is_deleted: bool = False
    is_unsupported: bool = False
    metadata: str | None = None
    reply_to: _ReplyTo | None = None


class _Postback(msgspec.Struct):
    title: str | None = None
    payload: str | None = None
    mid: str | None = None


class _Delivery(msgspec.Struct):
    watermark: int | None = None
    mids: list[str] = []


class _Read(msgspec.Struct):
    watermark: int | None = None
    mid: str | None = None


class _Reaction(msgspec.Struct):
    mid: str | None = None
    action: str | None = None
    emoji: str | None = None
    reaction: str | None = None


class _Referral(msgspec.Struct):
    ref: str | None = None
    source: str | None = None
    type: str | None = None


class _ThreadControl(msgspec.Struct):
    new_owner_app_id: str | int | None = None
    previous_owner_app_id: str | int | None = None


class _Event(msgspec.Struct):
    sender: _Party | None = None
    recipient: _Party | None = None
    timestamp: int | None = None
    message: _Message | None = None
    postback: _Postback | None = None
    delivery: _Delivery | None = None
    read: _Read | None = None
    reaction: _Reaction | None = None
    referral: _Referral | None = None
    pass_thread_control: _ThreadControl | None = None
    take_thread_control: _ThreadControl | None = None


class _Entry(msgspec.Struct):
    id: str | int | None = None
    time: int | None = None
    messaging: list[Any] = []
    standby: list[Any] = []
    """Events of threads another app owns (handover protocol), for reading along."""


class _Envelope(msgspec.Struct):
    object: str
    entry: list[_Entry]


def _ms(raw: int | None) -> datetime:
    """A Meta millisecond timestamp as an aware UTC datetime (now when missing or absurd)."""
    try:
        return datetime.fromtimestamp(raw / 1000, UTC) if raw is not None else datetime.now(UTC)
    except (ValueError, OverflowError, OSError):
        return datetime.now(UTC)


def _ok_id(value: str | None) -> bool:
    return bool(value) and len(value or "") <= 256


def check_meta_config(
    kind: str, config: Mapping[str, Any], config_type: type[MessengerConfig]
) -> dict[str, Any]:
    """Validate a Messenger-platform configuration and return it normalised."""
    try:
        parsed = msgspec.convert(dict(config), config_type)
    except msgspec.ValidationError as exc:
        raise ConfigError(
            "{kind} channel configuration: {detail}", params={"kind": kind, "detail": str(exc)}
        ) from exc
    for name in ("page_id", "app_secret", "verify_token", "page_access_token"):
        if not getattr(parsed, name).strip():
            raise ConfigError(
                "{kind} channel configuration: {field} must not be empty",
                params={"kind": kind, "field": name},
            )
    if not parsed.page_id.isdigit():
        raise ConfigError(
            "{kind} channel configuration: page_id must be digits", params={"kind": kind}
        )
    if not parsed.api_base.startswith(("http://", "https://")):
        raise ConfigError(
            "{kind} channel configuration: api_base must be an http(s) URL", params={"kind": kind}
        )
    if not parsed.api_version.startswith("v"):
        raise ConfigError(
            "{kind} channel configuration: api_version looks like v21.0", params={"kind": kind}
        )
    if parsed.messages_per_second <= 0:
        raise ConfigError(
            "{kind} channel configuration: messages_per_second must be > 0", params={"kind": kind}
        )
    parsed.page_username = parsed.page_username.strip().removeprefix("@")
    if parsed.page_username and not re.fullmatch(r"[A-Za-z0-9.]{5,50}", parsed.page_username):
        raise ConfigError(
            "{kind} channel configuration: page_username is 5 to 50 letters, digits or dots",
            params={"kind": kind},
        )
    return msgspec.to_builtins(parsed)


class MessengerChannel(ChannelBase):
    """One Facebook Page on the Messenger Platform."""

    kind: ClassVar[str] = "messenger"
    display_name: ClassVar[str] = "Messenger"
    address_form: ClassVar[str | None] = "page-scoped user id (PSID, digits)"
    write_first: ClassVar[bool] = False
    poller: ClassVar[str | None] = None
    simulator: ClassVar[str | None] = "messenger"
    widget: ClassVar[bool] = False
    privacy: ClassVar[PrivacyRecord] = PrivacyRecord(
        "Meta Platforms Ireland Ltd. (Messenger Platform)",
        "Ireland (EU)",
        ("USA (Meta Platforms, Inc.)",),
        "EU-US Data Privacy Framework (Meta is certified); standard contractual clauses",
        "Meta Platform Terms and data processing terms",
    )

    @staticmethod
    def normalise_address(raw: str) -> str:
        """A PSID, unchanged."""
        return numeric_id(raw, r"[0-9]{1,64}", "bad_meta_id", kind="messenger")

    @staticmethod
    def chat_link(
        config: Mapping[str, Any], channel_id: str, text: str, base_url: str
    ) -> LinkTarget | None:
        """m.me/PAGE?ref=PAYLOAD (the text encoded as a referral)."""
        page = str(config.get("page_username") or config.get("page_id") or "")
        if not page:
            return LinkTarget(None, "page_id")
        return LinkTarget(f"https://m.me/{page}?ref={encode_payload(text)}")

    @staticmethod
    def deep_link_text(text: str | None, payload: Mapping[str, Any]) -> str | None:
        """A referral's `ref` (m.me link, also inside a Get Started postback) stands for its text."""
        for holder in (payload, payload.get("postback")):
            referral = holder.get("referral") if isinstance(holder, dict) else None
            if isinstance(referral, dict) and isinstance(referral.get("ref"), str):
                return decode_payload(str(referral["ref"])) or text
        return text

    envelope_object: ClassVar[str] = "page"
    provider: ClassVar[str] = "Messenger"
    config_type: ClassVar[type[MessengerConfig]] = MessengerConfig
    allowed_tags: ClassVar[frozenset[str]] = UPDATE_TAGS | {HUMAN_AGENT}
    send_metadata: ClassVar[bool] = True
    """Messenger echoes `message.metadata` back; we put our message id there."""
    max_text_bytes: ClassVar[int | None] = None
    capabilities: ClassVar[Capabilities] = Capabilities(
        max_text_length=2000,
        window=WINDOW,
        templates=True,
        media=True,
        interactive=True,
        messages_per_second=300.0,
        max_buttons=MAX_QUICK_REPLIES,
        max_button_title=MAX_QUICK_REPLY_TITLE,
        human_agent_window=HUMAN_AGENT_WINDOW,
        receipt_watermarks=True,
    )

    def __init__(self, config: Mapping[str, Any], http: httpx.AsyncClient):
        self.config = msgspec.convert(self.check_config(config), self.config_type)
        self.http = http
        self._secret = self.config.app_secret.encode()
        self._url = f"{self.config.api_base.rstrip('/')}/{self.config.api_version}/me/messages"

    @staticmethod
    def check_config(config: Mapping[str, Any]) -> dict[str, Any]:
        """Validate a configuration and return it normalised."""
        return check_meta_config("messenger", config, MessengerConfig)

    @property
    def messages_per_second(self) -> float:
        """This page's Send API budget."""
        return self.config.messages_per_second

    # -- webhooks ----------------------------------------------------------------------

    def handshake(self, request: WebhookRequest) -> str:
        """Meta's GET verification: echo hub.challenge when the verify token matches."""
        return hub_handshake(request, self.config.verify_token)

    def verify(self, request: WebhookRequest) -> None:
        """Check X-Hub-Signature-256 over the raw body in constant time."""
        verify_hub_signature(request, self._secret)

    def parse(self, request: WebhookRequest) -> ParsedWebhook:
        """Parse a Messenger Platform webhook into typed messages and statuses."""
        envelope = decode_envelope(request.body, _Envelope, self.provider, self.envelope_object)
        parsed = ParsedWebhook()
        refused: list[str] = []
        for entry in envelope.entry:
            if entry.id is not None and str(entry.id) != self.config.page_id:
                # One Meta app may serve several pages; another page's events are not ours.
                parsed.errors.append("entry for another page skipped")
                continue
            events = [(raw, False) for raw in entry.messaging]
            events += [(raw, True) for raw in entry.standby]
            for raw, standby in events:
                # One bad event must not cost the others of the batch (Meta retries the whole
                # POST on anything but 200): it is skipped and named.
                if not isinstance(raw, dict):
                    refused.append("messaging event is not an object")
                    continue
                try:
                    event = msgspec.convert(raw, _Event)
                except msgspec.ValidationError as exc:
                    refused.append(f"messaging event has a bad shape: {exc}")
                    continue
                try:
                    self._parse_event(event, raw, parsed, standby=standby)
                except WebhookRejected as exc:
                    refused.append(exc.message)
        if refused and not parsed.messages and not parsed.statuses and not parsed.threads:
            raise WebhookRejected(400, refused[0])
        if refused:
            logger.warning(
                "%s page %s: %d malformed events skipped in a batch",
                self.provider,
                self.config.page_id,
                len(refused),
            )
        parsed.errors.extend(refused)
        return parsed

    def _parse_event(
        self, event: _Event, raw: dict[str, Any], parsed: ParsedWebhook, *, standby: bool = False
    ) -> None:
        sender = event.sender.id if event.sender else None
        recipient = event.recipient.id if event.recipient else None
        at = _ms(event.timestamp)
        if standby:
            raw = {**raw, STANDBY: True}
        if event.message is not None and event.message.is_echo:
            # Our own send (or one from the Page inbox), echoed back: a "sent" receipt.
            # https://developers.facebook.com/docs/messenger-platform/reference/webhook-events/message-echoes
            if _ok_id(event.message.mid):
                parsed.statuses.append(
                    StatusUpdate(
                        provider_message_id=event.message.mid,
                        state=DeliveryState.SENT,
                        occurred_at=at,
                        recipient_address=recipient,
                        client_reference=event.message.metadata,
                    )
                )
            return
        if event.delivery is not None or event.read is not None:
            self._parse_receipt(event, sender, at, parsed)
            return
        if not sender or len(sender) > 64:
            # Policy enforcement, app roles, checkbox opt-ins ... name no person: nothing to
            # store, and never a reason to refuse the customers' messages next to them.
            kinds = ",".join(sorted(k for k in raw if k not in _ENVELOPE_KEYS))[:100]
            logger.info(
                "%s page %s: event without a sender skipped (%s)",
                self.provider,
                self.config.page_id,
                kinds,
            )
            parsed.errors.append(f"event without a sender skipped ({kinds})")
            return
        if event.pass_thread_control is not None or event.take_thread_control is not None:
            # Handover protocol: a pass reaches the app that gets the thread (us); a take
            # reaches the app that loses it (us too), naming the new owner.
            # https://developers.facebook.com/docs/messenger-platform/handover-protocol
            taken = event.take_thread_control
            owner = None if taken is None else str(taken.new_owner_app_id or OTHER_APP)[:64]
            parsed.threads.append(ThreadOwner(sender, owner, at))
            return
        if event.message is not None:
            # Messages come under "messaging" to the thread's owner, under "standby" to others.
            parsed.threads.append(ThreadOwner(sender, OTHER_APP if standby else None, at))
            self._parse_message(event.message, sender, at, raw, parsed)
        elif event.postback is not None:
            pb = event.postback
            mid = pb.mid or f"postback:{sender}:{event.timestamp}"
            parsed.messages.append(
                InboundMessage(
                    provider_message_id=mid[:256],
                    sender_address=sender,
                    sender_name=None,
                    sent_at=at,
                    content_kind=ContentKind.BUTTON,
                    body=pb.title or pb.payload,
                    payload=raw,
                )
            )
        elif event.reaction is not None:
            r = event.reaction
            action = r.action or "react"
            parsed.messages.append(
                InboundMessage(
                    provider_message_id=f"reaction:{r.mid}:{sender}:{event.timestamp}:{action}"[
                        :256
                    ],
                    sender_address=sender,
                    sender_name=None,
                    sent_at=at,
                    content_kind=ContentKind.REACTION,
                    body=(r.emoji or r.reaction) if action == "react" else None,
                    payload=raw,
                    reply_to_provider_id=r.mid,
                )
            )
        elif event.referral is not None and event.referral.ref:
            # Someone with a thread already opened an m.me link with ?ref= (a click-to-chat link).
            # https://developers.facebook.com/docs/messenger-platform/reference/webhook-events/messaging_referrals
            ref = event.referral.ref[:250]
            parsed.messages.append(
                InboundMessage(
                    provider_message_id=f"referral:{sender}:{event.timestamp}:{ref}"[:256],
                    sender_address=sender,
                    sender_name=None,
                    sent_at=at,
                    content_kind=ContentKind.BUTTON,
                    body=decode_payload(ref) or ref,
                    payload=raw,
                )
            )
        else:
            # optin, account_linking, handover ...: not messages, nothing to store.
            parsed.errors.append("event without message skipped")

    def _parse_message(
        self, msg: _Message, sender: str, at: datetime, raw: dict[str, Any], parsed: ParsedWebhook
    ) -> None:
        if not _ok_id(msg.mid):
            raise WebhookRejected(400, "message.mid is empty or too long")
        if msg.is_deleted:
            # Instagram "unsend": the customer took a message back; there is nothing new to store.
            parsed.errors.append("deleted message skipped")
            return
        kind, body = _content(msg)
        parsed.messages.append(
            InboundMessage(
                provider_message_id=msg.mid,
                sender_address=sender,
                sender_name=None,
                sent_at=at,
                content_kind=kind,
                body=body,
                payload=raw,
                reply_to_provider_id=msg.reply_to.mid if msg.reply_to else None,
            )
        )

    def _parse_receipt(
        self, event: _Event, sender: str | None, at: datetime, parsed: ParsedWebhook
    ) -> None:
        if event.delivery is not None:
            d = event.delivery
            for mid in d.mids:
                if _ok_id(mid):
                    parsed.statuses.append(
                        StatusUpdate(mid, DeliveryState.DELIVERED, at, recipient_address=sender)
                    )
            if d.watermark is not None and sender:
                parsed.statuses.append(
                    StatusUpdate(
                        "",
                        DeliveryState.DELIVERED,
                        at,
                        recipient_address=sender,
                        watermark=_ms(d.watermark),
                    )
                )
        if event.read is not None:
            r = event.read
            if r.mid and _ok_id(r.mid):
                # Instagram reports reads per message id (messaging_seen); the customer has seen
                # the thread up to it, so it is also a watermark at that message.
                parsed.statuses.append(
                    StatusUpdate(r.mid, DeliveryState.READ, at, recipient_address=sender)
                )
                if sender:
                    parsed.statuses.append(
                        StatusUpdate(
                            r.mid, DeliveryState.READ, at, recipient_address=sender, watermark=at
                        )
                    )
            if r.watermark is not None and sender:
                parsed.statuses.append(
                    StatusUpdate(
                        "",
                        DeliveryState.READ,
                        at,
                        recipient_address=sender,
                        watermark=_ms(r.watermark),
                    )
                )

    # -- sending -----------------------------------------------------------------------

    def messaging_type(self, message: OutboundMessage) -> tuple[str, str | None]:
        """Choose messaging_type and tag by the content, the window and who wrote it."""
        tag = message.payload.get("tag")
        if message.content_kind == ContentKind.TEMPLATE:
            tag = tag or message.payload.get("name")
        if tag is not None:
            if tag not in self.allowed_tags:
                raise PermanentError(
                    f"{self.provider} allows only these message tags: "
                    f"{', '.join(sorted(self.allowed_tags))}; got {tag!r}",
                    code="tag",
                )
            return "MESSAGE_TAG", str(tag)
        last = message.last_inbound_at
        if last is None:
            return "RESPONSE", None
        if last.tzinfo is None:
            last = last.replace(tzinfo=UTC)
        age = datetime.now(UTC) - last
        if age < WINDOW:
            return "RESPONSE", None
        if message.sender_kind == "agent" and age < HUMAN_AGENT_WINDOW:
            return "MESSAGE_TAG", HUMAN_AGENT
        # Outside every window: Meta refuses with error 10, which the agent then sees.
        return "RESPONSE", None

    def build_payload(self, message: OutboundMessage) -> dict[str, Any]:
        """The Send API request body for one outbound message."""
        p = message.payload
        kind = message.content_kind
        body = message.body or ""
        out: dict[str, Any] = {}
        if kind == ContentKind.TEXT:
            out["text"] = body
        elif kind == ContentKind.TEMPLATE:
            params = p.get("parameters") or []
            out["text"] = body or "\n".join(str(v) for v in params)
        elif kind == ContentKind.INTERACTIVE:
            out["text"] = body
            out["quick_replies"] = _quick_replies(p)
        elif kind == ContentKind.MEDIA:
            media_type = _OUT_MEDIA.get(str(p.get("media_type", "image")), "image")
            # Attachments carry no caption on the Messenger Platform; the text is dropped.
            out["attachment"] = {
                "type": media_type,
                "payload": {"url": p["link"], "is_reusable": True},
            }
        else:
            raise PermanentError(
                f"{self.kind} cannot send content kind {kind}", code="unsupported_kind"
            )
        if "text" in out:
            if not out["text"]:
                raise PermanentError(f"{self.kind} needs a text to send", code="empty_body")
            if len(out["text"]) > self.capabilities.max_text_length or (
                self.max_text_bytes is not None and len(out["text"].encode()) > self.max_text_bytes
            ):
                raise PermanentError(f"{self.provider} text is too long", code="too_long")
        if self.send_metadata:
            out["metadata"] = message.client_reference
        messaging_type, tag = self.messaging_type(message)
        request: dict[str, Any] = {
            "recipient": {"id": message.to},
            "messaging_type": messaging_type,
            "message": out,
        }
        if tag is not None:
            request["tag"] = tag
        return request

    async def acknowledge(self, data: dict[str, Any]) -> None:
        """Messenger needs no acknowledgement beyond the webhook's 200."""

    @staticmethod
    def media_refs(payload: dict[str, Any]) -> list[MediaRef]:
        """Every file attachment with a payload.url (image, video, audio, file, sticker)."""
        message = payload.get("message")
        attachments = message.get("attachments") if isinstance(message, dict) else None
        refs: list[MediaRef] = []
        for item in attachments if isinstance(attachments, list) else []:
            a_type = item.get("type") if isinstance(item, dict) else None
            body = item.get("payload") if isinstance(item, dict) else None
            url = body.get("url") if isinstance(body, dict) else None
            if not isinstance(a_type, str) or a_type not in _IN_MEDIA or not isinstance(url, str):
                continue
            if not url.startswith(("http://", "https://")):
                continue
            refs.append(MediaRef(kind=_IN_MEDIA[a_type], ref={"url": url}))
        return refs

    async def fetch_media(self, ref: MediaRef, max_bytes: int) -> FetchedMedia:
        """Download the attachment's CDN URL (signed by the platform; no token needed)."""
        url = str(ref.ref.get("url", ""))
        if not url.startswith(("http://", "https://")):
            raise PermanentError("the attachment has no http(s) URL", code="media_url")
        if not (same_host(url, self.config.api_base) or under_domains(url, MEDIA_DOMAINS)):
            raise PermanentError(
                f"the attachment is not on a {self.provider} host", code="media_host"
            )
        return await download(self.http, url, max_bytes, provider=self.provider)

    async def check(self) -> str | None:
        """Ask the Graph API who the page token belongs to (`GET /me`): the page's name."""
        cfg = self.config
        response, data = await call_api(
            self.http.get(
                f"{cfg.api_base.rstrip('/')}/{cfg.api_version}/me",
                params={"fields": "id,name", "access_token": cfg.page_access_token},
            ),
            self.provider,
        )
        if response.status_code == 200 and isinstance(data, dict):
            return str(data.get("name") or data.get("id") or "")
        raise map_error(self.provider, response, data)

    async def send(self, message: OutboundMessage) -> SendResult:
        """POST the message to the Send API and map errors to the four kinds."""
        payload = self.build_payload(message)
        response, data = await call_api(
            self.http.post(
                self._url,
                params={"access_token": self.config.page_access_token},
                json=payload,
            ),
            self.provider,
        )
        if response.status_code == 200 and isinstance(data, dict):
            mid = data.get("message_id")
            if isinstance(mid, str) and mid:
                return SendResult(provider_message_id=mid)
            raise TransientError(f"{self.provider} answered 200 without a message_id")
        raise map_error(self.provider, response, data)


def _content(msg: _Message) -> tuple[ContentKind, str | None]:
    """Map one inbound message to its content kind and display text."""
    if msg.is_unsupported:
        return ContentKind.UNSUPPORTED, msg.text
    if msg.quick_reply is not None:
        return ContentKind.INTERACTIVE, msg.text or msg.quick_reply.payload
    if msg.attachments:
        first = msg.attachments[0]
        a_type = first.get("type") if isinstance(first, dict) else None
        payload = first.get("payload") if isinstance(first, dict) else None
        payload = payload if isinstance(payload, dict) else {}
        links = _links(msg.attachments)
        if a_type in _LINKED_MEDIA:
            return ContentKind.MEDIA, _joined(msg.text, *links)
        if a_type in MEDIA_ATTACHMENTS:
            return ContentKind.MEDIA, msg.text
        if a_type == "location":
            coords = payload.get("coordinates")
            title = first.get("title")
            if isinstance(coords, dict):
                where = f"{coords.get('lat')},{coords.get('long')}"
                return ContentKind.LOCATION, title if isinstance(title, str) else where
        if a_type in _LINK_SHARES and links:
            # A shared post, link or product: what it is called and where it is.
            return ContentKind.TEXT, _joined(msg.text, *links)
        # A type we do not know yet is stored as unsupported, with whatever link it names.
        return ContentKind.UNSUPPORTED, _joined(msg.text, *links)
    if msg.text is not None:
        return ContentKind.TEXT, msg.text
    return ContentKind.UNSUPPORTED, None


def _links(attachments: list[dict[str, Any]]) -> list[str]:
    """Titles and URLs of every attachment, in order, each once (share and ig_post repeat)."""
    found: list[str] = []
    for item in attachments[:10]:
        if not isinstance(item, dict):
            continue
        payload = item.get("payload")
        payload = payload if isinstance(payload, dict) else {}
        places: list[dict[str, Any]] = [item, payload]
        product = payload.get("product")
        elements = product.get("elements") if isinstance(product, dict) else None
        if not isinstance(elements, list):
            elements = payload.get("elements")
        places += [
            e for e in (elements if isinstance(elements, list) else [])[:10] if isinstance(e, dict)
        ]
        for place in places:
            for key in ("title", "subtitle", "url", "URL", "item_url", "image_url"):
                value = place.get(key)
                if key == "image_url" and (place.get("url") or place.get("item_url")):
                    continue
                if isinstance(value, str) and value.strip() and value.strip() not in found:
                    found.append(value.strip()[:2000])
    return found


def _joined(*parts: str | None) -> str | None:
    text = "\n".join(part for part in parts if part)
    return text or None


def _quick_replies(p: dict[str, Any]) -> list[dict[str, str]]:
    """Buttons (or list rows) as quick replies; Messenger has no lists."""
    options: list[dict[str, Any]] = list(p.get("buttons") or [])
    if not options:
        for section in p.get("sections") or []:
            options.extend(section.get("rows") or [])
    if not 1 <= len(options) <= MAX_QUICK_REPLIES:
        raise PermanentError(
            f"quick replies need 1 to {MAX_QUICK_REPLIES} options, got {len(options)}",
            code="quick_replies",
        )
    replies = []
    for option in options:
        title = str(option.get("title", ""))
        if not title or len(title) > MAX_QUICK_REPLY_TITLE:
            raise PermanentError(
                f"quick reply titles are 1 to {MAX_QUICK_REPLY_TITLE} characters",
                code="quick_replies",
            )
        replies.append(
            {"content_type": "text", "title": title, "payload": str(option.get("id") or title)}
        )
    return replies


def map_error(provider: str, response: httpx.Response, data: Any) -> ChannelError:
    """Map a Graph API error answer to one of the four error kinds."""
    status = response.status_code
    err = data.get("error") if isinstance(data, dict) else None
    if not isinstance(err, dict):
        if status >= 500:
            return TransientError(f"{provider} answered HTTP {status}")
        if status == 429:
            return RateLimited(f"{provider} answered HTTP 429", retry_after=_retry_after(response))
        return PermanentError(
            f"{provider} answered HTTP {status} without an error body", code=str(status)
        )
    raw_code = err.get("code")
    code = raw_code if isinstance(raw_code, int) else -1
    subcode = err.get("error_subcode")
    reason = str(err.get("message") or f"HTTP {status}")
    if code == WINDOW_CODE and subcode == WINDOW_SUBCODE:
        return PermanentError(
            f"{provider} refused: the message was sent outside of the allowed window "
            f"(24 hours after the customer's last message, 7 days for agent replies) — {reason}",
            code=str(code),
        )
    if status == 401 or code in _AUTH_CODES:
        return AuthError(reason, code=str(code))
    if code in _RATE_CODES:
        return RateLimited(
            reason, code=str(code), retry_after=_retry_after(response) or _RATE_CODES[code]
        )
    if code in _UNREACHABLE_CODES:
        return PermanentError(reason, code=str(code), unreachable=True)
    if code in _TRANSIENT_CODES or status >= 500:
        return TransientError(reason, code=str(code))
    return PermanentError(reason, code=str(code))


def _retry_after(response: httpx.Response) -> float | None:
    raw = response.headers.get("retry-after")
    try:
        return max(0.0, float(raw)) if raw is not None else None
    except ValueError:
        return None
