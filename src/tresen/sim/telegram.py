"""Simulated Telegram Bot API: a real HTTP server speaking Telegram's wire format."""

from __future__ import annotations

import asyncio
import hmac
import json
import random
import re
import time
from collections import Counter
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager, suppress
from dataclasses import asdict, dataclass
from typing import Annotated, Any
from urllib.parse import parse_qsl

import httpx
import typer
from litestar import Litestar, Request, Response, get, post
from litestar.datastructures import UploadFile
from litestar.exceptions import HTTPException
from litestar.params import FromPath, FromQuery
from litestar.types import ASGIApp, Receive, Scope, Send

from tresen.sim.common import TokenBucket, WebhookStats
from tresen.sim.server import serve_asgi

__all__ = [
    "LedgerEntry",
    "TelegramSimConfig",
    "TelegramSimulator",
    "add_cli",
    "run_telegram_simulator",
]

SEND_METHODS = {
    "sendMessage": "text",
    "sendPhoto": "photo",
    "sendDocument": "document",
    "sendVideo": "video",
    "sendAudio": "audio",
    "sendSticker": "sticker",
}
INBOUND_TYPES = (
    "text",
    "photo",
    "document",
    "video",
    "audio",
    "voice",
    "sticker",
    "location",
    "contact",
    "edited_message",
    "poll",
)
_SECRET_RE = re.compile(r"^[A-Za-z0-9_-]{1,256}$")
# Files served by getFile when a test names no bytes: first bytes match the declared type.
SAMPLE_FILES: dict[str, tuple[bytes, str]] = {
    "photo": (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(64) + b"\xff\xd9", "photos/file_{n}.jpg"),
    "document": (b"%PDF-1.4\n%sim\ntrailer<<>>\n%%EOF\n", "documents/file_{n}.pdf"),
    "video": (b"\x00\x00\x00\x18ftypmp42" + bytes(64), "videos/file_{n}.mp4"),
    "audio": (b"ID3\x04\x00\x00" + bytes(64), "music/file_{n}.mp3"),
    "voice": (b"OggS\x00\x02" + bytes(64), "voice/file_{n}.oga"),
    "sticker": (b"RIFF\x24\x00\x00\x00WEBPVP8 " + bytes(64), "stickers/file_{n}.webp"),
}


@dataclass
class TelegramSimConfig:
    """Behaviour of one simulated Telegram bot."""

    bot_token: str = "123456789:SIMsimSIMsimSIMsimSIMsimSIMsim12345"
    bot_username: str = "tresen_sim_bot"
    webhook_url: str | None = None
    secret_token: str = "sim-secret-token"
    mps: float = 30.0
    per_chat: tuple[int, float] = (3, 1.0)
    """Burst and messages per second to one chat."""
    retry_after: int = 1
    duplicate_rate: float = 0.0
    fault_rate: float = 0.0
    fault_kinds: tuple[str, ...] = ("5xx", "timeout", "drop")
    fault_after_accept_share: float = 0.0
    timeout_seconds: float = 15.0
    webhook_retry_delays: tuple[float, ...] = (0.2, 0.5, 1, 2, 5, 10, 20, 30)
    seed: int | None = None


@dataclass
class LedgerEntry:
    """One outbound message the simulator accepted."""

    message_id: int
    chat_id: int
    method: str
    payload: dict[str, Any]
    accepted_at: float

    def to_json(self) -> dict[str, Any]:
        """Return the entry as a JSON-ready dict."""
        return asdict(self)


class ApiError(Exception):
    """A Bot API error answer."""

    def __init__(self, code: int, description: str, retry_after: int | None = None) -> None:
        super().__init__(description)
        self.code = code
        self.description = description
        self.retry_after = retry_after

    def body(self) -> dict[str, Any]:
        """The error as Telegram sends it."""
        out: dict[str, Any] = {
            "ok": False,
            "error_code": self.code,
            "description": self.description,
        }
        if self.retry_after is not None:
            out["parameters"] = {"retry_after": self.retry_after}
        return out


def _bad(description: str) -> ApiError:
    return ApiError(400, f"Bad Request: {description}")


