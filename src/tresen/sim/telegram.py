"""Simulated Telegram Bot API: a real HTTP server speaking Telegram's wire format."""

from __future__ import annotations

import asyncio
import hmac
import json
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import asdict, dataclass
from typing import Annotated, Any
from urllib.parse import parse_qsl

import httpx
import typer
from litestar import Litestar, Request, Response, get, post, route
from litestar.datastructures import UploadFile
from litestar.enums import HttpMethod
from litestar.exceptions import HTTPException
from litestar.params import FromPath, FromQuery
from litestar.types import ASGIApp

from tresen.sim.base import SimBase, TokenBucket, json_app, serve_simulator
from tresen.sim.telegram_checks import (
    CHAT_ACTIONS,
    ApiError,
    bad,
    chat_id_of,
    check_commands,
    check_markup,
    decoded,
    int_param,
    is_inline_keyboard,
    truthy,
)

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
    "sendVoice": "voice",
    "sendAnimation": "animation",
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
_DROPPED = b'{"ok":true,"result":{"message_id":'
"""The start of an answer that breaks off (the "drop" fault)."""
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
    edited_at: float | None = None
    edited_text: str | None = None
    edited_markup: dict[str, Any] | None = None
    deleted: bool = False

    def to_json(self) -> dict[str, Any]:
        """Return the entry as a JSON-ready dict."""
        return asdict(self)


def summarize(method: str, payload: dict[str, Any]) -> str:
    """A short text for an outbound message."""
    field_name = SEND_METHODS.get(method, "text")
    if method == "sendMessage":
        return str(payload.get("text", ""))
    return f"[{field_name}] " + str(payload.get("caption") or payload.get(field_name))


