"""Simulated WhatsApp Business Cloud API: a real HTTP server speaking Meta's wire format."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import asdict, dataclass
from functools import partial
from importlib import resources
from typing import Annotated, Any

import httpx
import typer
from litestar import Litestar, MediaType, Request, Response, delete, get, post, route
from litestar.datastructures import UploadFile
from litestar.enums import HttpMethod
from litestar.exceptions import HTTPException
from litestar.params import FromPath, FromQuery
from litestar.types import ASGIApp, Receive, Scope, Send

from tresen.clitools import fail
from tresen.sim.base import (
    SimBase,
    TokenBucket,
    WebhookStats,
    json_app,
    serve_simulator,
)
from tresen.sim.whatsapp_templates import TemplateError, TemplateStore

__all__ = [
    "LedgerEntry",
    "WebhookStats",
    "WhatsAppSimConfig",
    "WhatsAppSimulator",
    "add_cli",
    "run_whatsapp_simulator",
    "sign_body",
]

DEFAULT_PORT = 9001
"""Where `tresen sim whatsapp` listens, `sim whatsapp-send` looks, and `tresen demo` runs it."""
SEND_TYPES = frozenset(
    {
        "text",
        "template",
        "interactive",
        "image",
        "audio",
        "video",
        "document",
        "sticker",
        "location",
        "contacts",
        "reaction",
    }
)
MEDIA_TYPES = ("image", "audio", "video", "document", "sticker")
INTERACTIVE_TYPES = frozenset(
    {
        "button",
        "list",
        "cta_url",
        "flow",
        "product",
        "product_list",
        "catalog_message",
        "location_request_message",
        "address_message",
    }
)
TEMPLATE_COMPONENT_TYPES = frozenset({"header", "body", "footer", "button"})
STATUS_RANK = {"accepted": 0, "sent": 1, "delivered": 2, "read": 3, "failed": 4}
_VERSION_RE = re.compile(r"^v\d+\.\d+$")
_TYPE_NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
_MEDIA_DEFAULTS: dict[str, dict[str, Any]] = {
    "image": {"mime_type": "image/jpeg"},
    "audio": {"mime_type": "audio/ogg; codecs=opus", "voice": True},
    "video": {"mime_type": "video/mp4"},
    "document": {"mime_type": "application/pdf", "filename": "document.pdf"},
    "sticker": {"mime_type": "image/webp", "animated": False},
}
# Small files whose first bytes match each default type, served when a test names no bytes.
SAMPLE_MEDIA: dict[str, bytes] = {
    "image/jpeg": b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(64) + b"\xff\xd9",
    "audio/ogg": b"OggS\x00\x02" + bytes(64),
    "video/mp4": b"\x00\x00\x00\x18ftypmp42" + bytes(64),
    "application/pdf": b"%PDF-1.4\n%sim\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n",
    "image/webp": b"RIFF\x24\x00\x00\x00WEBPVP8 " + bytes(64),
}
_DROPPED = json.dumps({"messaging_product": "whatsapp", "contacts": []}).encode()[:20]
"""The start of a send answer that breaks off (the "drop" fault)."""
_WINDOW_DETAILS = (
    "Message failed to send because more than 24 hours have passed since the customer "
    "last replied to this number."
)


@dataclass
class WhatsAppSimConfig:
    """Behaviour of one simulated WhatsApp business number."""

    access_token: str = "sim-access-token"
    app_secret: str = "sim-app-secret"
    phone_number_id: str = "100000000000001"
    display_phone_number: str = "+49 30 1234567"
    waba_id: str = "200000000000001"
    webhook_url: str | None = None
    api_version: str = "v21.0"
    status_delays: tuple[float, float, float] = (0.05, 0.1, 0.2)
    auto_read: bool = True
    out_of_order: bool = False
    duplicate_rate: float = 0.0
    fault_rate: float = 0.0
    fault_kinds: tuple[str, ...] = ("5xx", "timeout", "drop")
    fault_after_accept_share: float = 0.0
    timeout_seconds: float = 15.0
    mps: float = 80.0
    pair_limit: tuple[int, float] | None = None
    window_seconds: float = 24 * 3600
    window_violation: str = "response"
    webhook_retry_delays: tuple[float, ...] = (0.2, 0.5, 1, 2, 5, 10, 20, 30)
    seed: int | None = None
    template_review_seconds: float = 0.2


@dataclass
class LedgerEntry:
    """One outbound message the simulator accepted."""

    wamid: str
    to: str
    type: str
    payload: dict[str, Any]
    accepted_at: float
    biz_opaque_callback_data: str | None = None
    status: str = "accepted"
    error_code: int | None = None

    def to_json(self) -> dict[str, Any]:
        """Return the entry as a JSON-ready dict."""
        return asdict(self)


class SendError(Exception):
    """A Graph API error answer for a send request."""

    def __init__(self, code: int, title: str, details: str, http_status: int = 400) -> None:
        super().__init__(f"({code}) {title}: {details}")
        self.code = code
        self.title = title
        self.details = details
        self.http_status = http_status


def sign_body(app_secret: str, body: bytes) -> str:
    """Return the X-Hub-Signature-256 header value for a webhook body."""
    digest = hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def encode_webhook(envelope: dict[str, Any]) -> bytes:
    """Serialise a webhook body the way Meta does."""
    # Meta signs an escaped-unicode payload (lowercase hex) and escapes "/" as "\/", so a
    # receiver must verify the raw bytes, never a re-serialisation:
    # https://developers.facebook.com/docs/graph-api/webhooks/getting-started#validate-payloads
    text = json.dumps(envelope, ensure_ascii=True, separators=(",", ":"))
    return text.replace("/", "\\/").encode("ascii")


def error_body(code: int, title: str, details: str, fbtrace_id: str) -> dict[str, Any]:
    """Return a Graph API error body."""
    return {
        "error": {
            "message": f"(#{code}) {title}",
            "type": "OAuthException",
            "code": code,
            "error_data": {"messaging_product": "whatsapp", "details": details},
            "fbtrace_id": fbtrace_id,
        }
    }


def _digits(value: str) -> str:
    """Return a phone number reduced to its digits."""
    return re.sub(r"[\s\-().+]", "", value)


def _missing(details: str) -> SendError:
    """Return a 131008 error."""
    return SendError(131008, "Required parameter is missing", details)


def _invalid(details: str) -> SendError:
    """Return a 131009 error."""
    return SendError(131009, "Parameter value is not valid", details)


def _need_str(obj: dict[str, Any], key: str, where: str, max_len: int, min_len: int = 1) -> str:
    """Return obj[key] as a string of allowed length or raise 131008/131009."""
    value = obj.get(key)
    if value is None:
        raise _missing(f"Parameter '{where}.{key}' is required.")
    if not isinstance(value, str):
        raise _invalid(f"Parameter '{where}.{key}' must be a string.")
    if not min_len <= len(value) <= max_len:
        raise _invalid(
            f"Parameter '{where}.{key}' must be {min_len} to {max_len} characters, got {len(value)}."
        )
    return value


def _opt_str(obj: dict[str, Any], key: str, where: str, max_len: int) -> None:
    """Check an optional string field."""
    if key in obj and obj[key] is not None:
        _need_str(obj, key, where, max_len, min_len=0)


def _validate_text(obj: dict[str, Any]) -> None:
    """Validate a text object."""
    _need_str(obj, "body", "text", 4096)
    if "preview_url" in obj and not isinstance(obj["preview_url"], bool):
        raise _invalid("Parameter 'text.preview_url' must be a boolean.")


def _validate_template(obj: dict[str, Any]) -> None:
    """Validate a template object."""
    _need_str(obj, "name", "template", 512)
    language = obj.get("language")
    if not isinstance(language, dict):
        raise _missing("Parameter 'template.language' is required.")
    _need_str(language, "code", "template.language", 20)
    components = obj.get("components", [])
    if not isinstance(components, list):
        raise _invalid("Parameter 'template.components' must be a list.")
    for i, comp in enumerate(components):
        # Meta takes the component type in either case (client libraries send "BODY").
        if (
            not isinstance(comp, dict)
            or str(comp.get("type")).lower() not in TEMPLATE_COMPONENT_TYPES
        ):
            raise _invalid(
                f"template.components[{i}].type must be one of header, body, footer, button."
            )
        params = comp.get("parameters", [])
        if not isinstance(params, list) or not all(
            isinstance(p, dict) and isinstance(p.get("type"), str) for p in params
        ):
            raise _invalid(f"template.components[{i}].parameters must be objects with a type.")


def _validate_interactive(obj: dict[str, Any]) -> None:
    """Validate an interactive object."""
    itype = obj.get("type")
    if itype is None:
        raise _missing("Parameter 'interactive.type' is required.")
    if itype not in INTERACTIVE_TYPES:
        raise _invalid(f"interactive.type must be one of {', '.join(sorted(INTERACTIVE_TYPES))}.")
    action = obj.get("action")
    if not isinstance(action, dict):
        raise _missing("Parameter 'interactive.action' is required.")
    if itype not in ("button", "list"):
        return
    body = obj.get("body")
    if not isinstance(body, dict):
        raise _missing("Parameter 'interactive.body' is required.")
    _need_str(body, "text", "interactive.body", 1024)
    footer = obj.get("footer")
    if isinstance(footer, dict):
        _opt_str(footer, "text", "interactive.footer", 60)
    if itype == "button":
        buttons = action.get("buttons")
        if not isinstance(buttons, list) or not buttons:
            raise _missing("Parameter 'interactive.action.buttons' is required.")
        if len(buttons) > 3:
            raise _invalid(f"At most 3 reply buttons are allowed, got {len(buttons)}.")
        ids: set[str] = set()
        for i, button in enumerate(buttons):
            where = f"interactive.action.buttons[{i}]"
            if not isinstance(button, dict) or button.get("type") != "reply":
                raise _invalid(f"{where}.type must be 'reply'.")
            reply = button.get("reply")
            if not isinstance(reply, dict):
                raise _missing(f"Parameter '{where}.reply' is required.")
            ids.add(_need_str(reply, "id", f"{where}.reply", 256))
            _need_str(reply, "title", f"{where}.reply", 20)
        if len(ids) != len(buttons):
            raise _invalid("Reply button ids must be unique.")
        return
    _need_str(action, "button", "interactive.action", 20)
    sections = action.get("sections")
    if not isinstance(sections, list) or not sections:
        raise _missing("Parameter 'interactive.action.sections' is required.")
    if len(sections) > 10:
        raise _invalid(f"At most 10 sections are allowed, got {len(sections)}.")
    row_ids: list[str] = []
    for i, section in enumerate(sections):
        where = f"interactive.action.sections[{i}]"
        if not isinstance(section, dict):
            raise _invalid(f"{where} must be an object.")
        if len(sections) > 1:
            _need_str(section, "title", where, 24)
        rows = section.get("rows")
        if not isinstance(rows, list) or not rows:
            raise _missing(f"Parameter '{where}.rows' is required.")
        for j, row in enumerate(rows):
            if not isinstance(row, dict):
                raise _invalid(f"{where}.rows[{j}] must be an object.")
            row_ids.append(_need_str(row, "id", f"{where}.rows[{j}]", 200))
            _need_str(row, "title", f"{where}.rows[{j}]", 24)
            _opt_str(row, "description", f"{where}.rows[{j}]", 72)
    if len(row_ids) > 10:
        raise _invalid(f"At most 10 rows are allowed across all sections, got {len(row_ids)}.")
    if len(set(row_ids)) != len(row_ids):
        raise _invalid("List row ids must be unique.")


def _validate_media(kind: str, obj: dict[str, Any]) -> None:
    """Validate a media object."""
    media_id, link = obj.get("id"), obj.get("link")
    if not media_id and not link:
        raise _missing(f"Parameter '{kind}' needs an 'id' or a 'link'.")
    if link is not None and (
        not isinstance(link, str) or not link.startswith(("http://", "https://"))
    ):
        raise _invalid(f"Parameter '{kind}.link' must be an http(s) URL.")
    if media_id is not None and not isinstance(media_id, str):
        raise _invalid(f"Parameter '{kind}.id' must be a string.")
    if kind in ("image", "video", "document"):
        _opt_str(obj, "caption", kind, 1024)
    if kind == "document":
        _opt_str(obj, "filename", kind, 240)


def _validate_location(obj: dict[str, Any]) -> None:
    """Validate a location object."""
    for key, limit in (("latitude", 90.0), ("longitude", 180.0)):
        value = obj.get(key)
        if value is None:
            raise _missing(f"Parameter 'location.{key}' is required.")
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                raise _invalid(f"Parameter 'location.{key}' must be a number.") from None
        if isinstance(value, bool) or not isinstance(value, int | float) or abs(value) > limit:
            raise _invalid(f"Parameter 'location.{key}' must be a number within ±{limit:g}.")
    _opt_str(obj, "name", "location", 1000)
    _opt_str(obj, "address", "location", 1000)


def _validate_contacts(value: Any) -> None:
    """Validate a contacts list."""
    if not isinstance(value, list) or not value:
        raise _missing("Parameter 'contacts' must be a non-empty list.")
    for i, contact in enumerate(value):
        name = contact.get("name") if isinstance(contact, dict) else None
        if not isinstance(name, dict):
            raise _missing(f"Parameter 'contacts[{i}].name' is required.")
        _need_str(name, "formatted_name", f"contacts[{i}].name", 1000)


def _validate_reaction(obj: dict[str, Any]) -> None:
    """Validate a reaction object."""
    _need_str(obj, "message_id", "reaction", 256)
    if not isinstance(obj.get("emoji"), str):
        raise _missing("Parameter 'reaction.emoji' is required (empty string removes it).")


def validate_send(payload: Any) -> tuple[str, str]:
    """Validate a send request body like the Cloud API and return (to, type)."""
    if not isinstance(payload, dict):
        raise SendError(100, "Invalid parameter", "The request body must be a JSON object.")
    if payload.get("messaging_product") != "whatsapp":
        raise SendError(
            100, "Invalid parameter", "The parameter messaging_product is required: 'whatsapp'."
        )
    if payload.get("recipient_type", "individual") != "individual":
        raise SendError(100, "Invalid parameter", "recipient_type must be 'individual'.")
    to = payload.get("to")
    if not isinstance(to, str) or not to.strip():
        raise SendError(100, "Invalid parameter", "The parameter to is required.")
    if not re.fullmatch(r"\d{5,20}", _digits(to)):
        raise _invalid("Parameter 'to' must be a phone number with 5 to 20 digits.")
    # The Cloud API treats a missing "type" as "text".
    mtype = payload.get("type", "text")
    if mtype not in SEND_TYPES:
        raise SendError(
            100,
            "Invalid parameter",
            f"Param type must be one of {{{', '.join(sorted(SEND_TYPES))}}} - got {mtype!r}.",
        )
    obj = payload.get(mtype)
    if mtype == "contacts":
        _validate_contacts(obj)
    elif not isinstance(obj, dict):
        raise _missing(f"Parameter '{mtype}' is required for messages of type {mtype}.")
    elif mtype == "text":
        _validate_text(obj)
    elif mtype == "template":
        _validate_template(obj)
    elif mtype == "interactive":
        _validate_interactive(obj)
    elif mtype in MEDIA_TYPES:
        _validate_media(mtype, obj)
    elif mtype == "location":
        _validate_location(obj)
    elif mtype == "reaction":
        _validate_reaction(obj)
    context = payload.get("context")
    if context is not None and (
        not isinstance(context, dict) or not isinstance(context.get("message_id"), str)
    ):
        raise _invalid("Parameter 'context' must be an object with a message_id.")
    callback = payload.get("biz_opaque_callback_data")
    if callback is not None and (not isinstance(callback, str) or len(callback) > 512):
        raise _invalid("biz_opaque_callback_data must be a string of at most 512 characters.")
    return to, mtype


def summarize(mtype: str, payload: dict[str, Any]) -> str:
    """Return a short human-readable text for an outbound message."""
    obj = payload.get(mtype)
    if mtype == "text" and isinstance(obj, dict):
        return str(obj.get("body", ""))
    if mtype == "template" and isinstance(obj, dict):
        texts = [
            str(p.get("text", ""))
            for c in obj.get("components", [])
            for p in c.get("parameters", [])
            if p.get("type") == "text"
        ]
        lang = obj.get("language", {}).get("code", "")
        return f"[template {obj.get('name')} ({lang})] " + " | ".join(texts)
    if mtype == "interactive" and isinstance(obj, dict):
        return str(obj.get("body", {}).get("text", f"[interactive {obj.get('type')}]"))
    if mtype in MEDIA_TYPES and isinstance(obj, dict):
        return f"[{mtype}] " + str(obj.get("caption") or obj.get("link") or obj.get("id"))
    if mtype == "location" and isinstance(obj, dict):
        where = obj.get("name") or f"{obj.get('latitude')}, {obj.get('longitude')}"
        return f"[location] {where}"
    if mtype == "contacts" and isinstance(obj, list):
        return "[contacts] " + ", ".join(c["name"]["formatted_name"] for c in obj)
    if mtype == "reaction" and isinstance(obj, dict):
        return f"[reaction {obj.get('emoji')}]"
    return f"[{mtype}]"


def _inbound_summary(message: dict[str, Any]) -> str:
    """A short text for a message the simulated customer sent."""
    obj = message.get(message.get("type", ""))
    if isinstance(obj, dict):
        reply = obj.get("button_reply") or obj.get("list_reply")
        if isinstance(reply, dict):
            return f"[{reply.get('title', '')}]"
    try:
        return summarize(str(message.get("type", "")), message)
    except (KeyError, TypeError, AttributeError):
        return f"[{message.get('type')}]"


def reply_options(mtype: str, payload: dict[str, Any]) -> list[dict[str, str]]:
    """Return the reply buttons or list rows a customer can pick for an interactive message."""
    obj = payload.get(mtype)
    if mtype != "interactive" or not isinstance(obj, dict):
        return []
    action = obj.get("action", {})
    if obj.get("type") == "button":
        return [
            {"kind": "button_reply", "id": b["reply"]["id"], "title": b["reply"]["title"]}
            for b in action.get("buttons", [])
        ]
    if obj.get("type") == "list":
        return [
            {
                "kind": "list_reply",
                "id": r["id"],
                "title": r["title"],
                "description": r.get("description", ""),
            }
            for s in action.get("sections", [])
            for r in s.get("rows", [])
        ]
    return []


def _load_phone_page() -> str:
    """Return the HTML of the simulated customer phone."""
    return (
        resources.files("tresen.sim")
        .joinpath("templates/whatsapp_phone.html")
        .read_text(encoding="utf-8")
    )


class WhatsAppSimulator(SimBase):
    """A simulated WhatsApp Business Cloud API for one business phone number."""

    config: WhatsAppSimConfig
    ledger: list[LedgerEntry]

    def __init__(self, config: WhatsAppSimConfig | None = None) -> None:
        self.config = config or WhatsAppSimConfig()
        if self.config.window_violation not in ("response", "status"):
            raise ValueError("window_violation must be 'response' or 'status'")
        self._start(self.config)
        self.templates = TemplateStore(review_seconds=self.config.template_review_seconds)
        self._windows: dict[str, float] = {}
        self._conversations: dict[str, tuple[str, float]] = {}
        burst = max(1.0, self.config.mps)
        self._bucket = TokenBucket(self.config.mps, burst)
        self._pair_buckets: dict[str, TokenBucket] = {}
        self._phone_page: str | None = None
        self.media: dict[str, tuple[bytes, str]] = {}
        self.media_downloads = 0
        self.media_failures = 0
        """How many of the next media downloads answer 503 (a CDN hiccup)."""
        self.fetched_links: dict[str, tuple[int, bytes, str]] = {}
        self.uploads: list[dict[str, Any]] = []
        self.read_receipts: list[dict[str, Any]] = []
        """Read receipts (and typing indicators) the business sent for customers' messages."""
        self.app = self._fast_sends(self._build_app())

    # -- windows -----------------------------------------------------------------------

    def open_window(self, wa_id: str, at: float | None = None) -> None:
        """Open (or renew) the customer service window for wa_id, as of `at` (default now)."""
        self._windows[_digits(wa_id)] = time.time() if at is None else at

    def close_window(self, wa_id: str) -> None:
        """Close the customer service window for wa_id."""
        self._windows.pop(_digits(wa_id), None)

    def window_open(self, wa_id: str) -> bool:
        """Return whether the service window for wa_id is open."""
        opened = self._windows.get(_digits(wa_id))
        return opened is not None and time.time() - opened < self.config.window_seconds

    # -- bookkeeping -------------------------------------------------------------------

    def duplicates(self) -> int:
        """Count accepted messages whose callback data or (to, type, body) was accepted before."""

        def key(entry: LedgerEntry) -> tuple[str, ...]:
            if entry.biz_opaque_callback_data:
                return ("cb", entry.biz_opaque_callback_data)
            content = json.dumps(entry.payload.get(entry.type), sort_keys=True)
            return ("msg", _digits(entry.to), entry.type, content)

        return self._repeats.count(self.ledger, key)

    def messages_for(self, wa_id: str) -> list[dict[str, Any]]:
        """Return the business messages sent to wa_id with their last status."""
        target = _digits(wa_id)
        return [
            {
                "id": e.wamid,
                "type": e.type,
                "summary": summarize(e.type, e.payload),
                "options": reply_options(e.type, e.payload),
                "status": e.status,
                "error_code": e.error_code,
                "accepted_at": e.accepted_at,
            }
            for e in self.ledger
            if _digits(e.to) == target
        ]

    def _new_id(self, prefix: str, nbytes: int = 24) -> str:
        """Return a random id like Meta's."""
        raw = self._rng.randbytes(nbytes)
        return prefix + base64.urlsafe_b64encode(raw).decode().rstrip("=")

    # -- sending -----------------------------------------------------------------------

    def _accept(self, payload: dict[str, Any], to: str, mtype: str) -> LedgerEntry:
        """Apply rate, pair and window rules; ledger the message and schedule its statuses."""
        cfg = self.config
        wa_id = _digits(to)
        if not self._bucket.take():
            raise SendError(
                130429,
                "Rate limit hit",
                "Cloud API message throughput has been reached.",
                http_status=429,
            )
        if cfg.pair_limit is not None:
            burst, seconds = cfg.pair_limit
            bucket = self._pair_buckets.get(wa_id)
            if bucket is None:
                bucket = self._pair_buckets[wa_id] = TokenBucket(1.0 / seconds, float(burst))
            if not bucket.take():
                raise SendError(
                    131056,
                    "(Business Account, Consumer Account) pair rate limit hit",
                    "Message failed to send because there were too many messages sent from "
                    "this phone number to the same phone number in a short period of time.",
                )
        window_failure = mtype != "template" and not self.window_open(wa_id)
        if window_failure and cfg.window_violation == "response":
            raise SendError(131047, "Re-engagement message", _WINDOW_DETAILS)
        callback = payload.get("biz_opaque_callback_data")
        entry = LedgerEntry(
            wamid=self._new_id("wamid."),
            to=to,
            type=mtype,
            payload=payload,
            accepted_at=time.time(),
            biz_opaque_callback_data=callback if isinstance(callback, str) else None,
        )
        self.ledger.append(entry)
        self._schedule_statuses(entry, window_failure)
        link = (payload.get(mtype) or {}).get("link") if mtype in MEDIA_TYPES else None
        if isinstance(link, str):
            self._spawn(self._fetch_link(entry.wamid, link))
        return entry

    async def _fetch_link(self, wamid: str, link: str) -> None:
        """Download a media link as WhatsApp does before delivering it; keep what came back."""
        try:
            response = await self._fetch(link)
            self.fetched_links[wamid] = (
                response.status_code,
                response.content,
                response.headers.get("content-type", ""),
            )
        except httpx.HTTPError as exc:
            self.fetched_links[wamid] = (0, type(exc).__name__.encode(), "")

    def _conversation(self, wa_id: str, category: str) -> dict[str, Any]:
        """Return the conversation object for wa_id, starting one if needed."""
        now = time.time()
        current = self._conversations.get(wa_id)
        if current is None or current[1] <= now:
            current = (self._rng.randbytes(16).hex(), now + 24 * 3600)
            self._conversations[wa_id] = current
        return {
            "id": current[0],
            "expiration_timestamp": str(int(current[1])),
            "origin": {"type": category},
        }

    def _status_object(
        self, entry: LedgerEntry, status: str, at: float, failed: bool
    ) -> dict[str, Any]:
        """Build one entry of a `statuses` array."""
        wa_id = _digits(entry.to)
        obj: dict[str, Any] = {
            "id": entry.wamid,
            "status": status,
            "timestamp": str(int(at)),
            "recipient_id": wa_id,
        }
        if status in ("sent", "delivered"):
            category = "utility" if entry.type == "template" else "service"
            conversation = self._conversation(wa_id, category)
            if status == "delivered":
                conversation.pop("expiration_timestamp")
            obj["conversation"] = conversation
            obj["pricing"] = {"billable": True, "pricing_model": "CBP", "category": category}
        if failed:
            obj["errors"] = [
                {
                    "code": 131047,
                    "title": "Re-engagement message",
                    "message": "Re-engagement message",
                    "error_data": {"details": _WINDOW_DETAILS},
                }
            ]
        if entry.biz_opaque_callback_data is not None:
            obj["biz_opaque_callback_data"] = entry.biz_opaque_callback_data
        return obj

    def _schedule_statuses(self, entry: LedgerEntry, failed: bool) -> None:
        """Post the status webhooks for an accepted message in the background."""
        cfg = self.config
        if failed:
            names = ["failed"]
        else:
            names = ["sent", "delivered"] + (["read"] if cfg.auto_read else [])
        delays = list(cfg.status_delays[: len(names)])
        post_delays = list(delays)
        if cfg.out_of_order and len(post_delays) > 1:
            self._rng.shuffle(post_delays)
            if post_delays == delays:
                post_delays.reverse()
        for name, logical_delay, post_delay in zip(names, delays, post_delays, strict=True):
            status = self._status_object(entry, name, entry.accepted_at + logical_delay, failed)
            self._call_later(post_delay, partial(self._post_status, entry, status))

    def _post_status(self, entry: LedgerEntry, status: dict[str, Any]) -> None:
        """Move the entry's status forward and queue its status webhook."""
        name = status["status"]
        if STATUS_RANK[name] > STATUS_RANK[entry.status]:
            entry.status = name
            if name == "failed":
                entry.error_code = status["errors"][0]["code"]
        self._queue(value={"statuses": [status]})

    def _mark_read(self, payload: dict[str, Any]) -> dict[str, Any]:
        """A read receipt for a customer's message, perhaps with a typing indicator.

        https://developers.facebook.com/docs/whatsapp/cloud-api/typing-indicators
        """
        if payload.get("messaging_product") != "whatsapp":
            raise SendError(
                100, "Invalid parameter", "The parameter messaging_product is required: 'whatsapp'."
            )
        if payload.get("status") != "read":
            raise _invalid("Parameter 'status' must be 'read'.")
        message_id = payload.get("message_id")
        if not isinstance(message_id, str) or not message_id:
            raise _missing("Parameter 'message_id' is required.")
        if not any(m.get("id") == message_id for m in self.inbound):
            raise SendError(100, "Invalid parameter", f"Message {message_id!r} was not found.")
        typing = payload.get("typing_indicator")
        if typing is not None and (not isinstance(typing, dict) or typing.get("type") != "text"):
            raise _invalid("Parameter 'typing_indicator.type' must be 'text'.")
        self.read_receipts.append(
            {"message_id": message_id, "typing": typing is not None, "at": time.time()}
        )
        return {"success": True}

    def handle_send(
        self, version: str, phone_number_id: str, authorization: str | None, raw: bytes
    ) -> tuple[int, dict[str, Any] | None, str | None]:
        """Process one send request; return (http status, body, fault kind)."""
        cfg = self.config
        fbtrace = self._new_id("", 9)
        try:
            token = authorization.removeprefix("Bearer ").strip() if authorization else ""
            if (
                not authorization
                or not authorization.startswith("Bearer ")
                or not hmac.compare_digest(token.encode(), cfg.access_token.encode())
            ):
                raise SendError(
                    190,
                    "Invalid OAuth access token",
                    "Invalid OAuth access token - Cannot parse access token",
                    http_status=401,
                )
            if not _VERSION_RE.match(version):
                raise SendError(100, "Invalid parameter", f"Unknown API version {version!r}.")
            if phone_number_id != cfg.phone_number_id:
                raise SendError(
                    100,
                    "Invalid parameter",
                    f"Unsupported post request. Object with ID '{phone_number_id}' does not "
                    "exist, cannot be loaded due to missing permissions, or does not support "
                    "this operation.",
                )
            try:
                payload = json.loads(raw)
            except (ValueError, UnicodeDecodeError):
                raise SendError(100, "Invalid parameter", "The body is not valid JSON.") from None
            if isinstance(payload, dict) and "status" in payload and "to" not in payload:
                return 200, self._mark_read(payload), None
            to, mtype = validate_send(payload)
            if mtype == "template":
                template = payload["template"]
                try:
                    self.templates.check_send(template["name"], template["language"]["code"])
                except TemplateError as exc:
                    raise SendError(exc.code, "Template name does not exist", exc.details) from None
            fault = self._decide_fault()
            if fault is not None:
                self.faults[fault] += 1
                if self._rng.random() < cfg.fault_after_accept_share:
                    try:
                        self._accept(payload, to, mtype)
                        self.faults_after_accept += 1
                    except SendError:
                        pass
                return 0, None, fault
            entry = self._accept(payload, to, mtype)
        except SendError as exc:
            self.rejected[exc.code] += 1
            return exc.http_status, error_body(exc.code, exc.title, exc.details, fbtrace), None
        return (
            200,
            {
                "messaging_product": "whatsapp",
                "contacts": [{"input": to, "wa_id": _digits(to)}],
                "messages": [{"id": entry.wamid}],
            },
            None,
        )

    async def send_endpoint(
        self, version: str, phone_number_id: str, authorization: str | None, raw: bytes
    ) -> ASGIApp:
        """Handle POST /{version}/{phone_number_id}/messages; return the raw ASGI answer."""
        status, body, fault = self.handle_send(version, phone_number_id, authorization, raw)
        if fault is None:
            assert body is not None
            return json_app(status, body)
        unavailable = error_body(
            131016, "Service unavailable", "Service unavailable", self._new_id("", 9)
        )
        return await self._fault_answer(
            fault, unavailable, statuses=(500, 503), timeout_status=500, partial=_DROPPED
        )

    async def templates_endpoint(
        self, version: str, waba_id: str, request: Request[Any, Any, Any]
    ) -> ASGIApp:
        """Handle GET and POST /{version}/{waba_id}/message_templates."""
        fbtrace = self._new_id("", 9)
        auth = request.headers.get("authorization") or ""
        token = auth.removeprefix("Bearer ").strip()
        if not auth.startswith("Bearer ") or not hmac.compare_digest(
            token.encode(), self.config.access_token.encode()
        ):
            body = error_body(
                190, "Invalid OAuth access token", "Invalid OAuth access token", fbtrace
            )
            return json_app(401, body)
        if not _VERSION_RE.match(version) or waba_id != self.config.waba_id:
            details = (
                f"Object with ID '{waba_id}' does not exist or does not support this operation."
            )
            return json_app(400, error_body(100, "Invalid parameter", details, fbtrace))
        if request.method == "GET":
            return json_app(200, self.templates.listing(dict(request.query_params)))
        try:
            payload = json.loads(await request.body())
            return json_app(200, self.templates.submit(payload))
        except ValueError:
            return json_app(
                400, error_body(100, "Invalid parameter", "The body is not JSON.", fbtrace)
            )
        except TemplateError as exc:
            return json_app(400, error_body(exc.code, "Invalid parameter", exc.details, fbtrace))

    # -- webhooks ----------------------------------------------------------------------

    def _envelope(self, value: dict[str, Any]) -> dict[str, Any]:
        """Wrap a change value in Meta's webhook envelope."""
        cfg = self.config
        return {
            "object": "whatsapp_business_account",
            "entry": [
                {
                    "id": cfg.waba_id,
                    "changes": [
                        {
                            "field": "messages",
                            "value": {
                                "messaging_product": "whatsapp",
                                "metadata": {
                                    "display_phone_number": _digits(cfg.display_phone_number),
                                    "phone_number_id": cfg.phone_number_id,
                                },
                                **value,
                            },
                        }
                    ],
                }
            ],
        }

    async def _post_once(self, body: bytes) -> bool:
        """POST one signed webhook; return whether it got a 200."""
        url = self.config.webhook_url
        if url is None:
            return True
        headers = {
            "Content-Type": "application/json",
            "X-Hub-Signature-256": sign_body(self.config.app_secret, body),
            "User-Agent": "facebookexternalua",
        }
        try:
            response = await self._client.post(url, content=body, headers=headers)
        except httpx.HTTPError:
            return False
        return response.status_code == 200

    def _queue(self, value: dict[str, Any]) -> asyncio.Future[bool] | None:
        """Sign a change value and queue it for the webhook (sometimes twice)."""
        if self.config.webhook_url is None or self._closing.is_set():
            return None
        body = encode_webhook(self._envelope(value))
        return self._queue_webhook(lambda: self._post_once(body))

    async def _deliver(self, value: dict[str, Any]) -> bool:
        """Sign and post a change value, sometimes twice; whether it got through."""
        queued = self._queue(value)
        return False if queued is None else await queued

    # -- customer side -----------------------------------------------------------------

    def build_inbound(
        self,
        wa_id: str,
        *,
        type: str = "text",
        body: dict[str, Any] | str | None = None,
        context_id: str | None = None,
    ) -> dict[str, Any]:
        """Build one inbound `messages` entry of any type."""
        wa = _digits(wa_id)
        if not re.fullmatch(r"\d{5,20}", wa):
            raise ValueError("wa_id must be a phone number with 5 to 20 digits")
        if not isinstance(type, str) or not _TYPE_NAME_RE.match(type):
            raise ValueError("type must be a lower-case name like 'text' or 'image'")
        if body is not None and not isinstance(body, dict | str):
            raise ValueError("body must be an object, a string or null")
        if context_id is not None and not isinstance(context_id, str):
            raise ValueError("context_id must be a string")
        msg: dict[str, Any] = {
            "from": wa,
            "id": self._new_id("wamid."),
            "timestamp": str(int(time.time())),
            "type": type,
        }
        if type == "text":
            text = body if isinstance(body, str) else (body or {}).get("body")
            if not isinstance(text, str) or not text:
                raise ValueError("a text message needs a non-empty body")
            msg["text"] = {"body": text}
        elif type in MEDIA_TYPES:
            media: dict[str, Any] = {
                "id": str(self._rng.randrange(10**15, 10**16)),
                "sha256": self._rng.randbytes(32).hex(),
                **_MEDIA_DEFAULTS[type],
            }
            if isinstance(body, str):
                media["caption" if type != "document" else "filename"] = body
            elif body:
                media.update(body)
            media_type = str(media.get("mime_type", "")).split(";")[0]
            self.add_media(media["id"], SAMPLE_MEDIA.get(media_type, b"sample"), media_type)
            msg[type] = media
        elif type == "location":
            location: dict[str, Any] = {"latitude": 52.520008, "longitude": 13.404954}
            if isinstance(body, str):
                location["name"] = body
            elif body:
                location.update(body)
            msg["location"] = location
        elif type == "contacts":
            name = body if isinstance(body, str) else "Erika Mustermann"
            contact: dict[str, Any] = {
                "name": {"formatted_name": name, "first_name": name.split(" ")[0]},
                "phones": [{"phone": "+49 170 0000000", "type": "CELL", "wa_id": "491700000000"}],
            }
            if isinstance(body, dict):
                contact = body
            msg["contacts"] = [contact]
        elif type == "reaction":
            reaction: dict[str, Any] = {"emoji": body if isinstance(body, str) else "\U0001f44d"}
            if isinstance(body, dict):
                reaction.update(body)
            if not reaction.get("message_id"):
                reaction["message_id"] = context_id or self._last_business_message(wa)
            if not reaction["message_id"]:
                raise ValueError("a reaction needs a message_id and no message was sent to wa_id")
            msg["reaction"] = reaction
            context_id = None
        elif type == "interactive":
            msg["interactive"] = _interactive_reply(body)
        elif type == "button":
            if isinstance(body, dict):
                button = {"payload": body.get("payload", body.get("text")), **body}
            else:
                button = {"payload": body or "Yes", "text": body or "Yes"}
            msg["button"] = button
        elif type in ("unsupported", "unknown"):
            msg["errors"] = [
                {
                    "code": 131051,
                    "title": "Message type unknown",
                    "message": "Message type unknown",
                    "error_data": {"details": "Message type is currently not supported."},
                }
            ]
            msg["unsupported"] = {"type": body if isinstance(body, str) else "edit"}
        else:
            msg[type] = body if isinstance(body, dict) else {"value": body}
        if context_id:
            msg["context"] = {"from": _digits(self.config.display_phone_number), "id": context_id}
        return msg

    def _last_business_message(self, wa_id: str) -> str | None:
        """Return the wamid of the last message the business sent to wa_id."""
        for entry in reversed(self.ledger):
            if _digits(entry.to) == wa_id:
                return entry.wamid
        return None

    async def customer_sends(
        self,
        wa_id: str,
        *,
        name: str = "Kunde",
        type: str = "text",
        body: dict[str, Any] | str | None = None,
        context_id: str | None = None,
        wait: bool = True,
        media: bytes | None = None,
    ) -> str:
        """Post a signed inbound message webhook from a customer and return its wamid.

        `media` replaces the sample bytes the media id serves (of the declared mime_type).
        """
        if not isinstance(name, str) or len(name) > 256:
            raise ValueError("name must be a string of at most 256 characters")
        msg = self.build_inbound(wa_id, type=type, body=body, context_id=context_id)
        if media is not None and type in MEDIA_TYPES:
            obj = msg[type]
            obj["sha256"] = hashlib.sha256(media).hexdigest()
            self.add_media(obj["id"], media, str(obj.get("mime_type", "")))
        self.open_window(msg["from"])
        self.inbound.append(msg)
        value = {"contacts": [{"profile": {"name": name}, "wa_id": msg["from"]}], "messages": [msg]}
        if wait:
            await self._deliver(value)
        else:
            self._queue(value)
        return str(msg["id"])

    def add_media(self, media_id: str, content: bytes, mime_type: str) -> None:
        """Serve `content` under a media id (as the Graph API serves a customer's file)."""
        self.media[media_id] = (content, mime_type)

    def _authorised(self, auth: str | None) -> bool:
        expected = f"Bearer {self.config.access_token}".encode()
        return auth is not None and hmac.compare_digest(auth.encode(), expected)

    def phone_number(self) -> dict[str, Any]:
        """GET /{version}/{phone-number-id}: the business number's profile."""
        cfg = self.config
        return {
            "id": cfg.phone_number_id,
            "display_phone_number": cfg.display_phone_number,
            "verified_name": "tresen Simulator",
            "code_verification_status": "VERIFIED",
            "quality_rating": "GREEN",
            "platform_type": "CLOUD_API",
            "throughput": {"level": "STANDARD"},
            "name_status": "APPROVED",
            "messaging_limit_tier": "TIER_1K",
        }

    def media_delete(self, media_id: str, auth: str | None) -> tuple[int, dict[str, Any]]:
        """DELETE /{version}/{media-id}."""
        if not self._authorised(auth):
            return 401, error_body(190, "Invalid OAuth access token", "", self._new_id("A", 8))
        if self.media.pop(media_id, None) is None:
            return 400, error_body(
                100, "Invalid parameter", "Unsupported delete request.", self._new_id("A", 8)
            )
        return 200, {"success": True}

    def media_info(self, media_id: str, auth: str | None) -> tuple[int, dict[str, Any]]:
        """GET /{version}/{media-id}: the short-lived download URL of a media object."""
        if not self._authorised(auth):
            return 401, error_body(190, "Invalid OAuth access token", "", self._new_id("A", 8))
        if media_id == self.config.phone_number_id:
            return 200, self.phone_number()
        found = self.media.get(media_id)
        if found is None:
            return 400, error_body(
                100, "Invalid parameter", "Unsupported get request.", self._new_id("A", 8)
            )
        content, mime = found
        return 200, {
            "messaging_product": "whatsapp",
            "url": f"{self.base_url}/_sim/media/{media_id}/download",
            "mime_type": mime,
            "sha256": hashlib.sha256(content).hexdigest(),
            "file_size": len(content),
            "id": media_id,
        }

    # -- web app -----------------------------------------------------------------------

    def phone_page(self) -> str:
        """Return the simulated customer phone page."""
        if self._phone_page is None:
            self._phone_page = _load_phone_page()
        return self._phone_page

    def _fast_sends(self, app: ASGIApp) -> ASGIApp:
        """Answer POST /{version}/{phone_number_id}/messages without the router (bulk sends)."""

        async def fast(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] == "http" and scope.get("method") == "POST":
                parts = scope["path"].split("/")
                if (
                    len(parts) == 4
                    and not parts[0]
                    and parts[1]
                    and parts[2]
                    and parts[3] == "messages"
                ):
                    chunks: list[bytes] = []
                    while True:
                        message: Any = await receive()
                        chunks.append(message.get("body", b""))
                        if not message.get("more_body"):
                            break
                    auth = next(
                        (v.decode("latin-1") for k, v in scope["headers"] if k == b"authorization"),
                        None,
                    )
                    answer = await self.send_endpoint(parts[1], parts[2], auth, b"".join(chunks))
                    await answer(scope, receive, send)
                    return
            await app(scope, receive, send)

        return fast

    def _build_app(self) -> Litestar:
        """Build the Litestar app."""
        sim = self

        @post("/{version:str}/{phone_number_id:str}/messages", status_code=200)
        async def messages_endpoint(
            version: FromPath[str],
            phone_number_id: FromPath[str],
            request: Request[Any, Any, Any],
        ) -> ASGIApp:
            raw = await request.body()
            auth = request.headers.get("authorization")
            return await sim.send_endpoint(version, phone_number_id, auth, raw)

        @route(
            "/{version:str}/{waba_id:str}/message_templates",
            http_method=[HttpMethod.GET, HttpMethod.POST],
        )
        async def message_templates(
            version: FromPath[str], waba_id: FromPath[str], request: Request[Any, Any, Any]
        ) -> ASGIApp:
            return await sim.templates_endpoint(version, waba_id, request)

        @post("/{version:str}/{phone_number_id:str}/media", status_code=200)
        async def media_upload(
            version: FromPath[str],
            phone_number_id: FromPath[str],
            request: Request[Any, Any, Any],
        ) -> Response[Any]:
            fbtrace = sim._new_id("A", 8)
            if not sim._authorised(request.headers.get("authorization")):
                return Response(
                    error_body(190, "Invalid OAuth access token", "", fbtrace), status_code=401
                )
            if phone_number_id != sim.config.phone_number_id:
                return Response(
                    error_body(100, "Invalid parameter", "Unknown phone number id.", fbtrace),
                    status_code=400,
                )
            if not request.headers.get("content-type", "").startswith("multipart/form-data"):
                return Response(
                    error_body(100, "Invalid parameter", "Upload as multipart/form-data.", fbtrace),
                    status_code=400,
                )
            form = await request.form()
            upload = form.get("file")
            if form.get("messaging_product") != "whatsapp" or not isinstance(upload, UploadFile):
                return Response(
                    error_body(
                        100,
                        "Invalid parameter",
                        "messaging_product=whatsapp and a file are required.",
                        fbtrace,
                    ),
                    status_code=400,
                )
            content = await upload.read()
            media_id = str(sim._rng.randrange(10**15, 10**16))
            mime = str(form.get("type") or upload.content_type)
            sim.add_media(media_id, content, mime)
            sim.uploads.append(
                {"id": media_id, "filename": upload.filename, "type": mime, "content": content}
            )
            return Response({"id": media_id})

        @get("/{version:str}/{media_id:str}", sync_to_thread=False)
        def media_endpoint(
            version: FromPath[str], media_id: FromPath[str], request: Request[Any, Any, Any]
        ) -> Response[Any]:
            status, body = sim.media_info(media_id, request.headers.get("authorization"))
            return Response(body, status_code=status)

        @delete("/{version:str}/{media_id:str}", status_code=200, sync_to_thread=False)
        def media_delete(
            version: FromPath[str], media_id: FromPath[str], request: Request[Any, Any, Any]
        ) -> Response[Any]:
            status, body = sim.media_delete(media_id, request.headers.get("authorization"))
            return Response(body, status_code=status)

        @get("/_sim/media/{media_id:str}/download", sync_to_thread=False)
        def media_download(
            media_id: FromPath[str], request: Request[Any, Any, Any]
        ) -> Response[Any]:
            # The real download URL also needs the access token in the Authorization header.
            if not sim._authorised(request.headers.get("authorization")):
                return Response(b"", status_code=401)
            found = sim.media.get(media_id)
            if found is None:
                return Response(b"", status_code=404)
            if sim.media_failures > 0:
                sim.media_failures -= 1
                return Response(b"", status_code=503)
            sim.media_downloads += 1
            return Response(found[0], media_type=found[1] or "application/octet-stream")

        @get("/", media_type=MediaType.HTML, sync_to_thread=False)
        def phone() -> str:
            return sim.phone_page()

        @post("/_sim/inbound", status_code=200)
        async def inbound(request: Request[Any, Any, Any]) -> dict[str, str]:
            try:
                data = json.loads(await request.body())
            except ValueError:
                raise HTTPException(status_code=400, detail="body must be JSON") from None
            if not isinstance(data, dict) or not isinstance(data.get("wa_id"), str):
                raise HTTPException(status_code=400, detail="wa_id (string) is required")
            try:
                wamid = await sim.customer_sends(
                    data["wa_id"],
                    name=data.get("name") or "Kunde",
                    type=data.get("type") or "text",
                    body=data.get("body"),
                    context_id=data.get("context_id"),
                    wait=False,
                )
            except ValueError as exc:
                raise HTTPException(status_code=400, detail=str(exc)) from None
            return {"id": wamid}

        @get("/_sim/messages", sync_to_thread=False)
        def messages(wa_id: FromQuery[str]) -> list[dict[str, Any]]:
            return sim.messages_for(wa_id)

        @get("/_sim/sent", sync_to_thread=False)
        def sent_by_customer(wa_id: FromQuery[str]) -> list[dict[str, Any]]:
            target = _digits(wa_id)
            return [
                {
                    "id": m["id"],
                    "type": m["type"],
                    "summary": _inbound_summary(m),
                    "at": float(m.get("timestamp", 0)),
                }
                for m in sim.inbound
                if m.get("from") == target
            ]

        return Litestar(
            route_handlers=[
                messages_endpoint,
                message_templates,
                media_upload,
                media_endpoint,
                media_delete,
                media_download,
                phone,
                inbound,
                messages,
                sent_by_customer,
                *sim._sim_routes(),
            ],
            openapi_config=None,
            # No logging set-up of its own: Litestar's default logs every request at INFO.
            logging_config=None,
        )