def _chat_id(value: Any) -> int:
    """A chat_id as Telegram accepts it: an integer or a string of one."""
    if isinstance(value, bool):
        raise _bad("chat_id is invalid")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and re.fullmatch(r"-?\d{1,20}", value.strip()):
        return int(value)
    if value is None or value == "":
        raise _bad("chat_id is empty")
    raise _bad("chat not found")


def _validate_markup(markup: Any) -> None:
    """Check reply_markup.inline_keyboard like the Bot API does."""
    if markup is None:
        return
    if isinstance(markup, str):
        try:
            markup = json.loads(markup)
        except ValueError:
            raise _bad("can't parse reply keyboard markup JSON object") from None
    if not isinstance(markup, dict):
        raise _bad("can't parse reply keyboard markup JSON object")
    rows = markup.get("inline_keyboard")
    if rows is None:
        return
    if not isinstance(rows, list) or not all(isinstance(r, list) for r in rows):
        raise _bad('field "inline_keyboard" of the InlineKeyboardMarkup must be an Array')
    for row in rows:
        for button in row:
            if not isinstance(button, dict) or not isinstance(button.get("text"), str):
                raise _bad('can\'t find field "text"')
            if not button["text"].strip():
                raise _bad("BUTTON_TEXT_INVALID")
            actions = [k for k in ("callback_data", "url", "switch_inline_query") if k in button]
            if len(actions) != 1:
                raise _bad("text buttons are unallowed in the inline keyboard")
            data = button.get("callback_data")
            if "callback_data" in button and (
                not isinstance(data, str) or not 1 <= len(data.encode()) <= 64
            ):
                raise _bad("BUTTON_DATA_INVALID")


def summarize(method: str, payload: dict[str, Any]) -> str:
    """A short text for an outbound message."""
    field_name = SEND_METHODS.get(method, "text")
    if method == "sendMessage":
        return str(payload.get("text", ""))
    return f"[{field_name}] " + str(payload.get("caption") or payload.get(field_name))


