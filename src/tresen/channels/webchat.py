"""tresen's own embeddable web chat: the message row is the truth, the widget fetches it."""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import httpx
import msgspec

from tresen.channels.addresses import none_taken
from tresen.channels.base import (
    Capabilities,
    ChannelBase,
    ConfigError,
    FetchedMedia,
    InboundMessage,
    LinkTarget,
    MediaRef,
    OutboundMessage,
    ParsedWebhook,
    PermanentError,
    PrivacyRecord,
    SendResult,
    WebhookRejected,
    WebhookRequest,
)
from tresen.domain.message import ContentKind
from tresen.media.store import Saved, stored_filename

DEFAULT_MAX_UPLOAD = 5 * 1024 * 1024
DEFAULT_UPLOAD_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp", "application/pdf")
MAX_TEXT = 4000
TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{32,64}$")
CLIENT_ID_RE = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
ADDRESS_PREFIX = "visitor-"
WIDGET_CONSENT = "widget_consent"
"""Payload mark of a message sent after the visitor accepted the widget's privacy notice."""
PROVIDER_PREFIX = "webchat-"
_EMAIL_RE = re.compile(r"^[^@\s<>]{1,64}@[^@\s<>]{1,255}\.[^@\s<>]{2,63}$")
# First bytes of each accepted file type: the declared Content-Type must match the content.
_MAGIC: dict[str, tuple[bytes, ...]] = {
    "image/jpeg": (b"\xff\xd8\xff",),
    "image/png": (b"\x89PNG\r\n\x1a\n",),
    "image/gif": (b"GIF87a", b"GIF89a"),
    "image/webp": (b"RIFF",),
    "application/pdf": (b"%PDF-",),
}
EXTENSIONS = {
    "image/jpeg": ".jpg",
    "image/png": ".png",
    "image/gif": ".gif",
    "image/webp": ".webp",
    "application/pdf": ".pdf",
}


class WebchatConfig(msgspec.Struct, forbid_unknown_fields=True):
    """Stored configuration of one web chat widget."""

    allowed_origins: list[str] | str = msgspec.field(default_factory=list)
    title: str = "Chat"
    privacy_notice: str = ""
    privacy_link: str = ""
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD
    allowed_upload_types: list[str] | str = msgspec.field(
        default_factory=lambda: list(DEFAULT_UPLOAD_TYPES)
    )
    opening_hours_note: str = ""
    messages_per_second: float = 50.0
    page_url: str = ""
    """A page of the shop's website that embeds the widget; click-to-chat links open it."""


class VisitorText(msgspec.Struct, forbid_unknown_fields=True):
    """A text the visitor typed (`id` is the widget's own id, so a retry is stored once)."""

    id: str
    text: str
    consent: bool = False
    """The visitor accepted the widget's privacy notice (the web chat's consent step)."""


class OfflineForm(msgspec.Struct, forbid_unknown_fields=True):
    """The after-hours form."""

    name: str
    email: str
    message: str
    consent: bool = False
    """The visitor accepted the widget's privacy notice."""


class SessionRequest(msgspec.Struct, forbid_unknown_fields=True):
    """Start (no token) or resume (the token from the widget's localStorage) a session."""

    token: str | None = None


def _as_list(value: list[str] | str) -> list[str]:
    items = value.split(",") if isinstance(value, str) else value
    return [i.strip() for i in items if i.strip()]


def normalise_origin(origin: str) -> str | None:
    """`scheme://host[:port]` in lower case, or None when it is not an http(s) origin."""
    try:
        parts = urlsplit(origin.strip())
        port_number = parts.port
    except ValueError:  # "http://[::1", "http://a:99999": not an origin at all
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        return None
    default = {"http": 80, "https": 443}[parts.scheme]
    port = f":{port_number}" if port_number and port_number != default else ""
    return f"{parts.scheme}://{parts.hostname.lower()}{port}"


def visitor_address(token: str) -> str:
    """The identity address of a visitor: a hash of the token, so the DB never holds the token."""
    return ADDRESS_PREFIX + hashlib.sha256(token.encode()).hexdigest()[:40]


