"""Telegram Bot API channel."""

from __future__ import annotations

import asyncio
import hmac
import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar, TypeVar

import httpx
import msgspec

from tresen.channels.addresses import numeric_id
from tresen.channels.base import (
    Attachment,
    AuthError,
    Capabilities,
    ChannelBase,
    ChannelError,
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
    TransientError,
    WebhookRejected,
    WebhookRequest,
    download,
)
from tresen.channels.calls import call_api
from tresen.domain.deeplink import decode_payload, encode_payload
from tresen.domain.message import ContentKind

_T = TypeVar("_T")
DEFAULT_API_BASE = "https://api.telegram.org"
SECRET_HEADER = "x-telegram-bot-api-secret-token"
ALLOWED_UPDATES = ("message", "edited_message", "callback_query", "my_chat_member")
MAX_CALLBACK_DATA_BYTES = 64
_MEDIA_KIND = {"photo": "image", "sticker": "image", "voice": "audio", "video_note": "video"}
_FILE_PATH_RE = re.compile(r"^[A-Za-z0-9_./-]{1,256}$")
MAX_CAPTION = 1024
_SECRET_RE = re.compile(r"^[A-Za-z0-9_-]{1,256}$")
_TOKEN_RE = re.compile(r"^\d{1,20}:[A-Za-z0-9_-]{1,200}$")
_START = re.compile(r"^/start(?:@[A-Za-z0-9_]+)?\s+(\S{1,64})\s*$")
"""What a t.me/BOT?start=PAYLOAD link makes the customer send."""
# Message fields that carry a file: https://core.telegram.org/bots/api#message
MEDIA_FIELDS = ("document", "video", "audio", "voice", "video_note", "animation", "sticker")
# Outbound media: content payload media_type -> (Bot API method, field).
_SEND_MEDIA = {
    "image": ("sendPhoto", "photo"),
    "document": ("sendDocument", "document"),
    "video": ("sendVideo", "video"),
    "audio": ("sendAudio", "audio"),
    "sticker": ("sendSticker", "sticker"),
}


class TelegramConfig(msgspec.Struct, forbid_unknown_fields=True):
    """Stored configuration of one Telegram bot."""

    bot_token: str
    secret_token: str
    api_base: str = DEFAULT_API_BASE
    messages_per_second: float = 30.0
    bot_username: str = ""
    """The bot's @username (without @); for t.me links."""


class _User(msgspec.Struct):
    id: int
    is_bot: bool = False
    first_name: str | None = None
    last_name: str | None = None
    username: str | None = None


class _Chat(msgspec.Struct):
    id: int
    type: str | None = None
    title: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    username: str | None = None


class _ReplyTo(msgspec.Struct):
    message_id: int


class _Message(msgspec.Struct, rename={"from_": "from"}):
    message_id: int
    chat: _Chat
    date: int | None = None
    from_: _User | None = None
    reply_to_message: _ReplyTo | None = None


class _PhotoSize(msgspec.Struct):
    file_id: str
    file_unique_id: str | None = None
    width: int = 0
    height: int = 0
    file_size: int | None = None


class _File(msgspec.Struct):
    file_id: str
    file_unique_id: str | None = None
    file_name: str | None = None
    mime_type: str | None = None
    file_size: int | None = None
    emoji: str | None = None


class _Location(msgspec.Struct):
    latitude: float
    longitude: float


class _Venue(msgspec.Struct):
    location: _Location
    title: str | None = None
    address: str | None = None


class _Contact(msgspec.Struct):
    phone_number: str
    first_name: str
    last_name: str | None = None
    user_id: int | None = None


class _CallbackQuery(msgspec.Struct, rename={"from_": "from"}):
    id: str
    from_: _User
    message: dict[str, Any] | None = None
    chat_instance: str | None = None
    data: str | None = None


class _Update(msgspec.Struct):
    update_id: int
    message: dict[str, Any] | None = None
    callback_query: _CallbackQuery | None = None


class _Batch(msgspec.Struct):
    ok: bool
    result: list[dict[str, Any]]


def _timestamp(raw: int | None) -> datetime:
    try:
        return datetime.fromtimestamp(raw, UTC) if raw is not None else datetime.now(UTC)
    except (ValueError, OverflowError, OSError):
        return datetime.now(UTC)


