"""SMS through a Twilio-compatible Programmable Messaging API."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar, Literal
from urllib.parse import parse_qsl, quote, urlsplit, urlunsplit

import httpx
import msgspec

from tresen.channels.addresses import phone_digits
from tresen.channels.base import (
    AuthError,
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
    RateLimited,
    SendResult,
    StatusUpdate,
    TransientError,
    WebhookRejected,
    WebhookRequest,
    download,
)
from tresen.channels.calls import call_api
from tresen.domain.message import ContentKind, DeliveryState
from tresen.net.guard import same_host

__all__ = [
    "SegmentInfo",
    "SmsChannel",
    "SmsConfig",
    "classify_keyword",
    "segments",
    "signature",
]

DEFAULT_API_BASE = "https://api.twilio.com"
API_VERSION = "2010-04-01"
MAX_BODY = 1600
MAX_MEDIA = 10
REF_PARAM = "tresen_ref"
"""Query parameter on the StatusCallback URL that carries our message id back to us."""

_E164 = re.compile(r"^\+[1-9]\d{6,14}$")
_ACCOUNT_SID = re.compile(r"^AC[0-9a-fA-F]{32}$")
_SERVICE_SID = re.compile(r"^MG[0-9a-fA-F]{32}$")

# GSM 03.38 default alphabet and its extension table (each extension character costs an escape
# septet too): https://www.twilio.com/docs/glossary/what-is-gsm-7-character-encoding
GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = frozenset("\f^{}\\[~]|€")

# Twilio's default opt-out/opt-in/help words plus what German customers write:
# https://help.twilio.com/articles/223134027
OPT_OUT_WORDS = frozenset(
    {
        "STOP",
        "STOPALL",
        "UNSUBSCRIBE",
        "END",
        "QUIT",
        "CANCEL",
        "REVOKE",
        "OPTOUT",
        "STOPP",
        "ABMELDEN",
        "ABBESTELLEN",
        "KÜNDIGEN",
        "KUENDIGEN",
    }
)
OPT_IN_WORDS = frozenset({"START", "YES", "UNSTOP"})
HELP_WORDS = frozenset({"HELP", "INFO", "HILFE"})

# https://www.twilio.com/docs/api/errors
ERROR_REASONS: dict[str, str] = {
    "20003": "Twilio rejected the account SID or auth token",
    "20429": "too many requests to Twilio",
    "21211": "the recipient's phone number is not valid",
    "21408": "SMS to this region is not enabled for the account",
    "21610": "the recipient has opted out (texted STOP); they must text START before they can "
    "be reached again",
    "21611": "the sender's message queue is full",
    "21614": "the recipient's number is not a mobile number",
    "21617": "the message is longer than 1600 characters",
    "30001": "the message queue overflowed",
    "30002": "the Twilio account is suspended",
    "30003": "the recipient's handset is unreachable (switched off or out of coverage)",
    "30004": "the message was blocked (the recipient may have blocked the sender)",
    "30005": "the recipient's number is unknown or no longer in service",
    "30006": "the number is a landline or its carrier cannot receive SMS",
    "30007": "the carrier filtered the message as spam",
    "30008": "the carrier reported an unknown error",
    "30034": "the sender is not registered for A2P 10DLC",
}

_STATUS_STATES: dict[str, DeliveryState] = {
    "queued": DeliveryState.QUEUED,
    "sending": DeliveryState.SENDING,
    "sent": DeliveryState.SENT,
    "delivered": DeliveryState.DELIVERED,
    "read": DeliveryState.READ,
    "undelivered": DeliveryState.FAILED,
    "failed": DeliveryState.FAILED,
}
_IGNORED_STATUSES = frozenset(
    {"accepted", "scheduled", "canceled", "receiving", "received", "partially_delivered"}
)
_MEDIA_MESSAGE_TYPES = frozenset({"image", "video", "audio", "document", "sticker", "media"})


@dataclass(frozen=True)
class SegmentInfo:
    """How an SMS text is encoded and into how many parts it is split."""

    encoding: Literal["GSM-7", "UCS-2"]
    segments: int
    characters: int


def _pack(units: Iterable[int], single: int, multi: int) -> int:
    """Number of segments for a sequence of indivisible unit widths."""
    widths = list(units)
    total = sum(widths)
    if total == 0:
        return 0
    if total <= single:
        return 1
    count, used = 1, 0
    for width in widths:
        if used + width > multi:
            count, used = count + 1, 0
        used += width
    return count


def segments(text: str) -> SegmentInfo:
    """Encoding and segment count of `text` as an SMS (GSM-7 160/153, UCS-2 70/67)."""
    characters = len(text)
    if all(c in GSM7_BASIC or c in GSM7_EXTENSION for c in text):
        septets = (2 if c in GSM7_EXTENSION else 1 for c in text)
        return SegmentInfo("GSM-7", _pack(septets, 160, 153), characters)
    # UCS-2 counts UTF-16 code units; a surrogate pair (emoji) is never split across parts.
    units = (2 if ord(c) > 0xFFFF else 1 for c in text)
    return SegmentInfo("UCS-2", _pack(units, 70, 67), characters)


def classify_keyword(text: str | None) -> Literal["opt_out", "opt_in", "help"] | None:
    """Whether an inbound text is an opt-out, opt-in or help keyword (whole message only)."""
    if not text:
        return None
    word = unicodedata.normalize("NFC", text).strip().upper()
    if word in OPT_OUT_WORDS:
        return "opt_out"
    if word in OPT_IN_WORDS:
        return "opt_in"
    if word in HELP_WORDS:
        return "help"
    return None


def signature(auth_token: str, url: str, params: Iterable[tuple[str, str]]) -> str:
    """X-Twilio-Signature: base64(HMAC-SHA1(token, URL + sorted name/value pairs))."""
    data = url + "".join(name + value for name, value in sorted(params))
    digest = hmac.new(auth_token.encode(), data.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def _url_variants(url: str) -> list[str]:
    """The URL as given, plus with/without its default port (Twilio may sign either form)."""
    # https://www.twilio.com/docs/usage/security#notes
    parts = urlsplit(url)
    default = {"https": 443, "http": 80}.get(parts.scheme)
    variants = [url]
    if parts.hostname is None or default is None:
        return variants
    host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    userinfo = parts.netloc.rpartition("@")[0]
    prefix = f"{userinfo}@" if userinfo else ""
    if parts.port is None:
        variants.append(urlunsplit(parts._replace(netloc=f"{prefix}{host}:{default}")))
    elif parts.port == default:
        variants.append(urlunsplit(parts._replace(netloc=f"{prefix}{host}")))
    return variants


def _form(body: bytes, *, strict: bool) -> list[tuple[str, str]]:
    """The name/value pairs of a form-encoded body."""
    text = body.decode("utf-8", errors="strict" if strict else "replace")
    return parse_qsl(text, keep_blank_values=True, strict_parsing=strict)


class SmsConfig(msgspec.Struct, forbid_unknown_fields=True):
    """Stored configuration of one Twilio-compatible SMS sender."""

    account_sid: str
    auth_token: str
    from_number: str = ""
    messaging_service_sid: str = ""
    api_base: str = DEFAULT_API_BASE
    messages_per_second: float = 1.0
    status_callback_url: str = ""


def _raw_dlr_time(raw: str | None) -> datetime | None:
    """A carrier's RawDlrDoneDate (YYMMDDhhmm, UTC) as a datetime."""
    if not raw or not re.fullmatch(r"\d{10}", raw):
        return None
    try:
        return datetime.strptime(raw, "%y%m%d%H%M").replace(tzinfo=UTC)
    except ValueError:
        return None