def _interactive_reply(body: dict[str, Any] | str | None) -> dict[str, Any]:
    """Build an inbound interactive object (button_reply or list_reply)."""
    if isinstance(body, str) or body is None:
        title = body or "Yes"
        return {"type": "button_reply", "button_reply": {"id": title, "title": title}}
    if "type" in body and isinstance(body.get(body["type"]), dict):
        return body
    for kind in ("button_reply", "list_reply"):
        if isinstance(body.get(kind), dict):
            return {"type": kind, kind: body[kind]}
    kind = "list_reply" if "description" in body else "button_reply"
    reply = {"id": body.get("id", body.get("title")), "title": body.get("title", body.get("id"))}
    if kind == "list_reply":
        reply["description"] = body["description"]
    if not reply["id"]:
        raise ValueError("an interactive reply needs an id or a title")
    return {"type": kind, kind: reply}


@asynccontextmanager
async def run_whatsapp_simulator(
    config: WhatsAppSimConfig | None = None, host: str = "127.0.0.1", port: int = 0
) -> AsyncIterator[WhatsAppSimulator]:
    """Serve a WhatsApp simulator over HTTP and yield it with base_url set."""
    async with serve_simulator(WhatsAppSimulator(config), host, port) as sim:
        yield sim


def add_cli(sim_app: typer.Typer) -> None:
    """Register `tresen sim whatsapp` and `tresen sim whatsapp-send` on the given Typer app."""

    @sim_app.command("whatsapp")
    def sim_whatsapp(
        port: Annotated[int, typer.Option(min=1, max=65535)] = DEFAULT_PORT,
        webhook: Annotated[str, typer.Option(help="tresen's webhook URL for the channel.")] = "",
        host: str = "127.0.0.1",
        access_token: str = "sim-access-token",
        app_secret: str = "sim-app-secret",
        phone_number_id: str = "100000000000001",
        mps: Annotated[float, typer.Option(help="Throughput cap, messages/s.")] = 80.0,
        fault_rate: Annotated[float, typer.Option(min=0.0, max=1.0)] = 0.0,
        out_of_order: bool = False,
        duplicate_rate: Annotated[float, typer.Option(min=0.0, max=1.0)] = 0.0,
        window_violation: Annotated[str, typer.Option(help="'response' or 'status'.")] = "response",
    ) -> None:
        """Run the WhatsApp Cloud API simulator on its own."""
        if window_violation not in ("response", "status"):
            fail("--window-violation must be 'response' or 'status'")
        if webhook and not webhook.startswith(("http://", "https://")):
            fail("--webhook must be an http(s) URL")
        config = WhatsAppSimConfig(
            access_token=access_token,
            app_secret=app_secret,
            phone_number_id=phone_number_id,
            webhook_url=webhook or None,
            mps=mps,
            fault_rate=fault_rate,
            out_of_order=out_of_order,
            duplicate_rate=duplicate_rate,
            window_violation=window_violation,
        )

        async def run() -> None:
            async with run_whatsapp_simulator(config, host=host, port=port) as sim:
                typer.echo(
                    f"WhatsApp simulator on {sim.base_url}  (customer phone: {sim.base_url}/)"
                )
                await asyncio.Event().wait()

        with suppress(KeyboardInterrupt):
            asyncio.run(run())

    @sim_app.command("whatsapp-send")
    def sim_whatsapp_send(
        sender: Annotated[
            str, typer.Option("--from", help="The customer's WhatsApp number (wa_id).")
        ],
        sim_url: Annotated[
            str, typer.Option(help="The running simulator.")
        ] = f"http://127.0.0.1:{DEFAULT_PORT}",
        kind: Annotated[
            str,
            typer.Option(
                "--type",
                help="text, image, location, reaction, interactive, ... or any other name.",
            ),
        ] = "text",
        body: Annotated[
            str, typer.Option(help="Text, or a JSON object for the type's fields.")
        ] = "",
        name: str = "Kunde",
    ) -> None:
        """Let the simulated customer send a message of any type to the business."""
        content: Any = body
        if body.strip().startswith("{"):
            try:
                content = json.loads(body)
            except json.JSONDecodeError as exc:
                fail(f"--body looks like JSON but is not valid: {exc}")
        try:
            response = httpx.post(
                f"{sim_url.rstrip('/')}/_sim/inbound",
                json={"wa_id": sender, "name": name, "type": kind, "body": content or None},
                timeout=10,
            )
        except httpx.HTTPError as exc:
            fail(f"cannot reach the simulator at {sim_url}: {type(exc).__name__}")
        if response.status_code != 200:
            fail(f"the simulator refused it ({response.status_code}): {response.text}")
        typer.echo(response.json()["id"])