def _name(user: _User | _Chat | None) -> str | None:
    if user is None:
        return None
    full = " ".join(p for p in (user.first_name, user.last_name) if p)
    return full or user.username or getattr(user, "title", None) or None


def _content(raw: dict[str, Any]) -> tuple[ContentKind, str | None, dict[str, Any] | None]:
    """Map one Message object to (content kind, display text, normalised media)."""
    try:
        if isinstance(raw.get("text"), str):
            return ContentKind.TEXT, raw["text"], None
        caption = raw.get("caption") if isinstance(raw.get("caption"), str) else None
        if "photo" in raw:
            sizes = msgspec.convert(raw["photo"], list[_PhotoSize])
            if not sizes:
                return ContentKind.UNSUPPORTED, None, None
            # The PhotoSize array lists the same picture in several sizes; keep the largest.
            best = max(sizes, key=lambda s: (s.width * s.height, s.file_size or 0))
            media = {"type": "photo", "file_id": best.file_id, "mime_type": "image/jpeg"}
            return ContentKind.MEDIA, caption, media
        for name in MEDIA_FIELDS:
            if name in raw:
                f = msgspec.convert(raw[name], _File)
                media = {"type": name, "file_id": f.file_id}
                if f.mime_type:
                    media["mime_type"] = f.mime_type
                if f.file_name:
                    media["file_name"] = f.file_name
                body = f.emoji if name == "sticker" else caption or f.file_name
                return ContentKind.MEDIA, body, media
        if "venue" in raw:
            venue = msgspec.convert(raw["venue"], _Venue)
            loc = venue.location
            return (
                ContentKind.LOCATION,
                venue.title or venue.address or f"{loc.latitude},{loc.longitude}",
                None,
            )
        if "location" in raw:
            loc = msgspec.convert(raw["location"], _Location)
            return ContentKind.LOCATION, f"{loc.latitude},{loc.longitude}", None
        if "contact" in raw:
            contact = msgspec.convert(raw["contact"], _Contact)
            full = " ".join(p for p in (contact.first_name, contact.last_name) if p)
            return ContentKind.CONTACTS, full or None, None
    except msgspec.ValidationError:
        return ContentKind.UNSUPPORTED, None, None
    return ContentKind.UNSUPPORTED, None, None


def _button_text(message: dict[str, Any] | None, data: str | None) -> str | None:
    """The label of the inline button whose callback_data is `data`, if the message shows it."""
    markup = (message or {}).get("reply_markup")
    rows = markup.get("inline_keyboard") if isinstance(markup, dict) else None
    if not isinstance(rows, list) or data is None:
        return None
    for row in rows:
        for button in row if isinstance(row, list) else []:
            if isinstance(button, dict) and button.get("callback_data") == data:
                text = button.get("text")
                return text if isinstance(text, str) else None
    return None


def _as(obj: Any, typ: type[_T]) -> _T | None:
    if not isinstance(obj, dict):
        return None
    try:
        return msgspec.convert(obj, typ)
    except msgspec.ValidationError:
        return None


def _find_sender(obj: Any) -> tuple[str, str | None] | None:
    """Find the chat (or else the user) of an unknown update object: (address, name)."""
    if not isinstance(obj, dict):
        return None
    user = _as(obj.get("from"), _User) or _as(obj.get("user"), _User)
    chat = _as(obj.get("chat"), _Chat)
    if chat is not None:
        return str(chat.id), _name(user) or _name(chat)
    if user is not None:
        return str(user.id), _name(user)
    return None