class SmsChannel(ChannelBase):
    """One SMS sender (a phone number or a messaging service) on a Twilio-compatible API."""

    # Twilio expects TwiML from a messaging webhook; an empty <Response/> sends nothing back.
    webhook_reply: ClassVar[tuple[bytes, str]] = (b"<Response/>", "text/xml")

    kind: ClassVar[str] = "sms"
    display_name: ClassVar[str] = "SMS"
    address_form: ClassVar[str | None] = "mobile number with country code (stored as +E.164)"
    write_first: ClassVar[bool] = True
    poller: ClassVar[str | None] = None
    simulator: ClassVar[str | None] = "sms"
    widget: ClassVar[bool] = False
    privacy: ClassVar[PrivacyRecord] = PrivacyRecord(
        "Twilio Inc. (Programmable Messaging) and the mobile carriers",
        "USA",
        ("USA (Twilio Inc.)",),
        "EU-US Data Privacy Framework (Twilio is certified); standard contractual clauses in "
        "Twilio's data protection addendum",
        "Twilio's data protection addendum",
    )

    @staticmethod
    def normalise_address(raw: str) -> str:
        """+E.164 (+49..., 0049...; a number without country code is refused)."""
        return "+" + phone_digits(raw, bare_digits=False)

    @staticmethod
    def chat_link(
        config: Mapping[str, Any], channel_id: str, text: str, base_url: str
    ) -> LinkTarget | None:
        """sms:NUMBER?body=..."""
        number = str(config.get("from_number") or "")
        if not number:
            return LinkTarget(None, "from_number (a messaging service has no number to link to)")
        return LinkTarget(f"sms:{number}?body={quote(text, safe='')}")

    @staticmethod
    def carrier_opt_out(payload: Mapping[str, Any]) -> bool:
        """Twilio and the carriers stop all messages to a number that wrote STOP (and answer it)."""
        return isinstance(payload, dict) and payload.get("keyword") == "opt_out"

    @staticmethod
    async def on_connect(
        config: dict[str, Any], webhook_url: str, http: httpx.AsyncClient, *, register: bool
    ) -> dict[str, Any]:
        """Twilio posts delivery statuses to the URL sent with each message: the channel's own webhook."""
        if config.get("status_callback_url"):
            return config
        return {**config, "status_callback_url": webhook_url}

    config_type: ClassVar[type[SmsConfig]] = SmsConfig
    capabilities: ClassVar[Capabilities] = Capabilities(
        counts_segments=True,
        max_text_length=MAX_BODY,
        window=None,
        templates=False,
        media=True,
        interactive=False,
        messages_per_second=1.0,
        opt_out_keywords=OPT_OUT_WORDS,
    )

    def __init__(self, config: Mapping[str, Any], http: httpx.AsyncClient):
        self.config = msgspec.convert(self.check_config(config), SmsConfig)
        self.http = http
        self._url = (
            f"{self.config.api_base.rstrip('/')}/{API_VERSION}/Accounts/"
            f"{self.config.account_sid}/Messages.json"
        )

    @staticmethod
    def check_config(config: Mapping[str, Any]) -> dict[str, Any]:
        """Validate a configuration and return it normalised."""
        try:
            parsed = msgspec.convert(dict(config), SmsConfig)
        except msgspec.ValidationError as exc:
            raise ConfigError(
                "sms channel configuration: {detail}", params={"detail": str(exc)}
            ) from exc
        parsed.account_sid = parsed.account_sid.strip()
        parsed.auth_token = parsed.auth_token.strip()
        parsed.from_number = re.sub(r"[\s\-()/]", "", parsed.from_number)
        parsed.messaging_service_sid = parsed.messaging_service_sid.strip()
        parsed.status_callback_url = parsed.status_callback_url.strip()
        if not _ACCOUNT_SID.match(parsed.account_sid):
            raise ConfigError(
                "sms channel configuration: account_sid must be 'AC' followed by 32 hex digits"
            )
        if not parsed.auth_token:
            raise ConfigError("sms channel configuration: auth_token must not be empty")
        if not parsed.from_number and not parsed.messaging_service_sid:
            raise ConfigError(
                "sms channel configuration: set from_number (E.164) or messaging_service_sid"
            )
        if parsed.from_number and not _E164.match(parsed.from_number):
            raise ConfigError(
                "sms channel configuration: from_number must be in E.164 form, e.g. +4930123456"
            )
        if parsed.messaging_service_sid and not _SERVICE_SID.match(parsed.messaging_service_sid):
            raise ConfigError(
                "sms channel configuration: messaging_service_sid must be 'MG' followed by "
                "32 hex digits"
            )
        if not parsed.api_base.startswith(("http://", "https://")):
            raise ConfigError("sms channel configuration: api_base must be an http(s) URL")
        if parsed.status_callback_url and not parsed.status_callback_url.startswith(
            ("http://", "https://")
        ):
            raise ConfigError(
                "sms channel configuration: status_callback_url must be an http(s) URL "
                "(the channel's webhook URL) or empty"
            )
        if not 0 < parsed.messages_per_second <= 1000:
            raise ConfigError(
                "sms channel configuration: messages_per_second must be > 0 and at most 1000"
            )
        return msgspec.to_builtins(parsed)

    @property
    def messages_per_second(self) -> float:
        """This sender's throughput (1/s for a long code, more for toll-free or short codes)."""
        return self.config.messages_per_second

    def handshake(self, request: WebhookRequest) -> str:
        """Twilio has no subscription handshake."""
        raise WebhookRejected(405, "Twilio webhooks are POST requests; there is no handshake")

    def verify(self, request: WebhookRequest) -> None:
        """Check X-Twilio-Signature over the public URL and the sorted form fields."""
        header = request.headers.get("x-twilio-signature")
        if not header:
            raise WebhookRejected(401, "missing X-Twilio-Signature header")
        try:
            params = _form(request.body, strict=False)
        except ValueError as exc:
            raise WebhookRejected(403, "X-Twilio-Signature does not match the request") from exc
        given = header.strip().encode()
        for url in _url_variants(request.public_url or request.url):
            expected = signature(self.config.auth_token, url, params).encode()
            if hmac.compare_digest(given, expected):
                return
        raise WebhookRejected(403, "X-Twilio-Signature does not match the request")

    def parse(self, request: WebhookRequest) -> ParsedWebhook:
        """Parse one inbound message or one status callback."""
        try:
            pairs = _form(request.body, strict=True)
        except UnicodeDecodeError as exc:
            raise WebhookRejected(400, "webhook body is not valid UTF-8") from exc
        except ValueError as exc:
            raise WebhookRejected(400, f"webhook body is not form-encoded: {exc}") from exc
        fields: dict[str, str] = {}
        for name, value in pairs:
            if name in fields:
                raise WebhookRejected(400, f"form field {name!r} appears more than once")
            fields[name] = value
        sid = fields.get("MessageSid") or fields.get("SmsSid") or fields.get("SmsMessageSid")
        if not sid or len(sid) > 64 or not sid.isprintable():
            raise WebhookRejected(400, "MessageSid is missing, empty or too long")
        account = fields.get("AccountSid")
        if not account:
            raise WebhookRejected(400, "AccountSid is missing")
        if not hmac.compare_digest(account.encode(), self.config.account_sid.encode()):
            raise WebhookRejected(400, "AccountSid does not belong to this channel")
        parsed = ParsedWebhook()
        if "MessageStatus" in fields and "Body" not in fields:
            status = self._status(sid, fields, request.query.get(REF_PARAM))
            if status is not None:
                parsed.statuses.append(status)
            return parsed
        parsed.messages.append(self._message(sid, fields))
        return parsed

    def _status(self, sid: str, fields: dict[str, str], ref: str | None) -> StatusUpdate | None:
        name = fields["MessageStatus"].strip().lower()
        state = _STATUS_STATES.get(name)
        if state is None:
            if name in _IGNORED_STATUSES or re.fullmatch(r"[a-z_]{1,32}", name):
                return None
            raise WebhookRejected(400, "MessageStatus is not a status name")
        code = fields.get("ErrorCode") or None
        reason = None
        if state == DeliveryState.FAILED:
            reason = (
                fields.get("ErrorMessage")
                or ERROR_REASONS.get(code or "")
                or (f"Twilio error {code}" if code else f"the message was {name}")
            )
        occurred = _raw_dlr_time(fields.get("RawDlrDoneDate")) if name == "delivered" else None
        return StatusUpdate(
            provider_message_id=sid,
            state=state,
            occurred_at=occurred or datetime.now(UTC),
            recipient_address=fields.get("To") or None,
            error_code=code if state == DeliveryState.FAILED else None,
            error_reason=reason,
            client_reference=ref or None,
        )

    def _message(self, sid: str, fields: dict[str, str]) -> InboundMessage:
        sender = fields.get("From", "").strip()
        if not sender or len(sender) > 64:
            raise WebhookRejected(400, "From is missing or too long")
        try:
            num_media = int(fields.get("NumMedia") or "0")
        except ValueError as exc:
            raise WebhookRejected(400, "NumMedia is not a number") from exc
        if not 0 <= num_media <= MAX_MEDIA:
            raise WebhookRejected(400, f"NumMedia must be between 0 and {MAX_MEDIA}")
        media = [
            {"url": fields[f"MediaUrl{i}"], "content_type": fields.get(f"MediaContentType{i}", "")}
            for i in range(num_media)
            if fields.get(f"MediaUrl{i}")
        ]
        body = fields.get("Body")
        message_type = (fields.get("MessageType") or "").lower()
        kind: ContentKind
        text = body
        if media:
            kind = ContentKind.MEDIA
            text = body or None
        elif message_type in ("", "text", "sms") and body is not None:
            kind = ContentKind.TEXT
        elif message_type == "location" and fields.get("Latitude") and fields.get("Longitude"):
            kind = ContentKind.LOCATION
            text = (
                fields.get("Label")
                or fields.get("Address")
                or (f"{fields['Latitude']},{fields['Longitude']}")
            )
        elif message_type == "button" and (fields.get("ButtonText") or fields.get("ButtonPayload")):
            kind = ContentKind.BUTTON
            text = fields.get("ButtonText") or fields.get("ButtonPayload")
        elif message_type in _MEDIA_MESSAGE_TYPES:
            kind, text = ContentKind.MEDIA, body or None
        else:
            kind, text = ContentKind.UNSUPPORTED, body or None
        payload: dict[str, Any] = dict(fields)
        if media:
            payload["media"] = media
        keyword = classify_keyword(body) if kind == ContentKind.TEXT else None
        if keyword:
            payload["keyword"] = keyword
        return InboundMessage(
            provider_message_id=sid,
            sender_address=sender,
            sender_name=None,
            sent_at=datetime.now(UTC),
            content_kind=kind,
            body=text,
            payload=payload,
        )

    def build_form(self, message: OutboundMessage) -> dict[str, str]:
        """The Messages.json form fields for one outbound message."""
        to = message.to.strip()
        if to.isdigit():
            to = "+" + to
        form: dict[str, str] = {"To": to}
        if self.config.messaging_service_sid:
            form["MessagingServiceSid"] = self.config.messaging_service_sid
        if self.config.from_number:
            form["From"] = self.config.from_number
        body = message.body or ""
        if len(body) > MAX_BODY:
            raise PermanentError(
                f"an SMS body is at most {MAX_BODY} characters; this has {len(body)}",
                code="21617",
            )
        if message.content_kind == ContentKind.TEXT:
            if not body:
                raise PermanentError("an SMS needs a body", code="21602")
            form["Body"] = body
        elif message.content_kind == ContentKind.MEDIA:
            link = message.payload.get("link")
            if not isinstance(link, str) or not link.startswith(("http://", "https://")):
                raise PermanentError("an MMS needs payload.link, an http(s) URL", code="21620")
            form["MediaUrl"] = link
            if body:
                form["Body"] = body
        else:
            raise PermanentError(
                f"sms cannot send content kind {message.content_kind}", code="unsupported_kind"
            )
        if self.config.status_callback_url:
            form["StatusCallback"] = _with_ref(
                self.config.status_callback_url, message.client_reference
            )
        return form

    async def acknowledge(self, data: dict[str, Any]) -> None:
        """Twilio needs no acknowledgement beyond the webhook's 200."""

    @staticmethod
    def media_refs(payload: dict[str, Any]) -> list[MediaRef]:
        """MediaUrl0..N with their MediaContentType."""
        refs: list[MediaRef] = []
        media = payload.get("media")
        for item in media if isinstance(media, list) else []:
            url = item.get("url") if isinstance(item, dict) else None
            if not isinstance(url, str) or not url.startswith(("http://", "https://")):
                continue
            ctype = str(item.get("content_type") or "")
            kind = ctype.split("/", 1)[0]
            refs.append(
                MediaRef(
                    kind=kind if kind in ("image", "audio", "video") else "document",
                    ref={"url": url},
                    mime_type=ctype or None,
                )
            )
        return refs

    async def fetch_media(self, ref: MediaRef, max_bytes: int) -> FetchedMedia:
        """Download a MediaUrl with the account's credentials (HTTP basic auth)."""
        url = str(ref.ref.get("url", ""))
        if not url.startswith(("http://", "https://")):
            raise PermanentError("the media has no http(s) URL", code="media_url")
        if not same_host(url, self.config.api_base):
            # The account's credentials go to the provider's own API host and nowhere else.
            raise PermanentError("the media is not on the SMS provider's host", code="media_host")
        fetched = await download(
            self.http,
            url,
            max_bytes,
            provider="the SMS provider",
            auth=(self.config.account_sid, self.config.auth_token),
        )
        return FetchedMedia(fetched.content, ref.mime_type or fetched.content_type)

    async def check(self) -> str | None:
        """Fetch the Account resource: its friendly name when the SID and auth token are right."""
        url = f"{self.config.api_base.rstrip('/')}/{API_VERSION}/Accounts/{self.config.account_sid}.json"
        response, data = await call_api(
            self.http.get(
                url,
                auth=(self.config.account_sid, self.config.auth_token),
                headers={"Accept": "application/json"},
            ),
            "Twilio",
        )
        if response.status_code == 200 and isinstance(data, dict):
            return str(data.get("friendly_name") or self.config.account_sid)
        raise map_error(response.status_code, data, response.headers.get("retry-after"))

    async def send(self, message: OutboundMessage) -> SendResult:
        """POST the message to Messages.json and map errors to the four kinds."""
        form = self.build_form(message)
        response, data = await call_api(
            self.http.post(
                self._url,
                data=form,
                auth=(self.config.account_sid, self.config.auth_token),
                headers={"Accept": "application/json"},
            ),
            "Twilio",
        )
        if response.status_code in (200, 201) and isinstance(data, dict):
            sid = data.get("sid")
            if isinstance(sid, str) and sid:
                return SendResult(provider_message_id=sid)
            raise TransientError("Twilio answered without a message sid")
        raise map_error(response.status_code, data, response.headers.get("retry-after"))