def new_visitor_token() -> str:
    """A fresh random visitor token (kept only in the widget's localStorage)."""
    return secrets.token_urlsafe(32)


def sniff_type(head: bytes, declared: str) -> bool:
    """True when the file's first bytes match its declared type."""
    magic = _MAGIC.get(declared)
    if magic is None:
        return False
    if declared == "image/webp":
        return head[:4] == b"RIFF" and head[8:12] == b"WEBP"
    return head.startswith(magic)


def _clean(text: str, limit: int) -> str:
    """Text without control characters (newlines and tabs kept), trimmed, at most `limit`."""
    kept = "".join(c for c in text if c in "\n\t" or (ord(c) >= 32 and ord(c) != 127))
    return kept.strip()[:limit]


PREFILL_PARAM = "tresen_text"
"""The query parameter the widget reads to open with a prefilled message."""


def with_query_param(url: str, name: str, value: str) -> str:
    """The URL with one query parameter set (replacing an earlier value of it)."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != name]
    query.append((name, value))
    return urlunsplit(parts._replace(query=urlencode(query, quote_via=quote)))


class WebchatChannel(ChannelBase):
    """One web chat widget: visitors post to /chat/{id}/..., replies are read from the DB."""

    kind: ClassVar[str] = "webchat"
    display_name: ClassVar[str] = "Web-Chat"
    address_form: ClassVar[str | None] = None
    write_first: ClassVar[bool] = False
    poller: ClassVar[str | None] = None
    simulator: ClassVar[str | None] = None
    widget: ClassVar[bool] = True
    """The kind is a chat widget on the business's own web site: no provider, no webhook;
    its admin page shows the snippet to embed."""
    """None: the widget talks to tresen itself; tests drive it over HTTP or in a browser."""
    privacy: ClassVar[PrivacyRecord] = PrivacyRecord(
        "none: the chat widget talks only to this tresen install",
        "where this install is operated",
        (),
        "not needed (no third party)",
        "the hosting contract of this install",
    )

    @staticmethod
    def normalise_address(raw: str) -> str:
        """Refused: a visitor id is made by the widget, nobody can type one."""
        return none_taken("webchat")

    @staticmethod
    def chat_link(
        config: Mapping[str, Any], channel_id: str, text: str, base_url: str
    ) -> LinkTarget | None:
        """The page with the widget (or tresen's own test page), opening with the text typed in."""
        page_url = str(config.get("page_url") or "")
        if page_url:
            return LinkTarget(with_query_param(page_url, PREFILL_PARAM, text))
        own = f"{base_url.rstrip('/')}/chat/{channel_id}/demo"
        return LinkTarget(
            with_query_param(own, PREFILL_PARAM, text),
            hint="page_url (a page of your website with the widget); until then the link "
            "opens tresen's own test page",
        )

    capabilities: ClassVar[Capabilities] = Capabilities(
        typing_indicator=True,
        max_text_length=MAX_TEXT,
        window=None,
        templates=False,
        media=True,
        interactive=False,
        messages_per_second=50.0,
    )
    config_type: ClassVar[type[WebchatConfig]] = WebchatConfig

    def __init__(self, config: Mapping[str, Any], http: httpx.AsyncClient):
        self.config = msgspec.convert(self.check_config(config), WebchatConfig)
        self.http = http
        self.origins = frozenset(_as_list(self.config.allowed_origins))
        self.upload_types = tuple(_as_list(self.config.allowed_upload_types))
        self.messages_per_second = self.config.messages_per_second

    @staticmethod
    def check_config(config: Mapping[str, Any]) -> dict[str, Any]:
        """Validate a configuration and return it normalised."""
        try:
            parsed = msgspec.convert(dict(config), WebchatConfig, strict=False)
        except msgspec.ValidationError as exc:
            raise ConfigError(
                "webchat channel configuration: {detail}", params={"detail": str(exc)}
            ) from exc
        origins = []
        for raw in _as_list(parsed.allowed_origins):
            origin = normalise_origin(raw)
            if origin is None:
                raise ConfigError(
                    "webchat channel configuration: allowed_origins entry {entry!r} is not an "
                    "origin like https://shop.example (scheme, host, optional port, no path)",
                    params={"entry": str(raw)},
                )
            origins.append(origin)
        parsed.allowed_origins = sorted(set(origins))
        types = _as_list(parsed.allowed_upload_types)
        unknown = [t for t in types if t not in _MAGIC]
        if unknown:
            raise ConfigError(
                "webchat channel configuration: upload types {unknown} are not supported; "
                "choose from {known}",
                params={"unknown": str(unknown), "known": ", ".join(DEFAULT_UPLOAD_TYPES)},
            )
        parsed.allowed_upload_types = types
        if parsed.page_url and not re.fullmatch(r"https?://[^\s#]+", parsed.page_url):
            raise ConfigError(
                "webchat channel configuration: page_url must be an http(s) URL without a fragment"
            )
        if not 0 <= parsed.max_upload_bytes <= 50 * 1024 * 1024:
            raise ConfigError("webchat channel configuration: max_upload_bytes must be 0 to 50 MB")
        if parsed.privacy_link and not parsed.privacy_link.startswith(("https://", "http://")):
            raise ConfigError("webchat channel configuration: privacy_link must be an http(s) URL")
        if not parsed.title.strip():
            raise ConfigError("webchat channel configuration: title must not be empty")
        return msgspec.to_builtins(parsed)

    def origin_allowed(self, origin: str | None, own_origins: tuple[str, ...] = ()) -> bool:
        """True for a configured site origin or tresen's own (the demo page)."""
        if origin is None:
            return False
        norm = normalise_origin(origin)
        return norm is not None and (norm in self.origins or norm in own_origins)

    def public_config(self) -> dict[str, Any]:
        """What the widget shows (no secrets in a web chat config, but only what it needs)."""
        return {
            "title": self.config.title,
            "privacy_notice": self.config.privacy_notice,
            "privacy_link": self.config.privacy_link,
            "opening_hours_note": self.config.opening_hours_note,
            "max_upload_bytes": self.config.max_upload_bytes,
            "allowed_upload_types": list(self.upload_types),
        }

    def visitor_text(self, token: str, body: bytes) -> InboundMessage:
        """A visitor's typed message, parsed at the edge; WebhookRejected(400) when malformed."""
        try:
            data = msgspec.json.decode(body, type=VisitorText)
        except msgspec.DecodeError as exc:
            raise WebhookRejected(400, f"malformed message: {exc}") from exc
        if not CLIENT_ID_RE.match(data.id):
            raise WebhookRejected(400, "id must be 8 to 64 characters of A-Z a-z 0-9 _ -")
        text = _clean(data.text, MAX_TEXT + 1)
        if not text:
            raise WebhookRejected(400, "the message is empty")
        if len(text) > MAX_TEXT:
            raise WebhookRejected(400, f"the message is longer than {MAX_TEXT} characters")
        address = visitor_address(token)
        return InboundMessage(
            provider_message_id=f"{address[-12:]}-{data.id}",
            sender_address=address,
            sender_name=None,
            sent_at=datetime.now(UTC),
            content_kind=ContentKind.TEXT,
            body=text,
            payload={WIDGET_CONSENT: True} if data.consent else {},
        )

    def visitor_file(
        self, token: str, media_id: str, saved: Saved, filename: str, *, consent: bool = False
    ) -> InboundMessage:
        """A file the visitor uploaded, checked and stored once under the data dir."""
        address = visitor_address(token)
        name = stored_filename(_clean(filename, 200) or "file", saved.content_type) or "file"
        media_type = "image" if saved.content_type.startswith("image/") else "document"
        return InboundMessage(
            provider_message_id=f"{address[-12:]}-{media_id}",
            sender_address=address,
            sender_name=None,
            sent_at=datetime.now(UTC),
            content_kind=ContentKind.MEDIA,
            body=name,
            payload={
                "media": {
                    "type": media_type,
                    "mime_type": saved.content_type,
                    "size": saved.size,
                    "filename": name,
                    "media_id": media_id,
                    "stored": saved.path,
                    "sha256": saved.sha256,
                },
                **({WIDGET_CONSENT: True} if consent else {}),
            },
        )

    def offline_form(self, token: str, body: bytes) -> InboundMessage:
        """The after-hours form as a message the agent can answer by e-mail."""
        try:
            data = msgspec.json.decode(body, type=OfflineForm)
        except msgspec.DecodeError as exc:
            raise WebhookRejected(400, f"malformed form: {exc}") from exc
        name = _clean(data.name, 200)
        email = data.email.strip()
        text = _clean(data.message, MAX_TEXT)
        if not name or not text:
            raise WebhookRejected(400, "name and message are required")
        if not _EMAIL_RE.match(email):
            raise WebhookRejected(400, "the e-mail address is not valid")
        address = visitor_address(token)
        return InboundMessage(
            provider_message_id=f"{address[-12:]}-offline-{secrets.token_hex(8)}",
            sender_address=address,
            sender_name=name,
            sent_at=datetime.now(UTC),
            content_kind=ContentKind.TEXT,
            body=f"[Offline: {name} <{email}>]\n{text}",
            payload={
                "offline_form": {"name": name, "email": email},
                **({WIDGET_CONSENT: True} if data.consent else {}),
            },
        )

    def handshake(self, request: WebhookRequest) -> str:
        """The web chat has no provider handshake."""
        raise WebhookRejected(404, "web chat takes no webhooks; the widget posts to /chat/")

    def verify(self, request: WebhookRequest) -> None:
        """The web chat has no provider webhooks: visitors post to /chat/{channel_id}/..."""
        raise WebhookRejected(404, "web chat takes no webhooks; the widget posts to /chat/")

    def parse(self, request: WebhookRequest) -> ParsedWebhook:
        """Never reached (verify refuses every webhook)."""
        raise WebhookRejected(404, "web chat takes no webhooks")

    async def send(self, message: OutboundMessage) -> SendResult:
        """Make a stored reply visible to the visitor: the widget reads sent rows live or later.

        A file goes out as a link only the visitor's session gets (signed, expiring).
        """
        if not message.to.startswith(ADDRESS_PREFIX):
            raise PermanentError("not a web chat visitor", code="unknown_visitor", unreachable=True)
        if message.content_kind == ContentKind.MEDIA:
            if message.attachment is None:
                raise PermanentError("the file of this message is missing", code="no_file")
        elif message.content_kind != ContentKind.TEXT or not message.body:
            raise PermanentError(
                "the web chat carries text and files only", code="unsupported_content"
            )
        return SendResult(provider_message_id=PROVIDER_PREFIX + message.client_reference)

    async def acknowledge(self, data: dict[str, Any]) -> None:
        """Nothing to confirm."""

    @staticmethod
    def media_refs(payload: dict[str, Any]) -> list[MediaRef]:
        """A visitor's upload, already checked and stored by the upload route (nothing to fetch)."""
        media = payload.get("media")
        if not isinstance(media, dict):
            return []
        path, media_id = media.get("stored"), media.get("media_id")
        if not isinstance(path, str) or not isinstance(media_id, str):
            return []
        mime, name, size = media.get("mime_type"), media.get("filename"), media.get("size")
        return [
            MediaRef(
                kind="image" if media.get("type") == "image" else "document",
                ref={
                    "stored": {
                        "media_id": media_id,
                        "path": path,
                        "size": size if isinstance(size, int) else None,
                        "sha256": media.get("sha256"),
                    }
                },
                mime_type=mime if isinstance(mime, str) else None,
                filename=name if isinstance(name, str) else None,
            )
        ]

    async def fetch_media(self, ref: MediaRef, max_bytes: int) -> FetchedMedia:
        """Uploads are stored locally; tresen.media reads them, nothing is fetched."""
        raise PermanentError("web chat files are stored on upload", code="no_media")