class TelegramSimulator:
    """A simulated Telegram Bot API for one bot."""

    def __init__(self, config: TelegramSimConfig | None = None) -> None:
        self.config = config or TelegramSimConfig()
        unknown = set(self.config.fault_kinds) - {"5xx", "timeout", "drop"}
        if unknown:
            raise ValueError(f"unknown fault kinds: {sorted(unknown)}")
        if not _SECRET_RE.match(self.config.secret_token):
            raise ValueError("secret_token must be 1-256 characters of A-Z a-z 0-9 _ -")
        self.base_url: str | None = None
        self.ledger: list[LedgerEntry] = []
        self.inbound: list[dict[str, Any]] = []
        self.answered: list[dict[str, Any]] = []
        self.webhook_calls: list[dict[str, Any]] = []
        self.blocked: set[int] = set()
        self.webhook_stats = WebhookStats()
        self.rejected: Counter[int] = Counter()
        self.faults: Counter[str] = Counter()
        self.faults_after_accept = 0
        self._rng = random.Random(self.config.seed)
        self._update_id = self._rng.randrange(100_000_000, 900_000_000)
        self._message_ids: dict[int, int] = {}
        self._callbacks: dict[str, dict[str, Any]] = {}
        self._users: dict[int, dict[str, Any]] = {}
        self._bucket = TokenBucket(self.config.mps, max(1.0, self.config.mps))
        self._chat_buckets: dict[int, TokenBucket] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closing = asyncio.Event()
        self._client = httpx.AsyncClient(timeout=httpx.Timeout(10.0))
        self.files: dict[str, tuple[bytes, str]] = {}
        self.file_downloads = 0
        self.uploads: list[dict[str, Any]] = []
        self.app = self._build_app()

    # -- bookkeeping -------------------------------------------------------------------

    def duplicates(self) -> int:
        """Count accepted messages whose (chat, method, content) was accepted before."""
        seen: set[str] = set()
        count = 0
        for e in self.ledger:
            key = json.dumps([e.chat_id, e.method, e.payload], sort_keys=True, default=str)
            if key in seen:
                count += 1
            seen.add(key)
        return count

    def stats(self) -> dict[str, Any]:
        """Counters as a JSON-ready dict."""
        return {
            "accepted": len(self.ledger),
            "rejected": {str(code): n for code, n in sorted(self.rejected.items())},
            "faults": dict(self.faults),
            "webhooks": asdict(self.webhook_stats),
            "inbound": len(self.inbound),
            "answered_callbacks": len(self.answered),
            "duplicates": self.duplicates(),
            "faults_after_accept": self.faults_after_accept,
        }

    def messages_for(self, chat_id: int | str) -> list[dict[str, Any]]:
        """The bot's messages to one chat."""
        target = int(chat_id)
        return [
            {
                "message_id": e.message_id,
                "method": e.method,
                "summary": summarize(e.method, e.payload),
                "buttons": [
                    b
                    for row in (e.payload.get("reply_markup") or {}).get("inline_keyboard", [])
                    for b in row
                ],
                "accepted_at": e.accepted_at,
            }
            for e in self.ledger
            if e.chat_id == target
        ]

    def block(self, chat_id: int | str) -> None:
        """The customer blocks the bot: further sends to them get 403."""
        self.blocked.add(int(chat_id))

    def _next_message_id(self, chat_id: int) -> int:
        """Message ids count up per chat, shared by both directions."""
        self._message_ids[chat_id] = self._message_ids.get(chat_id, 0) + 1
        return self._message_ids[chat_id]

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _bot_user(self) -> dict[str, Any]:
        bot_id = int(self.config.bot_token.split(":", 1)[0])
        return {
            "id": bot_id,
            "is_bot": True,
            "first_name": "tresen",
            "username": self.config.bot_username,
        }

    # -- the Bot API -------------------------------------------------------------------

    def handle(
        self, token: str, method: str, params: Any
    ) -> tuple[int, dict[str, Any], str | None]:
        """Process one Bot API call; return (http status, body, fault kind)."""
        try:
            if not hmac.compare_digest(token.encode(), self.config.bot_token.encode()):
                raise ApiError(401, "Unauthorized")
            if not isinstance(params, dict):
                raise _bad("request body must be a JSON object or a form")
            if method in SEND_METHODS:
                return self._send(method, params)
            if method == "answerCallbackQuery":
                return 200, {"ok": True, "result": self._answer(params)}, None
            if method == "setWebhook":
                return (
                    200,
                    {"ok": True, "result": True, "description": self._set_webhook(params)},
                    None,
                )
            if method == "deleteWebhook":
                self.config.webhook_url = None
                return 200, {"ok": True, "result": True, "description": "Webhook was deleted"}, None
            if method == "getWebhookInfo":
                info = {"url": self.config.webhook_url or "", "pending_update_count": 0}
                return 200, {"ok": True, "result": info}, None
            if method == "getMe":
                return 200, {"ok": True, "result": self._bot_user()}, None
            if method == "getFile":
                return 200, {"ok": True, "result": self._get_file(params)}, None
            raise ApiError(404, "Not Found")
        except ApiError as exc:
            self.rejected[exc.code] += 1
            return exc.code, exc.body(), None

    def _set_webhook(self, params: dict[str, Any]) -> str:
        url = params.get("url")
        if not isinstance(url, str) or not url:
            self.config.webhook_url = None
            return "Webhook is already deleted"
        if not url.startswith(("http://", "https://")):
            raise _bad("bad webhook: An HTTPS URL must be provided for webhook")
        secret = params.get("secret_token")
        if secret is not None:
            if not isinstance(secret, str) or not _SECRET_RE.match(secret):
                raise _bad("secret token contains unallowed characters")
            self.config.secret_token = secret
        allowed = params.get("allowed_updates")
        if isinstance(allowed, str):
            allowed = json.loads(allowed)
        self.webhook_calls.append({"url": url, "secret_token": secret, "allowed_updates": allowed})
        self.config.webhook_url = url
        return "Webhook was set"

    def add_file(self, file_id: str, content: bytes, file_path: str) -> None:
        """Serve `content` for a file id (getFile, then GET /file/bot<token>/<file_path>)."""
        self.files[file_id] = (content, file_path)

    def _get_file(self, params: dict[str, Any]) -> dict[str, Any]:
        file_id = params.get("file_id")
        found = self.files.get(file_id) if isinstance(file_id, str) else None
        if found is None:
            raise _bad("Bad Request: invalid file_id")
        content, path = found
        return {
            "file_id": file_id,
            "file_unique_id": f"AQAD{abs(hash(file_id)) % 10**8}",
            "file_size": len(content),
            "file_path": path,
        }

    def file_download(self, token: str, path: str) -> tuple[int, bytes]:
        """The bytes of a file path, for the bot whose token is in the URL."""
        if not hmac.compare_digest(token.encode(), self.config.bot_token.encode()):
            return 401, b""
        for content, file_path in self.files.values():
            if file_path == path:
                self.file_downloads += 1
                return 200, content
        return 404, b""

    def _answer(self, params: dict[str, Any]) -> bool:
        query_id = params.get("callback_query_id")
        if not isinstance(query_id, str) or query_id not in self._callbacks:
            raise _bad("query is too old and response timeout expired or query ID is invalid")
        if any(a["callback_query_id"] == query_id for a in self.answered):
            raise _bad("query is too old and response timeout expired or query ID is invalid")
        self.answered.append({"callback_query_id": query_id, "text": params.get("text")})
        return True

    def _send(self, method: str, params: dict[str, Any]) -> tuple[int, dict[str, Any], str | None]:
        cfg = self.config
        chat_id = _chat_id(params.get("chat_id"))
        field_name = SEND_METHODS[method]
        if method == "sendMessage":
            text = params.get("text")
            if not isinstance(text, str) or not text.strip():
                raise _bad("message text is empty")
            if len(text) > 4096:
                raise _bad("message is too long")
        else:
            media = params.get(field_name)
            if not isinstance(media, str) or not media:
                raise _bad(f"there is no {field_name} in the request")
            caption = params.get("caption")
            if caption is not None and (not isinstance(caption, str) or len(caption) > 1024):
                raise _bad("message caption is too long")
        _validate_markup(params.get("reply_markup"))
        if chat_id in self.blocked:
            raise ApiError(403, "Forbidden: bot was blocked by the user")
        fault = self._decide_fault()
        if fault is not None:
            self.faults[fault] += 1
            if self._rng.random() < cfg.fault_after_accept_share:
                with suppress(ApiError):
                    self._accept(chat_id, method, params)
                    self.faults_after_accept += 1
            return 0, {}, fault
        message = self._accept(chat_id, method, params)
        return 200, {"ok": True, "result": message}, None

    def _accept(self, chat_id: int, method: str, params: dict[str, Any]) -> dict[str, Any]:
        """Apply the rate limits, ledger the message and return its Message object."""
        cfg = self.config
        # About 30 messages/s overall and 1/s per chat:
        # https://core.telegram.org/bots/faq#my-bot-is-hitting-limits-how-do-i-avoid-this
        if not self._bucket.take():
            raise ApiError(
                429, f"Too Many Requests: retry after {cfg.retry_after}", cfg.retry_after
            )
        bucket = self._chat_buckets.get(chat_id)
        if bucket is None:
            burst, rate = cfg.per_chat
            bucket = self._chat_buckets[chat_id] = TokenBucket(rate, float(burst))
        if not bucket.take():
            raise ApiError(
                429, f"Too Many Requests: retry after {cfg.retry_after}", cfg.retry_after
            )
        payload = dict(params)
        if isinstance(payload.get("reply_markup"), str):
            payload["reply_markup"] = json.loads(payload["reply_markup"])
        entry = LedgerEntry(
            message_id=self._next_message_id(chat_id),
            chat_id=chat_id,
            method=method,
            payload=payload,
            accepted_at=time.time(),
        )
        self.ledger.append(entry)
        return self._message_object(entry)

    def _message_object(self, entry: LedgerEntry) -> dict[str, Any]:
        user = self._users.get(entry.chat_id, {"id": entry.chat_id, "first_name": "Kunde"})
        msg: dict[str, Any] = {
            "message_id": entry.message_id,
            "from": self._bot_user(),
            "chat": {**{k: v for k, v in user.items() if k != "is_bot"}, "type": "private"},
            "date": int(entry.accepted_at),
        }
        field_name = SEND_METHODS[entry.method]
        if entry.method == "sendMessage":
            msg["text"] = entry.payload["text"]
        elif field_name == "photo":
            msg["photo"] = [
                {
                    "file_id": f"AgAD{entry.message_id}s",
                    "file_unique_id": "s",
                    "width": 90,
                    "height": 90,
                },
                {
                    "file_id": f"AgAD{entry.message_id}m",
                    "file_unique_id": "m",
                    "width": 800,
                    "height": 800,
                },
            ]
        else:
            msg[field_name] = {"file_id": f"BQAD{entry.message_id}", "file_unique_id": "f"}
        if entry.payload.get("caption"):
            msg["caption"] = entry.payload["caption"]
        if isinstance(entry.payload.get("reply_markup"), dict):
            msg["reply_markup"] = entry.payload["reply_markup"]
        return msg

    def _decide_fault(self) -> str | None:
        cfg = self.config
        if cfg.fault_rate <= 0 or not cfg.fault_kinds or self._rng.random() >= cfg.fault_rate:
            return None
        return self._rng.choice(cfg.fault_kinds)

    async def api_endpoint(self, token: str, method: str, params: Any) -> ASGIApp:
        """Handle POST /bot<token>/<method>; return the raw ASGI answer."""
        status, body, fault = self.handle(token, method, params)
        if fault is None:
            return _json_app(status, body)
        gateway = {"ok": False, "error_code": 502, "description": "Bad Gateway"}
        if fault == "5xx":
            return _json_app(502, gateway)
        if fault == "timeout":
            with suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), self.config.timeout_seconds)
            return _json_app(502, gateway)
        return _dropping_app()

    # -- webhooks ----------------------------------------------------------------------

    async def _post_once(self, body: bytes) -> bool:
        url = self.config.webhook_url
        if url is None:
            return True
        headers = {
            "Content-Type": "application/json",
            "X-Telegram-Bot-Api-Secret-Token": self.config.secret_token,
        }
        try:
            response = await self._client.post(url, content=body, headers=headers)
        except httpx.HTTPError:
            return False
        return 200 <= response.status_code < 300

    async def _post_with_retries(self, body: bytes) -> bool:
        self.webhook_stats.posted += 1
        if await self._post_once(body):
            self.webhook_stats.delivered += 1
            return True
        for delay in self.config.webhook_retry_delays:
            await asyncio.sleep(delay)
            self.webhook_stats.retried += 1
            if await self._post_once(body):
                self.webhook_stats.delivered += 1
                return True
        self.webhook_stats.failed += 1
        return False

    async def deliver(self, update: dict[str, Any]) -> bool:
        """Post one Update to the webhook (sometimes twice, like a retry after a lost answer)."""
        if self.config.webhook_url is None or self._closing.is_set():
            return False
        body = json.dumps(update, ensure_ascii=False).encode()
        twice = self.config.duplicate_rate > 0 and self._rng.random() < self.config.duplicate_rate
        ok = await self._post_with_retries(body)
        if twice:
            self.webhook_stats.duplicated += 1
            await self._post_with_retries(body)
        return ok

    def _next_update_id(self) -> int:
        self._update_id += 1
        return self._update_id

    # -- customer side -----------------------------------------------------------------

    def build_inbound(
        self,
        chat_id: int | str,
        *,
        first_name: str = "Kunde",
        last_name: str | None = None,
        username: str | None = None,
        type: str = "text",
        body: dict[str, Any] | str | None = None,
        reply_to: int | None = None,
    ) -> dict[str, Any]:
        """Build one Update carrying a customer's message of any type."""
        chat = int(chat_id)
        if chat <= 0:
            raise ValueError("chat_id of a private chat must be a positive integer")
        if not isinstance(type, str) or not re.fullmatch(r"[a-z][a-z_]{0,31}", type):
            raise ValueError("type must be a lower-case name like 'text' or 'photo'")
        if not first_name or len(first_name) > 64:
            raise ValueError("first_name must be 1 to 64 characters")
        user: dict[str, Any] = {"id": chat, "is_bot": False, "first_name": first_name}
        if last_name:
            user["last_name"] = last_name
        if username:
            user["username"] = username
        user["language_code"] = "de"
        self._users[chat] = user
        msg: dict[str, Any] = {
            "message_id": self._next_message_id(chat),
            "from": user,
            "chat": {k: v for k, v in user.items() if k not in ("is_bot", "language_code")}
            | {"type": "private"},
            "date": int(time.time()),
        }
        text = body if isinstance(body, str) else None
        extra = body if isinstance(body, dict) else {}
        rid = self._rng.randrange(10**8, 10**9)
        if type in ("text", "edited_message"):
            if not text:
                raise ValueError("a text message needs a non-empty body")
            msg["text"] = text
        elif type == "photo":
            msg["photo"] = [
                {
                    "file_id": f"AgACAgIAAx{rid}s",
                    "file_unique_id": f"AQAD{rid}s",
                    "file_size": 1200,
                    "width": 90,
                    "height": 67,
                },
                {
                    "file_id": f"AgACAgIAAx{rid}m",
                    "file_unique_id": f"AQAD{rid}m",
                    "file_size": 18000,
                    "width": 320,
                    "height": 240,
                },
                {
                    "file_id": f"AgACAgIAAx{rid}x",
                    "file_unique_id": f"AQAD{rid}x",
                    "file_size": 90000,
                    "width": 1280,
                    "height": 960,
                },
            ]
            if text:
                msg["caption"] = text
        elif type in ("document", "video", "audio", "voice", "sticker"):
            defaults: dict[str, dict[str, Any]] = {
                "document": {"file_name": "rechnung.pdf", "mime_type": "application/pdf"},
                "video": {"mime_type": "video/mp4", "duration": 4, "width": 640, "height": 360},
                "audio": {"mime_type": "audio/mpeg", "duration": 120},
                "voice": {"mime_type": "audio/ogg", "duration": 3},
                "sticker": {
                    "emoji": "👍",
                    "width": 512,
                    "height": 512,
                    "is_animated": False,
                    "is_video": False,
                    "type": "regular",
                },
            }
            msg[type] = {
                "file_id": f"BQACAgIAAx{rid}",
                "file_unique_id": f"AgAD{rid}",
                **defaults[type],
                **extra,
            }
            if text and type != "sticker":
                msg["caption"] = text
        elif type == "location":
            msg["location"] = {"latitude": 52.520008, "longitude": 13.404954, **extra}
        elif type == "contact":
            msg["contact"] = {
                "phone_number": "+4917000000000",
                "first_name": text or "Erika",
                **extra,
            }
        elif type == "poll":
            msg["poll"] = {
                "id": str(rid),
                "question": text or "?",
                "options": [],
                "is_closed": False,
            }
        else:
            msg[type] = extra or {"value": text}
        if reply_to is not None:
            msg["reply_to_message"] = {
                "message_id": reply_to,
                "from": self._bot_user(),
                "chat": msg["chat"],
                "date": int(time.time()),
            }
        if type in SAMPLE_FILES:
            content, pattern = SAMPLE_FILES[type]
            n = len(self.files) + 1
            if type == "photo":
                for size in msg["photo"]:
                    self.add_file(size["file_id"], content, pattern.format(n=n))
            else:
                self.add_file(msg[type]["file_id"], content, pattern.format(n=n))
        update: dict[str, Any] = {"update_id": self._next_update_id()}
        if type == "edited_message":
            msg["edit_date"] = int(time.time())
            update["edited_message"] = msg
        else:
            update["message"] = msg
        return update

    async def customer_sends(
        self,
        chat_id: int | str,
        *,
        first_name: str = "Kunde",
        last_name: str | None = None,
        username: str | None = None,
        type: str = "text",
        body: dict[str, Any] | str | None = None,
        reply_to: int | None = None,
        wait: bool = True,
        media: bytes | None = None,
    ) -> int:
        """Post a customer's message to the webhook; return its update_id.

        `media` replaces the sample bytes served for the message's file.
        """
        update = self.build_inbound(
            chat_id,
            first_name=first_name,
            last_name=last_name,
            username=username,
            type=type,
            body=body,
            reply_to=reply_to,
        )
        if media is not None and type in SAMPLE_FILES:
            obj = update["message"][type]
            for item in obj if isinstance(obj, list) else [obj]:
                self.add_file(item["file_id"], media, self.files[item["file_id"]][1])
            if isinstance(obj, dict):
                obj["file_size"] = len(media)
        self.inbound.append(update)
        if wait:
            await self.deliver(update)
        else:
            self._spawn(self.deliver(update))
        return int(update["update_id"])

    async def customer_presses(
        self, chat_id: int | str, data: str, *, message_id: int | None = None, wait: bool = True
    ) -> str:
        """The customer taps an inline button of a bot message; return the callback query id."""
        chat = int(chat_id)
        shown = [
            e
            for e in self.ledger
            if e.chat_id == chat and (message_id is None or e.message_id == message_id)
        ]
        entry = next(
            (
                e
                for e in reversed(shown)
                if any(
                    b.get("callback_data") == data
                    for row in (e.payload.get("reply_markup") or {}).get("inline_keyboard", [])
                    for b in row
                )
            ),
            None,
        )
        if entry is None:
            raise ValueError("no message to this chat shows a button with that callback_data")
        user = self._users.get(chat, {"id": chat, "is_bot": False, "first_name": "Kunde"})
        query_id = str(self._rng.randrange(10**18, 10**19))
        query = {
            "id": query_id,
            "from": user,
            "message": self._message_object(entry),
            "chat_instance": str(-abs(hash((chat, self.config.bot_token))) % 10**18),
            "data": data,
        }
        self._callbacks[query_id] = query
        update = {"update_id": self._next_update_id(), "callback_query": query}
        self.inbound.append(update)
        if wait:
            await self.deliver(update)
        else:
            self._spawn(self.deliver(update))
        return query_id

    async def close(self) -> None:
        """Stop background webhook tasks and close the HTTP client."""
        self._closing.set()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._client.aclose()

    # -- web app -----------------------------------------------------------------------

    def _build_app(self) -> Litestar:
        sim = self

        @post("/{bot_token:str}/{method:str}", status_code=200)
        async def api(
            bot_token: FromPath[str], method: FromPath[str], request: Request[Any, Any, Any]
        ) -> ASGIApp:
            if not bot_token.startswith("bot"):
                return _json_app(404, {"ok": False, "error_code": 404, "description": "Not Found"})
            token = bot_token[3:]
            ctype = request.headers.get("content-type", "")
            params: Any
            if ctype.startswith("multipart/form-data"):
                params = {}
                for name, value in (await request.form()).multi_items():
                    if isinstance(value, UploadFile):
                        content = await value.read()
                        sim.uploads.append(
                            {
                                "method": method,
                                "field": name,
                                "filename": value.filename,
                                "content_type": value.content_type,
                                "content": content,
                            }
                        )
                        params[name] = f"upload:{value.filename}:{len(content)}"
                    else:
                        params[name] = value
                return await sim.api_endpoint(token, method, params)
            raw = await request.body()
            if "json" in ctype:
                try:
                    params = json.loads(raw) if raw else {}
                except (ValueError, UnicodeDecodeError):
                    params = None
            else:
                params = dict(parse_qsl(raw.decode("utf-8", "replace")))
            params = (
                {**dict(request.query_params), **params} if isinstance(params, dict) else params
            )
            return await sim.api_endpoint(token, method, params)

        @get("/file/{bot_token:str}/{file_path:path}", sync_to_thread=False)
        def file(bot_token: FromPath[str], file_path: FromPath[str]) -> Response[bytes]:
            token = bot_token[3:] if bot_token.startswith("bot") else ""
            status, content = sim.file_download(token, file_path.lstrip("/"))
            return Response(content, status_code=status, media_type="application/octet-stream")

        @post("/_sim/inbound", status_code=200)
        async def inbound(request: Request[Any, Any, Any]) -> dict[str, Any]:
            data = await _json_body(request)
            if not isinstance(data.get("chat_id"), int | str):
                raise HTTPException(status_code=400, detail="chat_id is required")
            try:
                update_id = await sim.customer_sends(
                    data["chat_id"],
                    first_name=data.get("first_name") or "Kunde",
                    last_name=data.get("last_name"),
                    username=data.get("username"),
                    type=data.get("type") or "text",
                    body=data.get("body"),
                    wait=False,
                )
            except (ValueError, TypeError) as exc:
                raise HTTPException(status_code=400, detail=str(exc)) from None
            return {"update_id": update_id}

        @post("/_sim/press", status_code=200)
        async def press(request: Request[Any, Any, Any]) -> dict[str, Any]:
            data = await _json_body(request)
            try:
                query_id = await sim.customer_presses(
                    data["chat_id"],
                    str(data["data"]),
                    message_id=data.get("message_id"),
                    wait=False,
                )
            except (KeyError, ValueError, TypeError) as exc:
                raise HTTPException(status_code=400, detail=str(exc)) from None
            return {"callback_query_id": query_id}

        @post("/_sim/block", status_code=200)
        async def block(request: Request[Any, Any, Any]) -> dict[str, Any]:
            data = await _json_body(request)
            try:
                sim.block(data["chat_id"])
            except (KeyError, ValueError, TypeError) as exc:
                raise HTTPException(status_code=400, detail=str(exc)) from None
            return {"blocked": sorted(sim.blocked)}

        @get("/_sim/ledger", sync_to_thread=False)
        def ledger() -> list[dict[str, Any]]:
            return [e.to_json() for e in sim.ledger]

        @get("/_sim/messages", sync_to_thread=False)
        def messages(chat_id: FromQuery[int]) -> list[dict[str, Any]]:
            return sim.messages_for(chat_id)

        @get("/_sim/stats", sync_to_thread=False)
        def stats() -> dict[str, Any]:
            return sim.stats()

        return Litestar(
            route_handlers=[api, file, inbound, press, block, ledger, messages, stats],
            openapi_config=None,
        )


