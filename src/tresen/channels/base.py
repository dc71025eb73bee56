"""The Channel protocol, the typed events it produces, its errors, and the registry."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar, Protocol

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from tresen.db.crypto import open_bytes
from tresen.domain.errors import DomainError, Param
from tresen.domain.message import ContentKind, DeliveryState
from tresen.net.guard import UrlRefused

DEFAULT_OPT_OUT_KEYWORDS = frozenset({"STOP", "STOPP", "ABMELDEN", "ABBESTELLEN", "UNSUBSCRIBE"})


@dataclass(frozen=True)
class ChannelRef:
    """A channel by id, with its workspace and kind (what the pipeline needs to store for it)."""

    id: str
    workspace_id: str
    kind: str


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
    template_catalog: bool = False
    """Message templates are approved by the provider and synced (`tresen template sync`)."""
    typing_indicator: bool = False
    """The customer sees while an agent types a reply."""
    counts_segments: bool = False
    """Texts are split and billed in segments: the reply box counts them as the agent types."""
    receipt_watermarks: bool = False
    """Deliveries and reads come as "everything sent up to this time" per customer: a send
    recorded after such a receipt arrived is moved on by the mark its conversation kept."""


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


OTHER_APP = "standby"
"""Thread owner when a message only shows that some other app owns the thread (not which)."""


@dataclass(frozen=True)
class ThreadOwner:
    """Who owns a customer's thread (Meta's handover protocol): None is tresen itself."""

    address: str
    owner: str | None
    occurred_at: datetime


@dataclass
class ParsedWebhook:
    """Everything one webhook call carried."""

    messages: list[InboundMessage] = field(default_factory=list)
    statuses: list[StatusUpdate] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    threads: list[ThreadOwner] = field(default_factory=list)


@dataclass(frozen=True)
class Attachment:
    """A checked file from the file store that goes out with a media message."""

    path: Path | None
    filename: str
    content_type: str
    content: bytes | None = None
    """The file's (decrypted) bytes when they were loaded from the store instead of a path."""

    def read(self) -> bytes:
        """The file's content (decrypted when stored encrypted at rest)."""
        if self.content is not None:
            return self.content
        if self.path is None:
            raise FileNotFoundError("the attachment has neither content nor a path")
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


class ConfigError(DomainError):
    """A channel's configuration is missing a value or has a malformed one (HTTP 400)."""

    default_status = 400

    def __init__(self, message: str, *, params: Mapping[str, Param] | None = None) -> None:
        super().__init__("invalid_config", message, params=params)


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
    except UrlRefused as exc:
        raise PermanentError(
            f"the download from {provider} was refused: {exc}", code="url_refused"
        ) from exc
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


@dataclass(frozen=True)
class PrivacyRecord:
    """Who receives the messages of one channel kind and where they go (Art. 30 GDPR records)."""

    recipient: str
    country: str
    third_countries: tuple[str, ...]
    safeguard: str
    verify: str


@dataclass(frozen=True)
class LinkTarget:
    """A click-to-chat link of one channel, or the configuration it lacks for one."""

    url: str | None
    missing: str | None = None
    hint: str | None = None


class ChannelBase:
    """What a channel kind may leave as it is; a kind that needs more overrides it.

    The declarations every kind must make itself (see KIND_DECLARATIONS) have no default here.
    """

    @staticmethod
    def privacy_detail(config: Mapping[str, Any]) -> str:
        """Which server of the business a records entry names (empty: the provider's own)."""
        return ""

    @staticmethod
    def deep_link_text(text: str | None, payload: Mapping[str, Any]) -> str | None:
        """The text an inbound message stands for when it came through a chat link."""
        return text

    @staticmethod
    def carrier_opt_out(payload: Mapping[str, Any]) -> bool:
        """Whether the carrier already stopped all messages to this sender (and told them)."""
        return False

    @staticmethod
    async def reply_context(session: AsyncSession, conversation_id: str) -> dict[str, Any]:
        """Payload an outbound message in this conversation carries (e.g. mail threading)."""
        return {}

    @staticmethod
    async def on_connect(
        config: dict[str, Any], webhook_url: str, http: httpx.AsyncClient, *, register: bool
    ) -> dict[str, Any]:
        """The configuration to store once a channel is added (may tell the provider the URL)."""
        return config

    async def check(self) -> str | None:
        """Sign in at the provider once; who we are there, None when there is nothing to check.

        Raises a ChannelError (AuthError: wrong credentials; TransientError: not reachable) or
        UrlRefused when the outbound guard refuses the configured address.
        """
        return None


class ChannelFactory(Protocol):
    """A channel kind: builds channels from stored configuration and says what the house needs.

    Every name in KIND_DECLARATIONS is declared by the kind's own class (tests/channels/
    test_kinds.py enumerates the registry); docs/channels/adding-a-channel.md walks through it.
    """

    kind: str
    display_name: str
    """How people call the kind (UI, links): WhatsApp, Web-Chat, E-Mail."""
    capabilities: Capabilities
    config_type: type[Any]
    """A msgspec Struct: its fields are the stored configuration and `tresen channel add`'s options."""
    address_form: str | None
    """What a customer's address on this kind is, in words (None: nobody can type one)."""
    write_first: bool
    """Whether the business may write first to an address nobody wrote from (SMS, e-mail)."""
    poller: str | None
    """The worker task that fetches inbound messages when the provider calls no webhook
    (a name in tresen.app.POLLERS), or None."""
    simulator: str | None
    """The simulator that plays the provider locally (a name in tresen.sim.registry.SIMULATORS),
    or None (no provider)."""
    widget: bool
    """Whether the kind is a chat widget on the business's own web site (no provider, no webhook;
    its admin page shows the snippet to embed)."""
    privacy: PrivacyRecord

    def __call__(self, config: Mapping[str, Any], http: httpx.AsyncClient) -> Channel: ...

    @staticmethod
    def check_config(config: Mapping[str, Any]) -> dict[str, Any]: ...

    @staticmethod
    def media_refs(payload: dict[str, Any]) -> list[MediaRef]: ...

    @staticmethod
    def normalise_address(raw: str) -> str:
        """The address as the channel stores it, or AddressError (code + params)."""
        ...

    @staticmethod
    def chat_link(
        config: Mapping[str, Any], channel_id: str, text: str, base_url: str
    ) -> LinkTarget | None:
        """The click-to-chat link that opens a chat prefilled with `text` (None: the kind has none)."""
        ...

    @staticmethod
    def privacy_detail(config: Mapping[str, Any]) -> str: ...

    @staticmethod
    def deep_link_text(text: str | None, payload: Mapping[str, Any]) -> str | None: ...

    @staticmethod
    def carrier_opt_out(payload: Mapping[str, Any]) -> bool: ...

    @staticmethod
    async def reply_context(session: AsyncSession, conversation_id: str) -> dict[str, Any]: ...

    @staticmethod
    async def on_connect(
        config: dict[str, Any], webhook_url: str, http: httpx.AsyncClient, *, register: bool
    ) -> dict[str, Any]: ...


KIND_DECLARATIONS = (
    "kind",
    "display_name",
    "capabilities",
    "config_type",
    "check_config",
    "address_form",
    "write_first",
    "poller",
    "simulator",
    "widget",
    "privacy",
    "normalise_address",
    "chat_link",
)
"""What every channel class declares itself (no default in ChannelBase)."""