class TelegramChannel(ChannelBase):
    """One Telegram bot on the Bot API."""

    kind: ClassVar[str] = "telegram"
    display_name: ClassVar[str] = "Telegram"
    address_form: ClassVar[str | None] = "Telegram chat id (a number)"
    write_first: ClassVar[bool] = False
    poller: ClassVar[str | None] = None
    simulator: ClassVar[str | None] = "telegram"
    widget: ClassVar[bool] = False
    privacy: ClassVar[PrivacyRecord] = PrivacyRecord(
        "Telegram Messenger Inc. / Telegram FZ-LLC (Bot API)",
        "United Arab Emirates",
        ("United Arab Emirates", "other countries of Telegram's data centres"),
        "none offered: no adequacy decision and no data processing agreement for bots; the "
        "customer chose Telegram and writes first (assess Art. 49(1)(b) GDPR)",
        "Telegram's privacy policy and Bot API terms",
    )

    @staticmethod
    def normalise_address(raw: str) -> str:
        """A chat id, unchanged."""
        return numeric_id(raw, r"-?[0-9]{1,20}", "bad_telegram_id")

    @staticmethod
    def chat_link(
        config: Mapping[str, Any], channel_id: str, text: str, base_url: str
    ) -> LinkTarget | None:
        """t.me/BOT?start=PAYLOAD (the text encoded as a start payload)."""
        username = str(config.get("bot_username") or "")
        if not username:
            return LinkTarget(None, "bot_username (the bot's @username from BotFather)")
        return LinkTarget(f"https://t.me/{username}?start={encode_payload(text)}")

    @staticmethod
    def deep_link_text(text: str | None, payload: Mapping[str, Any]) -> str | None:
        """`/start PAYLOAD` (what a t.me link sends) stands for the payload's text."""
        if text:
            match = _START.match(text.strip())
            if match:
                return decode_payload(match.group(1)) or text
        return text

    @staticmethod
    async def on_connect(
        config: dict[str, Any], webhook_url: str, http: httpx.AsyncClient, *, register: bool
    ) -> dict[str, Any]:
        """Tell Telegram where to deliver updates (setWebhook with the secret token)."""
        if register:
            try:
                await set_webhook(http, config, webhook_url)
            except AuthError as exc:
                raise ConfigError(
                    "Telegram refused the bot token: {reason}", params={"reason": exc.reason}
                ) from exc
            except ChannelError as exc:
                raise ConfigError(
                    "could not register the webhook with Telegram ({reason}); check "
                    "TRESEN_BASE_URL, or add the channel with --no-set-webhook and register it later",
                    params={"reason": exc.reason},
                ) from exc
        return config

    config_type: ClassVar[type[TelegramConfig]] = TelegramConfig
    capabilities: ClassVar[Capabilities] = Capabilities(
        max_text_length=4096,
        window=None,
        templates=False,
        media=True,
        interactive=True,
        messages_per_second=30.0,
        max_buttons=10,
        max_button_title=64,
    )

    def __init__(self, config: Mapping[str, Any], http: httpx.AsyncClient):
        self.config = msgspec.convert(self.check_config(config), TelegramConfig)
        self.http = http
        self._secret = self.config.secret_token.encode()
        self._base = f"{self.config.api_base.rstrip('/')}/bot{self.config.bot_token}"

    @staticmethod
    def check_config(config: Mapping[str, Any]) -> dict[str, Any]:
        """Validate a configuration and return it normalised."""
        try:
            parsed = msgspec.convert(dict(config), TelegramConfig)
        except msgspec.ValidationError as exc:
            raise ConfigError(
                "telegram channel configuration: {detail}", params={"detail": str(exc)}
            ) from exc
        parsed.bot_token = parsed.bot_token.strip()
        if not _TOKEN_RE.match(parsed.bot_token):
            raise ConfigError(
                "telegram channel configuration: bot_token must look like '123456:ABC-DEF...' "
                "(as BotFather gives it)"
            )
        if not _SECRET_RE.match(parsed.secret_token):
            raise ConfigError(
                "telegram channel configuration: secret_token must be 1 to 256 characters of "
                "A-Z, a-z, 0-9, _ and -"
            )
        if not parsed.api_base.startswith(("http://", "https://")):
            raise ConfigError("telegram channel configuration: api_base must be an http(s) URL")
        parsed.bot_username = parsed.bot_username.strip().removeprefix("@")
        if parsed.bot_username and not re.fullmatch(
            r"[A-Za-z][A-Za-z0-9_]{3,31}", parsed.bot_username
        ):
            raise ConfigError(
                "telegram channel configuration: bot_username is 4 to 32 letters, digits or _ "
                "(the bot's @username)"
            )
        if parsed.messages_per_second <= 0:
            raise ConfigError("telegram channel configuration: messages_per_second must be > 0")
        return msgspec.to_builtins(parsed)

    @property
    def messages_per_second(self) -> float:
        """This bot's overall send rate."""
        return self.config.messages_per_second

    def handshake(self, request: WebhookRequest) -> str:
        """Telegram has no GET verification: the webhook is registered with setWebhook."""
        raise WebhookRejected(405, "telegram webhooks are registered with setWebhook, not GET")

    def verify(self, request: WebhookRequest) -> None:
        """Compare X-Telegram-Bot-Api-Secret-Token with the configured secret in constant time."""
        header = request.headers.get(SECRET_HEADER)
        if header is None or header == "":
            raise WebhookRejected(401, "missing X-Telegram-Bot-Api-Secret-Token header")
        if not hmac.compare_digest(header.encode(), self._secret):
            raise WebhookRejected(403, "X-Telegram-Bot-Api-Secret-Token does not match")

    def parse(self, request: WebhookRequest) -> ParsedWebhook:
        """Parse one Update (or a getUpdates answer carrying many) into typed messages."""
        try:
            raw = msgspec.json.decode(request.body)
        except (msgspec.DecodeError, UnicodeDecodeError) as exc:
            raise WebhookRejected(400, f"webhook body is not valid UTF-8 JSON: {exc}") from exc
        if isinstance(raw, dict) and "update_id" in raw:
            updates: list[Any] = [raw]
        elif isinstance(raw, dict) and "result" in raw:
            # A getUpdates answer, e.g. relayed by a long-polling proxy: many updates at once.
            try:
                updates = list(msgspec.convert(raw, _Batch).result)
            except msgspec.ValidationError as exc:
                raise WebhookRejected(400, f"getUpdates answer malformed: {exc}") from exc
        else:
            raise WebhookRejected(400, "body must be a Telegram Update object with update_id")
        parsed = ParsedWebhook()
        for update in updates:
            self._parse_update(update, parsed)
        return parsed

    def _parse_update(self, raw: dict[str, Any], parsed: ParsedWebhook) -> None:
        try:
            update = msgspec.convert(raw, _Update)
        except msgspec.ValidationError as exc:
            raise WebhookRejected(400, f"update does not have the Bot API shape: {exc}") from exc
        if update.message is not None:
            parsed.messages.append(self._message(update.message, raw))
        elif update.callback_query is not None:
            parsed.messages.append(self._callback(update.callback_query, raw))
        else:
            self._unsupported(update.update_id, raw, parsed)

    def _message(self, obj: dict[str, Any], raw: dict[str, Any]) -> InboundMessage:
        try:
            head = msgspec.convert(obj, _Message)
        except msgspec.ValidationError as exc:
            raise WebhookRejected(400, f"message without message_id/chat: {exc}") from exc
        kind, body, media = _content(obj)
        chat = head.chat.id
        reply = head.reply_to_message
        return InboundMessage(
            provider_message_id=f"{chat}:{head.message_id}",
            sender_address=str(chat),
            sender_name=_name(head.from_) or _name(head.chat),
            sent_at=_timestamp(head.date),
            content_kind=kind,
            body=body,
            payload=raw if media is None else {**raw, "media": media},
            reply_to_provider_id=f"{chat}:{reply.message_id}" if reply else None,
        )

    def _callback(self, query: _CallbackQuery, raw: dict[str, Any]) -> InboundMessage:
        if not query.id or len(query.id) > 256:
            raise WebhookRejected(400, "callback_query id is empty or too long")
        chat: int = query.from_.id
        reply_to = None
        if query.message is not None:
            try:
                shown = msgspec.convert(query.message, _Message)
            except msgspec.ValidationError as exc:
                raise WebhookRejected(400, f"callback_query.message malformed: {exc}") from exc
            chat = shown.chat.id
            reply_to = f"{chat}:{shown.message_id}"
        return InboundMessage(
            provider_message_id=f"cb:{query.id}",
            sender_address=str(chat),
            sender_name=_name(query.from_),
            sent_at=datetime.now(UTC),
            content_kind=ContentKind.INTERACTIVE,
            body=_button_text(query.message, query.data) or query.data,
            payload=raw,
            reply_to_provider_id=reply_to,
            acknowledgement={"callback_query_id": query.id},
        )

    def _unsupported(self, update_id: int, raw: dict[str, Any], parsed: ParsedWebhook) -> None:
        """Store an update type we do not handle (edited_message, ...) as unsupported."""
        kinds = [k for k in raw if k != "update_id"]
        obj = raw[kinds[0]] if kinds else None
        sender = _find_sender(obj)
        if sender is None:
            # No person to file it under (poll results, ...): report it instead of inventing one.
            parsed.errors.append(f"update {update_id} ({', '.join(kinds) or 'empty'}) has no chat")
            return
        sent = obj.get("edit_date") or obj.get("date") if isinstance(obj, dict) else None
        parsed.messages.append(
            InboundMessage(
                provider_message_id=f"u:{update_id}",
                sender_address=sender[0],
                sender_name=sender[1],
                sent_at=_timestamp(sent if isinstance(sent, int) else None),
                content_kind=ContentKind.UNSUPPORTED,
                body=None,
                payload=raw,
            )
        )

    def build_request(self, message: OutboundMessage) -> tuple[str, dict[str, Any]]:
        """The Bot API method and JSON body for one outbound message."""
        p = message.payload
        kind = message.content_kind
        body: dict[str, Any] = {"chat_id": message.to}
        if kind == ContentKind.TEXT:
            return "sendMessage", body | {"text": message.body or ""}
        if kind == ContentKind.INTERACTIVE:
            keyboard = _inline_keyboard(p)
            return "sendMessage", body | {
                "text": message.body or "",
                "reply_markup": {"inline_keyboard": keyboard},
            }
        if kind == ContentKind.MEDIA:
            media_type = str(p.get("media_type", "image"))
            if media_type not in _SEND_MEDIA:
                raise PermanentError(
                    f"telegram cannot send media type {media_type!r}", code="unsupported_media"
                )
            method, field = _SEND_MEDIA[media_type]
            body[field] = p["link"]
            if message.body and media_type != "sticker":
                if len(message.body) > MAX_CAPTION:
                    raise PermanentError(
                        f"telegram captions are at most {MAX_CAPTION} characters",
                        code="caption_too_long",
                    )
                body["caption"] = message.body
            return method, body
        raise PermanentError(f"telegram cannot send content kind {kind}", code="unsupported_kind")

    async def _call(
        self, method: str, body: dict[str, Any], upload: Attachment | None = None, field: str = ""
    ) -> Any:
        """POST one Bot API method (JSON, or multipart with a file); return `result` or raise."""
        url = f"{self._base}/{method}"
        if upload is None:
            request = self.http.post(url, json=body)
        else:
            content = await asyncio.to_thread(upload.read)
            form = {k: v if isinstance(v, str) else json.dumps(v) for k, v in body.items()}
            files = {field: (upload.filename, content, upload.content_type)}
            request = self.http.post(url, data=form, files=files)
        response, data = await call_api(request, "Telegram")
        if response.status_code == 200 and isinstance(data, dict) and data.get("ok") is True:
            return data.get("result")
        raise map_error(response.status_code, data)

    async def check(self) -> str | None:
        """`getMe`: the bot's user name when the token is right."""
        me = await self._call("getMe", {})
        name = me.get("username") if isinstance(me, dict) else None
        return f"@{name}" if name else "bot"

    async def send(self, message: OutboundMessage) -> SendResult:
        """Send through the Bot API and map errors to the four kinds."""
        method, body = self.build_request(message)
        upload, field = None, ""
        if message.attachment is not None and message.content_kind == ContentKind.MEDIA:
            # An agent's file goes up with the request (multipart), no public URL needed.
            field = _SEND_MEDIA[str(message.payload.get("media_type", "image"))][1]
            body.pop(field, None)
            upload = message.attachment
        result = await self._call(method, body, upload, field)
        if isinstance(result, dict) and isinstance(result.get("message_id"), int):
            chat = result.get("chat")
            chat_id = chat.get("id") if isinstance(chat, dict) else None
            return SendResult(
                f"{chat_id if chat_id is not None else message.to}:{result['message_id']}"
            )
        raise TransientError("Telegram answered ok without a message_id")

    @staticmethod
    def media_refs(payload: dict[str, Any]) -> list[MediaRef]:
        """The file the parsed message names (its largest photo size, or the document...)."""
        media = payload.get("media")
        if not isinstance(media, dict) or not isinstance(media.get("file_id"), str):
            return []
        kind = str(media.get("type", "document"))
        mime, name = media.get("mime_type"), media.get("file_name")
        return [
            MediaRef(
                kind=_MEDIA_KIND.get(kind, kind if kind in ("audio", "video") else "document"),
                ref={"file_id": media["file_id"]},
                mime_type=mime if isinstance(mime, str) else None,
                filename=name if isinstance(name, str) else None,
            )
        ]

    async def fetch_media(self, ref: MediaRef, max_bytes: int) -> FetchedMedia:
        """getFile for the file path, then download it from the bot's file URL."""
        result = await self._call("getFile", {"file_id": str(ref.ref.get("file_id", ""))})
        if not isinstance(result, dict):
            raise PermanentError("Telegram answered getFile without a file", code="get_file")
        size = result.get("file_size")
        if isinstance(size, int) and size > max_bytes:
            raise MediaTooLarge(
                f"the file is {size} bytes; at most {max_bytes} are accepted", code="too_large"
            )
        path = result.get("file_path")
        if not isinstance(path, str) or not _FILE_PATH_RE.match(path) or ".." in path:
            raise PermanentError("Telegram gave no usable file_path", code="file_path")
        url = f"{self.config.api_base.rstrip('/')}/file/bot{self.config.bot_token}/{path}"
        fetched = await download(self.http, url, max_bytes, provider="Telegram")
        return FetchedMedia(fetched.content, ref.mime_type or fetched.content_type, ref.filename)

    async def acknowledge(self, data: dict[str, Any]) -> None:
        """Answer a callback query so the customer's button stops spinning."""
        query_id = data.get("callback_query_id")
        if not isinstance(query_id, str) or not query_id:
            return
        try:
            await self._call("answerCallbackQuery", {"callback_query_id": query_id})
        except PermanentError:
            # "query is too old and response timeout expired": nothing left to answer.
            return