async def _json_body(request: Request[Any, Any, Any]) -> dict[str, Any]:
    try:
        data = json.loads(await request.body())
    except ValueError:
        raise HTTPException(status_code=400, detail="body must be JSON") from None
    if not isinstance(data, dict):
        raise HTTPException(status_code=400, detail="body must be a JSON object")
    return data


def _json_app(status: int, body: dict[str, Any]) -> ASGIApp:
    data = json.dumps(body, ensure_ascii=False).encode()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(data)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": data, "more_body": False})

    return app


def _dropping_app() -> ASGIApp:
    """An answer that breaks off in the middle of its body."""
    data = b'{"ok":true,"result":{"message_id":'

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(data) + 64).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": data, "more_body": True})

    return app


@asynccontextmanager
async def run_telegram_simulator(
    config: TelegramSimConfig | None = None, host: str = "127.0.0.1", port: int = 0
) -> AsyncIterator[TelegramSimulator]:
    """Serve a Telegram simulator over HTTP and yield it with base_url set."""
    sim = TelegramSimulator(config)
    try:
        async with serve_asgi(sim.app, host, port) as base_url:
            sim.base_url = base_url
            yield sim
    finally:
        if not sim._closing.is_set():
            await sim.close()


def add_cli(sim_app: typer.Typer) -> None:
    """Register `tresen sim telegram` on the given Typer app."""

    @sim_app.command("telegram")
    def sim_telegram(
        port: Annotated[int, typer.Option(min=1, max=65535)] = 9002,
        webhook: Annotated[str, typer.Option(help="tresen's webhook URL for the channel.")] = "",
        host: str = "127.0.0.1",
        bot_token: str = TelegramSimConfig.bot_token,
        secret_token: str = TelegramSimConfig.secret_token,
        mps: Annotated[float, typer.Option(help="Overall cap, messages/s.")] = 30.0,
        fault_rate: Annotated[float, typer.Option(min=0.0, max=1.0)] = 0.0,
        duplicate_rate: Annotated[float, typer.Option(min=0.0, max=1.0)] = 0.0,
    ) -> None:
        """Run the Telegram Bot API simulator on its own."""
        if webhook and not webhook.startswith(("http://", "https://")):
            raise typer.BadParameter("--webhook must be an http(s) URL")
        if not _SECRET_RE.match(secret_token):
            raise typer.BadParameter("--secret-token must be 1-256 characters of A-Z a-z 0-9 _ -")
        config = TelegramSimConfig(
            bot_token=bot_token,
            secret_token=secret_token,
            webhook_url=webhook or None,
            mps=mps,
            fault_rate=fault_rate,
            duplicate_rate=duplicate_rate,
        )

        async def run() -> None:
            async with run_telegram_simulator(config, host=host, port=port) as sim:
                typer.echo(f"Telegram simulator on {sim.base_url}")
                typer.echo(f"  bot token: {config.bot_token}  secret token: {config.secret_token}")
                typer.echo(
                    f'  a customer writes: POST {sim.base_url}/_sim/inbound {{"chat_id": 4711, "body": "Hallo"}}'
                )
                await asyncio.Event().wait()

        with suppress(KeyboardInterrupt):
            asyncio.run(run())