class TelegramSimulator(SimBase):
    """A simulated Telegram Bot API for one bot."""

    config: TelegramSimConfig
    ledger: list[LedgerEntry]

    def __init__(self, config: TelegramSimConfig | None = None) -> None:
        self.config = config or TelegramSimConfig()
        self._start(self.config)
        if not _SECRET_RE.match(self.config.secret_token):
            raise ValueError("secret_token must be 1-256 characters of A-Z a-z 0-9 _ -")
        self.answered: list[dict[str, Any]] = []
        self.webhook_calls: list[dict[str, Any]] = []
        self.blocked: set[int] = set()
        self._update_id = self._rng.randrange(100_000_000, 900_000_000)
        self._message_ids: dict[int, int] = {}
        self._callbacks: dict[str, dict[str, Any]] = {}
        self._users: dict[int, dict[str, Any]] = {}
        self._bucket = TokenBucket(self.config.mps, max(1.0, self.config.mps))
        self._chat_buckets: dict[int, TokenBucket] = {}
        self.files: dict[str, tuple[bytes, str]] = {}
        self.file_downloads = 0
        self.uploads: list[dict[str, Any]] = []
        self.pending: list[dict[str, Any]] = []
        """Updates waiting for getUpdates (kept while no webhook is set)."""
        self.chat_actions: list[dict[str, Any]] = []
        self.edits: list[dict[str, Any]] = []
        self.commands: dict[str, list[dict[str, str]]] = {}
        self.last_webhook_error: tuple[float, str] | None = None
        self._allowed_updates: list[str] | None = None
        self._update_arrived = asyncio.Event()
        self.app = self._build_app()

    # -- bookkeeping -------------------------------------------------------------------

    def duplicates(self) -> int:
        """Count accepted messages whose (chat, method, content) was accepted before."""
        return self._repeats.count(
            self.ledger,
            lambda e: json.dumps([e.chat_id, e.method, e.payload], sort_keys=True, default=str),
        )

    def stats(self) -> dict[str, Any]:
        """Counters as a JSON-ready dict."""
        return {**super().stats(), "answered_callbacks": len(self.answered)}

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
                raise bad("request body must be a JSON object or a form")
            if method in SEND_METHODS:
                return self._send(method, params)
            handler = self._methods().get(method)
            if handler is None:
                raise ApiError(404, "Not Found")
            result, description = handler(params)
            body: dict[str, Any] = {"ok": True, "result": result}
            if description:
                body["description"] = description
            return 200, body, None
        except ApiError as exc:
            self.rejected[exc.code] += 1
            return exc.code, exc.body(), None

    def _methods(self) -> dict[str, Any]:
        """The methods besides sending: name -> handler(params) -> (result, description)."""
        return {
            "getMe": lambda p: (self._me(), None),
            "setWebhook": lambda p: (True, self._set_webhook(p)),
            "deleteWebhook": lambda p: (True, self._delete_webhook(p)),
            "getWebhookInfo": lambda p: (self._webhook_info(), None),
            "getUpdates": lambda p: (self._get_updates(p), None),
            "getFile": lambda p: (self._get_file(p), None),
            "answerCallbackQuery": lambda p: (self._answer(p), None),
            "sendChatAction": lambda p: (self._chat_action(p), None),
            "editMessageText": lambda p: (self._edit(p, text=True), None),
            "editMessageReplyMarkup": lambda p: (self._edit(p, text=False), None),
            "deleteMessage": lambda p: (self._delete(p), None),
            "setMyCommands": lambda p: (self._set_commands(p), None),
            "getMyCommands": lambda p: (self.commands.get(self._commands_key(p), []), None),
            "deleteMyCommands": lambda p: (self._delete_commands(p), None),
        }

    def _me(self) -> dict[str, Any]:
        return {
            **self._bot_user(),
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
        }

    def _set_webhook(self, params: dict[str, Any]) -> str:
        url = params.get("url")
        if not isinstance(url, str) or not url:
            self.config.webhook_url = None
            return "Webhook is already deleted"
        if not url.startswith(("http://", "https://")):
            raise bad("bad webhook: An HTTPS URL must be provided for webhook")
        secret = params.get("secret_token")
        if secret is not None:
            if not isinstance(secret, str) or not _SECRET_RE.match(secret):
                raise bad("secret token contains unallowed characters")
            self.config.secret_token = secret
        allowed = decoded(params.get("allowed_updates"))
        if allowed is not None and not (
            isinstance(allowed, list) and all(isinstance(a, str) for a in allowed)
        ):
            raise bad('field "allowed_updates" must be an Array of String')
        if truthy(params.get("drop_pending_updates")):
            self.pending.clear()
        self.webhook_calls.append({"url": url, "secret_token": secret, "allowed_updates": allowed})
        self.config.webhook_url = url
        self._allowed_updates = allowed
        return "Webhook was set"

    def _delete_webhook(self, params: dict[str, Any]) -> str:
        if truthy(params.get("drop_pending_updates")):
            self.pending.clear()
        if self.config.webhook_url is None:
            return "Webhook is already deleted"
        self.config.webhook_url = None
        self._allowed_updates = None
        return "Webhook was deleted"

    def _webhook_info(self) -> dict[str, Any]:
        """WebhookInfo: https://core.telegram.org/bots/api#webhookinfo."""
        url = self.config.webhook_url or ""
        info: dict[str, Any] = {
            "url": url,
            "has_custom_certificate": False,
            "pending_update_count": len(self.pending),
        }
        if url:
            info["max_connections"] = 40
            info["ip_address"] = "127.0.0.1"
            if self._allowed_updates is not None:
                info["allowed_updates"] = self._allowed_updates
            if self.last_webhook_error is not None:
                info["last_error_date"] = int(self.last_webhook_error[0])
                info["last_error_message"] = self.last_webhook_error[1]
        return info

    def _get_updates(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        """getUpdates: refused while a webhook is set; an offset confirms earlier updates."""
        if self.config.webhook_url:
            raise ApiError(
                409,
                "Conflict: can't use getUpdates method while webhook is active; "
                "use deleteWebhook to delete the webhook first",
            )
        offset = int_param(params, "offset")
        limit = int_param(params, "limit") or 100
        if offset is not None:
            self.pending = [u for u in self.pending if u["update_id"] >= offset]
        return self.pending[: max(1, min(limit, 100))]

    async def _long_poll(self, params: dict[str, Any]) -> None:
        """getUpdates with a timeout waits until an update newer than the offset comes."""
        try:
            timeout = min(float(params.get("timeout") or 0), 50.0)
            offset = int_param(params, "offset") or 0
        except (ApiError, TypeError, ValueError):
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while (
            self.config.webhook_url is None
            and not any(u["update_id"] >= offset for u in self.pending)
            and not self._closing.is_set()
        ):
            left = deadline - loop.time()
            if left <= 0:
                return
            self._update_arrived.clear()
            with suppress(TimeoutError):
                await asyncio.wait_for(self._update_arrived.wait(), left)

    def _chat_action(self, params: dict[str, Any]) -> bool:
        chat_id = chat_id_of(params.get("chat_id"))
        action = params.get("action")
        if action not in CHAT_ACTIONS:
            raise bad("wrong parameter action in request")
        if chat_id in self.blocked:
            raise ApiError(403, "Forbidden: bot was blocked by the user")
        self.chat_actions.append({"chat_id": chat_id, "action": action, "at": time.time()})
        return True

    def _entry(self, params: dict[str, Any], missing: str) -> LedgerEntry:
        """The bot's message named by chat_id and message_id."""
        chat_id = chat_id_of(params.get("chat_id"))
        message_id = int_param(params, "message_id")
        if message_id is None:
            raise bad("message identifier is not specified")
        for entry in reversed(self.ledger):
            if entry.chat_id == chat_id and entry.message_id == message_id:
                if entry.deleted:
                    break
                return entry
        raise bad(missing)

    def _edit(self, params: dict[str, Any], *, text: bool) -> dict[str, Any]:
        """editMessageText / editMessageReplyMarkup of a message the bot sent."""
        if params.get("inline_message_id"):
            raise bad("inline messages are not simulated")
        entry = self._entry(params, "message to edit not found")
        markup = check_markup(params.get("reply_markup"))
        if markup is not None and not is_inline_keyboard(markup):
            raise bad("inline keyboard expected")
        before = (entry.edited_text or entry.payload.get("text"), self._markup_of(entry))
        new_text = before[0]
        if text:
            if entry.method != "sendMessage":
                raise bad("there is no text in the message to edit")
            new_text = params.get("text")
            if not isinstance(new_text, str) or not new_text.strip():
                raise bad("message text is empty")
            if len(new_text) > 4096:
                raise bad("MESSAGE_TOO_LONG")
        if (new_text, markup) == before:
            raise bad(
                "message is not modified: specified new message content and reply markup are "
                "exactly the same as a current content and reply markup of the message"
            )
        entry.edited_text = new_text if text else entry.edited_text
        entry.edited_markup = markup if markup is not None else {}
        entry.edited_at = time.time()
        self.edits.append(
            {"chat_id": entry.chat_id, "message_id": entry.message_id, "text": new_text}
        )
        return self._message_object(entry)

    def _delete(self, params: dict[str, Any]) -> bool:
        entry = self._entry(params, "message to delete not found")
        entry.deleted = True
        return True

    @staticmethod
    def _commands_key(params: dict[str, Any]) -> str:
        scope = decoded(params.get("scope")) or {"type": "default"}
        return json.dumps([scope, params.get("language_code") or ""], sort_keys=True)

    def _set_commands(self, params: dict[str, Any]) -> bool:
        self.commands[self._commands_key(params)] = check_commands(params.get("commands"))
        return True

    def _delete_commands(self, params: dict[str, Any]) -> bool:
        self.commands.pop(self._commands_key(params), None)
        return True

    def add_file(self, file_id: str, content: bytes, file_path: str) -> None:
        """Serve `content` for a file id (getFile, then GET /file/bot<token>/<file_path>)."""
        self.files[file_id] = (content, file_path)

    def _get_file(self, params: dict[str, Any]) -> dict[str, Any]:
        file_id = params.get("file_id")
        found = self.files.get(file_id) if isinstance(file_id, str) else None
        if found is None:
            raise bad("invalid file_id")
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
            raise bad("query is too old and response timeout expired or query ID is invalid")
        if any(a["callback_query_id"] == query_id for a in self.answered):
            raise bad("query is too old and response timeout expired or query ID is invalid")
        self.answered.append({"callback_query_id": query_id, "text": params.get("text")})
        return True

    def _send(self, method: str, params: dict[str, Any]) -> tuple[int, dict[str, Any], str | None]:
        cfg = self.config
        chat_id = chat_id_of(params.get("chat_id"))
        field_name = SEND_METHODS[method]
        if method == "sendMessage":
            text = params.get("text")
            if not isinstance(text, str) or not text.strip():
                raise bad("message text is empty")
            if len(text) > 4096:
                raise bad("message is too long")
        else:
            media = params.get(field_name)
            if not isinstance(media, str) or not media:
                raise bad(f"there is no {field_name} in the request")
            caption = params.get("caption")
            if caption is not None and (not isinstance(caption, str) or len(caption) > 1024):
                raise bad("message caption is too long")
        markup = check_markup(params.get("reply_markup"))
        if chat_id in self.blocked:
            raise ApiError(403, "Forbidden: bot was blocked by the user")
        payload = dict(params)
        if markup is not None:
            payload["reply_markup"] = markup
        fault = self._decide_fault()
        if fault is not None:
            self.faults[fault] += 1
            if self._rng.random() < cfg.fault_after_accept_share:
                with suppress(ApiError):
                    self._accept(chat_id, method, payload)
                    self.faults_after_accept += 1
            return 0, {}, fault
        message = self._accept(chat_id, method, payload)
        return 200, {"ok": True, "result": message}, None

    def _accept(self, chat_id: int, method: str, payload: dict[str, Any]) -> dict[str, Any]:
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
        entry = LedgerEntry(
            message_id=self._next_message_id(chat_id),
            chat_id=chat_id,
            method=method,
            payload=payload,
            accepted_at=time.time(),
        )
        self.ledger.append(entry)
        return self._message_object(entry)

    @staticmethod
    def _markup_of(entry: LedgerEntry) -> dict[str, Any] | None:
        """The inline keyboard a message shows now (other keyboards are not part of it)."""
        markup = entry.edited_markup if entry.edited_at is not None else None
        if markup is None:
            markup = entry.payload.get("reply_markup")
        return markup if is_inline_keyboard(markup) else None

    def _chat_object(self, chat_id: int) -> dict[str, Any]:
        """A private Chat: the user's names, never their language_code."""
        user = self._users.get(chat_id, {"id": chat_id, "first_name": "Kunde"})
        fields = ("id", "first_name", "last_name", "username")
        chat: dict[str, Any] = {k: user[k] for k in fields if k in user}
        return {**chat, "type": "private"}

    def _message_object(self, entry: LedgerEntry) -> dict[str, Any]:
        msg: dict[str, Any] = {
            "message_id": entry.message_id,
            "from": self._bot_user(),
            "chat": self._chat_object(entry.chat_id),
            "date": int(entry.accepted_at),
        }
        if entry.edited_at is not None:
            msg["edit_date"] = int(entry.edited_at)
        field_name = SEND_METHODS[entry.method]
        if entry.method == "sendMessage":
            msg["text"] = entry.edited_text or entry.payload["text"]
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
            if field_name in ("video", "audio", "voice", "animation"):
                msg[field_name]["duration"] = 1
            if field_name in ("video", "animation", "sticker"):
                msg[field_name] |= {"width": 512, "height": 512}
            if field_name == "sticker":
                msg[field_name] |= {"type": "regular", "is_animated": False, "is_video": False}
        if entry.payload.get("caption"):
            msg["caption"] = entry.payload["caption"]
        markup = self._markup_of(entry)
        if markup is not None:
            msg["reply_markup"] = markup
        return msg

    async def api_endpoint(self, token: str, method: str, params: Any) -> ASGIApp:
        """Handle /bot<token>/<method>; return the raw ASGI answer."""
        if method == "getUpdates" and isinstance(params, dict):
            await self._long_poll(params)
        status, body, fault = self.handle(token, method, params)
        if fault is None:
            return json_app(status, body, ensure_ascii=False)
        gateway = {"ok": False, "error_code": 502, "description": "Bad Gateway"}
        return await self._fault_answer(
            fault,
            gateway,
            statuses=(502,),
            timeout_status=502,
            partial=_DROPPED,
            ensure_ascii=False,
        )

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
        except httpx.HTTPError as exc:
            self.last_webhook_error = (time.time(), f"Connection failed: {type(exc).__name__}")
            return False
        if 200 <= response.status_code < 300:
            return True
        self.last_webhook_error = (
            time.time(),
            f"Wrong response from the webhook: {response.status_code} {response.reason_phrase}",
        )
        return False

    async def deliver(self, update: dict[str, Any]) -> bool:
        """Post one Update to the webhook (sometimes twice, like a retry after a lost answer).

        Without a webhook the update waits for getUpdates.
        """
        if self._closing.is_set():
            return False
        if self.config.webhook_url is None:
            self.pending.append(update)
            self._update_arrived.set()
            return False
        body = json.dumps(update, ensure_ascii=False).encode()
        return await self._post_maybe_twice(lambda: self._post_once(body))

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

    # -- web app -----------------------------------------------------------------------

    def _build_app(self) -> Litestar:
        sim = self

        # The Bot API takes GET and POST alike, with parameters in the query string or the body.
        @route(
            "/{bot_token:str}/{method:str}",
            http_method=[HttpMethod.GET, HttpMethod.POST],
            status_code=200,
        )
        async def api(
            bot_token: FromPath[str], method: FromPath[str], request: Request[Any, Any, Any]
        ) -> ASGIApp:
            if not bot_token.startswith("bot"):
                return json_app(404, {"ok": False, "error_code": 404, "description": "Not Found"})
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

        @get("/_sim/messages", sync_to_thread=False)
        def messages(chat_id: FromQuery[int]) -> list[dict[str, Any]]:
            return sim.messages_for(chat_id)

        return Litestar(
            route_handlers=[api, file, inbound, press, block, messages, *sim._sim_routes()],
            openapi_config=None,
            # No logging set-up of its own: Litestar's default logs every request at INFO.
            logging_config=None,
        )


async def _json_body(request: Request[Any, Any, Any]) -> dict[str, Any]:
    try:
        data = json.loads(await request.body())
    except ValueError:
        raise HTTPException(status_code=400, detail="body must be JSON") from None
    if not isinstance(data, dict):
        raise HTTPException(status_code=400, detail="body must be a JSON object")
    return data


@asynccontextmanager
async def run_telegram_simulator(
    config: TelegramSimConfig | None = None, host: str = "127.0.0.1", port: int = 0
) -> AsyncIterator[TelegramSimulator]:
    """Serve a Telegram simulator over HTTP and yield it with base_url set."""
    async with serve_simulator(TelegramSimulator(config), host, port) as sim:
        yield sim


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