def _with_ref(url: str, ref: str) -> str:
    """The status callback URL with our message id as a query parameter."""
    if not ref:
        return url
    parts = urlsplit(url)
    query = f"{parts.query}&" if parts.query else ""
    return urlunsplit(parts._replace(query=f"{query}{REF_PARAM}={ref}"))


def _retry_after(header: str | None, default: float) -> float:
    try:
        value = float(header) if header else default
    except ValueError:
        return default
    return value if 0 < value <= 3600 else default


def map_error(status: int, data: Any, retry_after: str | None = None) -> Exception:
    """Map a Twilio error answer to one of the four error kinds."""
    raw_code = data.get("code") if isinstance(data, dict) else None
    code = str(raw_code) if isinstance(raw_code, int | str) and raw_code != "" else None
    message = data.get("message") if isinstance(data, dict) else None
    known = ERROR_REASONS.get(code or "")
    reason = " — ".join(p for p in (known, message if isinstance(message, str) else None) if p)
    reason = reason or f"Twilio answered HTTP {status}"
    if status == 401 or code == "20003":
        return AuthError(reason, code=code or str(status))
    if status == 429 or code == "20429":
        return RateLimited(reason, code=code or "429", retry_after=_retry_after(retry_after, 1.0))
    if code == "21611":
        return RateLimited(reason, code=code, retry_after=_retry_after(retry_after, 30.0))
    if status >= 500:
        return TransientError(reason, code=code or str(status))
    if code == "21610":
        return PermanentError(reason, code=code, unreachable=True)
    return PermanentError(reason, code=code or str(status))