def _inline_keyboard(p: dict[str, Any]) -> list[list[dict[str, str]]]:
    """Inline keyboard rows from payload buttons (one per row) or list sections' rows."""
    if "buttons" in p:
        items = [(str(b["id"]), str(b["title"])) for b in p["buttons"]]
    else:
        items = [(str(r["id"]), str(r["title"])) for s in p.get("sections", []) for r in s["rows"]]
    if not items:
        raise PermanentError("an interactive message needs buttons", code="no_buttons")
    for data, _ in items:
        # callback_data must be 1-64 bytes: https://core.telegram.org/bots/api#inlinekeyboardbutton
        if not 1 <= len(data.encode()) <= MAX_CALLBACK_DATA_BYTES:
            raise PermanentError(
                f"telegram button ids must be 1 to {MAX_CALLBACK_DATA_BYTES} bytes",
                code="callback_data_too_long",
            )
    return [[{"text": title, "callback_data": data}] for data, title in items]


def map_error(status: int, data: Any) -> ChannelError:
    """Map a Bot API error answer to one of the four error kinds."""
    if not isinstance(data, dict):
        if status >= 500 or status in (200, 429):
            return TransientError(f"Telegram answered HTTP {status}")
        if status in (401, 404):
            return AuthError(
                f"Telegram answered HTTP {status}: check the bot token", code=str(status)
            )
        return PermanentError(f"Telegram answered HTTP {status}", code=str(status))
    raw_code = data.get("error_code")
    code: int = raw_code if isinstance(raw_code, int) else status
    reason = str(data.get("description") or f"HTTP {status}")
    params = data.get("parameters")
    retry_after = params.get("retry_after") if isinstance(params, dict) else None
    if code == 429 or (isinstance(retry_after, int | float) and code < 500):
        after = float(retry_after) if isinstance(retry_after, int | float) else 1.0
        return RateLimited(reason, code="429", retry_after=max(after, 0.0))
    if code in (401, 404):
        return AuthError(reason, code=str(code))
    if code == 403:
        # "bot was blocked by the user", "user is deactivated", "bot can't initiate
        # conversation with a user", "bot was kicked": the customer cannot be reached here.
        rights = "rights" in reason.lower()
        return PermanentError(reason, code="403", unreachable=not rights)
    if code >= 500 or status >= 500:
        return TransientError(reason, code=str(code))
    return PermanentError(reason, code=str(code))


async def set_webhook(http: httpx.AsyncClient, config: Mapping[str, Any], url: str) -> None:
    """Register tresen's webhook URL and secret with Telegram (setWebhook)."""
    channel = TelegramChannel(config, http)
    await channel._call(
        "setWebhook",
        {
            "url": url,
            "secret_token": channel.config.secret_token,
            "allowed_updates": list(ALLOWED_UPDATES),
        },
    )
