"""The Channel protocol, the typed events it produces, its errors, and the registry."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar, Protocol

import httpx

from tresen.domain.message import ContentKind, DeliveryState

DEFAULT_OPT_OUT_KEYWORDS = frozenset({"STOP", "STOPP", "ABMELDEN", "ABBESTELLEN", "UNSUBSCRIBE"})


@dataclass(frozen=True)
class Capabilities:
    """What a channel can carry and which rules it imposes, as data."""

    max_text_length: int
    window: timedelta | None
    templates: bool
    media: bool
    interactive: bool
    messages_per_second: float
    max_buttons: int = 0
    max_button_title: int = 20
    human_agent_window: timedelta | None = None
    """A longer window for replies a person writes (Messenger's HUMAN_AGENT tag), if any."""
    opt_out_keywords: frozenset[str] = DEFAULT_OPT_OUT_KEYWORDS
    """Words (upper case) a customer writes to stop all messages on this channel."""


@dataclass(frozen=True)
class WebhookRequest:
    """A provider's HTTP call as it arrived: method, headers, query and the raw body."""

    method: str
    url: str
    headers: Mapping[str, str]
    query: Mapping[str, str]
    body: bytes
    public_url: str = ""
    """The URL as the provider was told it (TRESEN_BASE_URL + path + query); signatures may cover it."""


@dataclass(frozen=True)
class InboundMessage:
    """A message from a customer, parsed and typed."""

    provider_message_id: str
    sender_address: str
    sender_name: str | None
    sent_at: datetime
    content_kind: ContentKind
    body: str | None
    payload: dict[str, Any]
    reply_to_provider_id: str | None = None
    acknowledgement: dict[str, Any] | None = None
    """Data the channel's `acknowledge` needs after the message is stored (e.g. a Telegram
    callback query id to answer); acknowledged by a job, never on the webhook's hot path."""


@dataclass(frozen=True)
class StatusUpdate:
    """A provider's report on an outbound message."""

    provider_message_id: str
    state: DeliveryState
    occurred_at: datetime
    recipient_address: str | None = None
    error_code: str | None = None
    error_reason: str | None = None
    client_reference: str | None = None
    watermark: datetime | None = None
    """Set when the provider reports "everything up to this time" for a recipient (Messenger's
    delivery and read watermarks): recipient_address names the customer; provider_message_id is
    empty, or names the message the mark stops at (Instagram's read of one message)."""


@dataclass
class ParsedWebhook:
    """Everything one webhook call carried."""

    messages: list[InboundMessage] = field(default_factory=list)
    statuses: list[StatusUpdate] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Attachment:
    """A checked file under the data dir that goes out with a media message."""

    path: Path
    filename: str
    content_type: str

    def read(self) -> bytes:
        """The file's content (decrypted when stored encrypted at rest)."""
        from tresen.db.crypto import open_bytes

        return open_bytes(self.path.read_bytes())


@dataclass(frozen=True)
class OutboundMessage:
    """What the pipeline asks a channel to send."""

    to: str
    content_kind: ContentKind
    body: str | None
    payload: dict[str, Any]
    client_reference: str
    sender_kind: str = "agent"
    last_inbound_at: datetime | None = None
    """When the customer last wrote (channels with windows choose message types by it)."""
    attachment: Attachment | None = None
    """The stored file of a media message an agent uploaded (channels may upload it directly)."""


@dataclass(frozen=True)
class SendResult:
    """The provider accepted the message under this id."""

    provider_message_id: str


@dataclass(frozen=True)
class MediaRef:
    """Where a provider keeps one file of an inbound message (fetched later by a job)."""

    kind: str
    """image, audio, video, document or sticker."""
    ref: dict[str, Any]
    """Provider-specific: a media id, a file id or a URL."""
    mime_type: str | None = None
    filename: str | None = None


@dataclass(frozen=True)
class FetchedMedia:
    """A file's bytes as the provider served them (checked and stored by tresen.media)."""

    content: bytes
    content_type: str | None
    filename: str | None = None


class ChannelError(Exception):
    """A send failed; `kind` says what the pipeline should do about it."""

    kind: ClassVar[str] = "transient"

    def __init__(
        self,
        reason: str,
        *,
        code: str | None = None,
        retry_after: float | None = None,
        unreachable: bool = False,
    ):
        super().__init__(reason)
        self.reason = reason
        self.code = code
        self.retry_after = retry_after
        self.unreachable = unreachable
        """True when the recipient can no longer be reached on this channel (blocked the bot)."""


class AuthError(ChannelError):
    """The provider rejected our credentials."""

    kind = "auth"


class RateLimited(ChannelError):
    """Too fast: try again after `retry_after` seconds."""

    kind = "rate_limited"


class PermanentError(ChannelError):
    """The provider refused this message for good (code and reason from the provider)."""

    kind = "permanent"


class TransientError(ChannelError):
    """A temporary failure (5xx, timeout, dropped connection): retry with backoff."""

    kind = "transient"


class MediaTooLarge(PermanentError):
    """A file is larger than TRESEN_MAX_MEDIA_BYTES; its download was stopped."""


class WebhookRejected(Exception):
    """A webhook call that must not be processed, with the HTTP status to answer."""

    def __init__(self, status_code: int, message: str):
        super().__init__(message)
        self.status_code = status_code
        self.message = message


class ConfigError(ValueError):
    """A channel's configuration is missing a value or has a malformed one."""


class Channel(Protocol):
    """One channel account: checks and parses webhooks, sends messages."""

    kind: ClassVar[str]
    capabilities: ClassVar[Capabilities]

    def handshake(self, request: WebhookRequest) -> str:
        """Answer the provider's webhook verification call (GET), or raise WebhookRejected."""
        ...

    def verify(self, request: WebhookRequest) -> None:
        """Raise WebhookRejected(401/403) unless the request is authentic."""
        ...

    def parse(self, request: WebhookRequest) -> ParsedWebhook:
        """Turn a verified body into typed events; raise WebhookRejected(400) when malformed."""
        ...

    async def send(self, message: OutboundMessage) -> SendResult:
        """Hand one message to the provider or raise a ChannelError."""
        ...

    async def acknowledge(self, data: dict[str, Any]) -> None:
        """Confirm receipt to the provider where it expects that (data from InboundMessage)."""
        ...

    @staticmethod
    def media_refs(payload: dict[str, Any]) -> list[MediaRef]:
        """The files a stored inbound message payload names (empty when none)."""
        ...

    async def fetch_media(self, ref: MediaRef, max_bytes: int) -> FetchedMedia:
        """Download one file (at most max_bytes) or raise a ChannelError (MediaTooLarge)."""
        ...


async def download(
    http: httpx.AsyncClient,
    url: str,
    max_bytes: int,
    *,
    provider: str,
    headers: Mapping[str, str] | None = None,
    auth: httpx.Auth | tuple[str, str] | None = None,
    follow_redirects: bool = True,
) -> FetchedMedia:
    """GET a file, streaming, and stop as soon as it grows over max_bytes."""
    try:
        async with http.stream(
            "GET", url, headers=headers, auth=auth, follow_redirects=follow_redirects
        ) as response:
            status = response.status_code
            if status != 200:
                await response.aread()
                raise _download_error(provider, status)
            declared = response.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > max_bytes:
                raise MediaTooLarge(
                    f"the file is {int(declared)} bytes; at most {max_bytes} are accepted",
                    code="too_large",
                )
            chunks: list[bytes] = []
            size = 0
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > max_bytes:
                    raise MediaTooLarge(
                        f"the file is larger than {max_bytes} bytes", code="too_large"
                    )
                chunks.append(chunk)
            return FetchedMedia(b"".join(chunks), response.headers.get("content-type"))
    except httpx.TimeoutException as exc:
        raise TransientError(f"timeout downloading from {provider}: {type(exc).__name__}") from exc
    except httpx.TransportError as exc:
        raise TransientError(f"download from {provider} failed: {type(exc).__name__}") from exc


def _download_error(provider: str, status: int) -> ChannelError:
    reason = f"{provider} answered HTTP {status} to the file download"
    if status in (401, 403):
        return AuthError(reason, code=str(status))
    if status == 429:
        return RateLimited(reason, code=str(status), retry_after=30.0)
    if status >= 500 or status == 408:
        return TransientError(reason, code=str(status))
    return PermanentError(reason, code=str(status))


class NoMedia:
    """Mixin for channels whose inbound messages carry no files to fetch."""

    @staticmethod
    def media_refs(payload: dict[str, Any]) -> list[MediaRef]:
        """No files."""
        return []

    async def fetch_media(self, ref: MediaRef, max_bytes: int) -> FetchedMedia:
        """Nothing to fetch from this provider."""
        raise PermanentError("this channel has no files to fetch", code="no_media")


class ChannelFactory(Protocol):
    """How the registry builds a channel from its stored configuration (the channel's class)."""

    kind: str
    capabilities: Capabilities
    config_type: type[Any]

    def __call__(self, config: Mapping[str, Any], http: httpx.AsyncClient) -> Channel: ...

    @staticmethod
    def check_config(config: Mapping[str, Any]) -> dict[str, Any]: ...

    @staticmethod
    def media_refs(payload: dict[str, Any]) -> list[MediaRef]: ...


CHANNEL_CLASSES: dict[str, str] = {
    "whatsapp": "tresen.channels.whatsapp:WhatsAppChannel",
    "messenger": "tresen.channels.messenger:MessengerChannel",
    "instagram": "tresen.channels.instagram:InstagramChannel",
    "telegram": "tresen.channels.telegram:TelegramChannel",
    "sms": "tresen.channels.sms:SmsChannel",
    "email": "tresen.channels.email:EmailChannel",
    "webchat": "tresen.channels.webchat:WebchatChannel",
    "xmpp": "tresen.channels.xmpp:XmppChannel",
}
"""Every channel kind tresen knows, in one explicit list (imported on first use)."""

_loaded: dict[str, ChannelFactory] = {}


def channel_factory(kind: str) -> ChannelFactory:
    """The class of a channel kind, or a clear error."""
    if kind in _loaded:
        return _loaded[kind]
    target = CHANNEL_CLASSES.get(kind)
    if target is None:
        raise ConfigError(
            f"unknown channel kind {kind!r}; known: {', '.join(sorted(CHANNEL_CLASSES))}"
        )
    module_name, class_name = target.split(":")
    factory: ChannelFactory = getattr(importlib.import_module(module_name), class_name)
    _loaded[kind] = factory
    return factory


def registry() -> dict[str, ChannelFactory]:
    """Every channel kind with its class."""
    return {kind: channel_factory(kind) for kind in CHANNEL_CLASSES}
