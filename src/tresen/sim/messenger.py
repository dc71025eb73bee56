"""Simulated Messenger Platform Send API (Facebook Messenger and Instagram), over real HTTP."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import asdict, dataclass
from typing import Annotated, Any
from urllib.parse import parse_qsl

import httpx
import typer
from litestar import Litestar, Request, Response, get, post
from litestar.exceptions import HTTPException
from litestar.params import FromPath, FromQuery

from tresen.sim.base import SimBase, TokenBucket, serve_simulator
from tresen.sim.whatsapp import encode_webhook, sign_body

__all__ = [
    "MessengerLedgerEntry",
    "MessengerSimConfig",
    "MessengerSimulator",
    "add_cli",
    "run_messenger_simulator",
]

UPDATE_TAGS = frozenset({"CONFIRMED_EVENT_UPDATE", "POST_PURCHASE_UPDATE", "ACCOUNT_UPDATE"})
MESSAGING_TYPES = frozenset({"RESPONSE", "UPDATE", "MESSAGE_TAG"})
ATTACHMENT_TYPES = frozenset({"image", "audio", "video", "file", "template"})
STATUS_RANK = {"accepted": 0, "delivered": 1, "read": 2}
# Files the simulated CDN serves when a test names none (first bytes match the type).
SAMPLE_MEDIA: dict[str, tuple[bytes, str]] = {
    "image": (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(64) + b"\xff\xd9", "image/jpeg"),
    "video": (b"\x00\x00\x00\x18ftypmp42" + bytes(64), "video/mp4"),
    "audio": (b"\x00\x00\x00\x18ftypM4A " + bytes(64), "audio/mp4"),
    "file": (b"%PDF-1.4\n%sim\ntrailer<<>>\n%%EOF\n", "application/pdf"),
}
_WINDOW_MESSAGE = (
    "(#10) This message is sent outside of allowed window. Learn more about the new policy "
    "here: https://developers.facebook.com/docs/messenger-platform/policy-overview"
)


@dataclass
class MessengerSimConfig:
    """Behaviour of one simulated Facebook Page (or Instagram professional account)."""

    page_access_token: str = "sim-page-token"
    app_secret: str = "sim-app-secret"
    page_id: str = "300000000000001"
    object: str = "page"
    """'page' for Messenger, 'instagram' for Instagram messaging."""
    webhook_url: str | None = None
    status_delays: tuple[float, float] = (0.05, 0.15)
    """Seconds after accepting a send until the delivery and the read webhook."""
    auto_read: bool = True
    echoes: bool = False
    duplicate_rate: float = 0.0
    fault_rate: float = 0.0
    fault_kinds: tuple[str, ...] = ("5xx", "timeout")
    timeout_seconds: float = 15.0
    mps: float = 300.0
    window_seconds: float = 24 * 3600
    human_agent_seconds: float = 7 * 24 * 3600
    webhook_retry_delays: tuple[float, ...] = (0.2, 0.5, 1, 2, 5, 10, 20, 30)
    seed: int | None = None


@dataclass
class MessengerLedgerEntry:
    """One outbound message the simulator accepted."""

    mid: str
    recipient_id: str
    messaging_type: str
    tag: str | None
    payload: dict[str, Any]
    accepted_at: float
    metadata: str | None = None
    status: str = "accepted"

    def to_json(self) -> dict[str, Any]:
        """Return the entry as a JSON-ready dict."""
        return asdict(self)


class SendError(Exception):
    """A Graph API error answer."""

    def __init__(
        self, code: int, message: str, subcode: int | None = None, http_status: int = 400
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.subcode = subcode
        self.http_status = http_status

    def body(self, fbtrace_id: str) -> dict[str, Any]:
        """The Graph API error body."""
        err: dict[str, Any] = {
            "message": self.message,
            "type": "OAuthException",
            "code": self.code,
            "fbtrace_id": fbtrace_id,
        }
        if self.subcode is not None:
            err["error_subcode"] = self.subcode
        return {"error": err}


def _invalid(message: str, subcode: int | None = None) -> SendError:
    return SendError(100, f"(#100) {message}", subcode)


class MessengerSimulator(SimBase):
    """A simulated Send API and webhook sender for one Page or Instagram account."""

    config: MessengerSimConfig
    ledger: list[MessengerLedgerEntry]

    def __init__(self, config: MessengerSimConfig | None = None) -> None:
        self.config = config or MessengerSimConfig()
        if self.config.object not in ("page", "instagram"):
            raise ValueError("object must be 'page' or 'instagram'")
        self._start(self.config, fault_kinds=frozenset({"5xx", "timeout"}))
        self.media: dict[str, tuple[bytes, str]] = {}
        self.media_downloads = 0
        self.blocked: set[str] = set()
        self._last_inbound: dict[str, float] = {}
        self._bucket = TokenBucket(self.config.mps)
        self.app = self._build_app()

    @property
    def instagram(self) -> bool:
        """Whether this simulates Instagram messaging."""
        return self.config.object == "instagram"

    # -- windows and bookkeeping -------------------------------------------------------

    def customer_wrote(self, psid: str, at: float | None = None) -> None:
        """Record that the customer wrote at `at` (default now): opens the window."""
        self._last_inbound[psid] = time.time() if at is None else at

    def duplicates(self) -> int:
        """Count accepted messages whose metadata or (recipient, message) was accepted before."""
        return self._repeats.count(
            self.ledger,
            lambda e: (
                ("meta", e.metadata)
                if e.metadata
                else ("msg", e.recipient_id, json.dumps(e.payload.get("message"), sort_keys=True))
            ),
        )

    def messages_for(self, psid: str) -> list[dict[str, Any]]:
        """The business messages sent to psid with their last status."""
        return [
            {
                "id": e.mid,
                "messaging_type": e.messaging_type,
                "tag": e.tag,
                "message": e.payload.get("message"),
                "status": e.status,
                "accepted_at": e.accepted_at,
            }
            for e in self.ledger
            if e.recipient_id == psid
        ]

    def _new_mid(self) -> str:
        raw = base64.urlsafe_b64encode(self._rng.randbytes(30)).decode().rstrip("=")
        return ("aWdf" if self.instagram else "m_") + raw

    # -- Send API ----------------------------------------------------------------------

    def _validate(self, payload: Any) -> tuple[str, str, str | None]:
        """Validate a Send API body; return (recipient id, messaging_type, tag)."""
        if not isinstance(payload, dict):
            raise _invalid("The request body must be a JSON object")
        recipient = payload.get("recipient")
        psid = recipient.get("id") if isinstance(recipient, dict) else None
        if not isinstance(psid, str) or not psid:
            raise _invalid("param recipient[id] must be a non-empty string")
        mtype = payload.get("messaging_type", "RESPONSE")
        if mtype not in MESSAGING_TYPES:
            raise _invalid(f"param messaging_type must be one of {sorted(MESSAGING_TYPES)}")
        tag = payload.get("tag")
        allowed = {"HUMAN_AGENT"} | (set() if self.instagram else set(UPDATE_TAGS))
        if mtype == "MESSAGE_TAG" and tag not in allowed:
            raise _invalid(f"param tag must be one of {sorted(allowed)}", 2018268)
        message = payload.get("message")
        if not isinstance(message, dict):
            raise _invalid("param message must be an object")
        text, attachment = message.get("text"), message.get("attachment")
        if (text is None) == (attachment is None):
            raise _invalid("message must have exactly one of text or attachment")
        if text is not None:
            if not isinstance(text, str) or not text:
                raise _invalid("param message[text] must be a non-empty UTF-8 string")
            too_long = len(text.encode()) > 1000 if self.instagram else len(text) > 2000
            if too_long:
                raise _invalid("param message[text] must be UTF-8 and less than 2000 characters")
        if attachment is not None:
            a_payload = attachment.get("payload") if isinstance(attachment, dict) else None
            if not isinstance(attachment, dict) or attachment.get("type") not in ATTACHMENT_TYPES:
                raise _invalid(f"attachment type must be one of {sorted(ATTACHMENT_TYPES)}")
            url = a_payload.get("url") if isinstance(a_payload, dict) else None
            if attachment["type"] != "template" and (
                not isinstance(url, str) or not url.startswith(("http://", "https://"))
            ):
                raise _invalid("param message[attachment][payload][url] must be an http(s) URL")
        replies = message.get("quick_replies")
        if replies is not None:
            if not isinstance(replies, list) or not 1 <= len(replies) <= 13:
                raise _invalid("param message[quick_replies] must have 1 to 13 elements")
            for r in replies:
                title = r.get("title") if isinstance(r, dict) else None
                if r.get("content_type", "text") == "text" and (
                    not isinstance(title, str) or not 1 <= len(title) <= 20
                ):
                    raise _invalid("quick reply titles must be 1 to 20 characters")
                if len(str(r.get("payload", ""))) > 1000:
                    raise _invalid("quick reply payloads are at most 1000 characters")
        metadata = message.get("metadata")
        if metadata is not None and (not isinstance(metadata, str) or len(metadata) > 1000):
            raise _invalid("param message[metadata] must be a string of at most 1000 characters")
        return psid, mtype, tag if mtype == "MESSAGE_TAG" else None

    def _check_policy(self, psid: str, mtype: str, tag: str | None) -> None:
        """Apply the recipient, window and rate rules."""
        if psid in self.blocked:
            raise SendError(551, "This person isn't available right now.", 1545041)
        last = self._last_inbound.get(psid)
        if last is None:
            raise _invalid("No matching user found", 2018001)
        age = time.time() - last
        if tag in UPDATE_TAGS:
            return
        limit = (
            self.config.human_agent_seconds if tag == "HUMAN_AGENT" else self.config.window_seconds
        )
        if age >= limit:
            raise SendError(10, _WINDOW_MESSAGE, 2018278)

    def handle_send(
        self, token: str | None, raw: bytes
    ) -> tuple[int, dict[str, Any] | None, str | None]:
        """Process one send request; return (http status, body, fault kind)."""
        fbtrace = base64.urlsafe_b64encode(self._rng.randbytes(9)).decode()
        try:
            if not token or not hmac.compare_digest(
                token.encode(), self.config.page_access_token.encode()
            ):
                raise SendError(190, "Invalid OAuth access token - Cannot parse access token")
            try:
                payload = json.loads(raw)
            except (ValueError, UnicodeDecodeError):
                raise _invalid("The body is not valid JSON") from None
            psid, mtype, tag = self._validate(payload)
            fault = self._decide_fault()
            if fault is not None:
                self.faults[fault] += 1
                return 0, None, fault
            if not self._bucket.take():
                raise SendError(613, "(#613) Calls to this api have exceeded the rate limit.")
            self._check_policy(psid, mtype, tag)
        except SendError as exc:
            self.rejected[exc.code] += 1
            return exc.http_status, exc.body(fbtrace), None
        message = payload["message"]
        metadata = message.get("metadata")
        entry = MessengerLedgerEntry(
            mid=self._new_mid(),
            recipient_id=psid,
            messaging_type=mtype,
            tag=tag,
            payload=payload,
            accepted_at=time.time(),
            metadata=metadata if isinstance(metadata, str) else None,
        )
        self.ledger.append(entry)
        self._schedule_receipts(entry)
        return 200, {"recipient_id": psid, "message_id": entry.mid}, None

    async def send_endpoint(self, token: str | None, raw: bytes) -> Response[Any]:
        """Answer one Send API call (possibly with an injected fault)."""
        status, body, fault = self.handle_send(token, raw)
        if fault == "timeout":
            with suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), self.config.timeout_seconds)
        if fault is not None:
            code, msg = self._rng.choice(
                ((1, "An unknown error occurred"), (2, "Service temporarily unavailable"))
            )
            err = SendError(code, msg, http_status=self._rng.choice((500, 503)))
            return Response(err.body("sim"), status_code=err.http_status)
        return Response(body, status_code=status)

    # -- webhooks ----------------------------------------------------------------------

    def _envelope(self, events: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "object": self.config.object,
            "entry": [
                {"id": self.config.page_id, "time": int(time.time() * 1000), "messaging": events}
            ],
        }

    async def _post_once(self, body: bytes) -> bool:
        url = self.config.webhook_url
        if url is None:
            return True
        headers = {
            "Content-Type": "application/json",
            "X-Hub-Signature-256": sign_body(self.config.app_secret, body),
        }
        try:
            response = await self._client.post(url, content=body, headers=headers)
        except httpx.HTTPError:
            return False
        return response.status_code == 200

    async def deliver(self, events: list[dict[str, Any]]) -> bool:
        """Sign and post messaging events, sometimes twice."""
        if self.config.webhook_url is None or self._closing.is_set():
            return False
        body = encode_webhook(self._envelope(events))
        return await self._post_maybe_twice(lambda: self._post_once(body))

    def _schedule_receipts(self, entry: MessengerLedgerEntry) -> None:
        if self.config.echoes:
            echo = {**entry.payload["message"], "mid": entry.mid, "is_echo": True, "app_id": 1}
            self._spawn(self._later(0.0, entry, None, self._event(entry, "message", echo, True)))
        delivered_after, read_after = self.config.status_delays
        if not self.instagram:
            self._spawn(self._later(delivered_after, entry, "delivered", None))
        if self.config.auto_read:
            self._spawn(self._later(read_after, entry, "read", None))

    def _event(
        self, entry: MessengerLedgerEntry, key: str, value: dict[str, Any], from_page: bool
    ) -> dict[str, Any]:
        page, psid = {"id": self.config.page_id}, {"id": entry.recipient_id}
        return {
            "sender": page if from_page else psid,
            "recipient": psid if from_page else page,
            "timestamp": int(time.time() * 1000),
            key: value,
        }

    async def _later(
        self,
        delay: float,
        entry: MessengerLedgerEntry,
        status: str | None,
        event: dict[str, Any] | None,
    ) -> None:
        await asyncio.sleep(delay)
        if event is None:
            now_ms = int(time.time() * 1000)
            if status == "delivered":
                event = self._event(
                    entry, "delivery", {"mids": [entry.mid], "watermark": now_ms}, False
                )
            elif self.instagram:
                event = self._event(entry, "read", {"mid": entry.mid}, False)
            else:
                event = self._event(entry, "read", {"watermark": now_ms}, False)
            if status is not None and STATUS_RANK[status] > STATUS_RANK[entry.status]:
                entry.status = status
        await self.deliver([event])

    # -- customer side -----------------------------------------------------------------

    def build_inbound(
        self, psid: str, *, type: str = "text", body: str | None = None, payload: str | None = None
    ) -> dict[str, Any]:
        """Build one inbound messaging event of a type a customer can produce."""
        if not isinstance(psid, str) or not psid.isdigit() or len(psid) > 64:
            raise ValueError("psid must be digits")
        if body is not None and not isinstance(body, str):
            raise ValueError("body must be a string")
        mid = self._new_mid()
        event: dict[str, Any] = {
            "sender": {"id": psid},
            "recipient": {"id": self.config.page_id},
            "timestamp": int(time.time() * 1000),
        }
        if type == "text":
            if not body:
                raise ValueError("a text message needs a non-empty body")
            event["message"] = {"mid": mid, "text": body}
        elif type == "quick_reply":
            title = body or "Ja"
            event["message"] = {
                "mid": mid,
                "text": title,
                "quick_reply": {"payload": payload or title},
            }
        elif type == "postback":
            title = body or "Los geht's"
            event["postback"] = {"mid": mid, "title": title, "payload": payload or title}
        elif type in ("image", "video", "audio", "file"):
            url = payload or (
                self.host_media(*SAMPLE_MEDIA[type])
                if self.base_url
                else f"https://scontent.example/{type}/{mid}"
            )
            event["message"] = {
                "mid": mid,
                "attachments": [{"type": type, "payload": {"url": url}}],
            }
        elif type == "reaction":
            target = payload or next(
                (e.mid for e in reversed(self.ledger) if e.recipient_id == psid), None
            )
            if target is None:
                raise ValueError("a reaction needs a message to react to")
            event["reaction"] = {
                "mid": target,
                "action": "react",
                "emoji": body or "\u2764",
                "reaction": "love",
            }
        elif type == "unsupported":
            event["message"] = (
                {"mid": mid, "is_unsupported": True}
                if self.instagram
                else {"mid": mid, "attachments": [{"type": "fallback", "payload": None}]}
            )
        else:
            raise ValueError(
                "type must be text, quick_reply, postback, image, video, audio, file, "
                "reaction or unsupported"
            )
        return event

    async def customer_sends(
        self,
        psid: str,
        *,
        type: str = "text",
        body: str | None = None,
        payload: str | None = None,
        wait: bool = True,
        media: tuple[bytes, str] | None = None,
    ) -> str:
        """Post a signed inbound webhook from a customer; return the message's mid.

        `media` (bytes, content type) is hosted on the simulator's CDN for an attachment.
        """
        if media is not None and payload is None:
            payload = self.host_media(*media)
        event = self.build_inbound(psid, type=type, body=body, payload=payload)
        self.customer_wrote(psid)
        self.inbound.append(event)
        if wait:
            await self.deliver([event])
        else:
            self._spawn(self.deliver([event]))
        content = event.get("message") or event.get("postback") or event.get("reaction") or {}
        return str(content.get("mid", ""))

    def host_media(self, content: bytes, content_type: str) -> str:
        """Serve a file under an unguessable CDN URL (as the platform's signed URLs); return it."""
        token = base64.urlsafe_b64encode(self._rng.randbytes(18)).decode()
        self.media[token] = (content, content_type)
        return f"{self.base_url}/_sim/cdn/{token}"

    # -- web app -----------------------------------------------------------------------

    def _build_app(self) -> Litestar:
        sim = self

        async def _send(request: Request[Any, Any, Any]) -> Response[Any]:
            token = request.query_params.get("access_token")
            auth = request.headers.get("authorization", "")
            if token is None and auth.startswith("Bearer "):
                token = auth[7:].strip()
            raw = await request.body()
            if request.headers.get("content-type", "").startswith(
                "application/x-www-form-urlencoded"
            ):
                # The Graph API takes form posts too: objects as JSON text, the token a field.
                fields = dict(parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True))
                token = fields.pop("access_token", None) or token
                raw = json.dumps({k: _json_or_text(v) for k, v in fields.items()}).encode()
            return await sim.send_endpoint(token, raw)

        @post("/{version:str}/me/messages", status_code=200)
        async def me_messages(
            version: FromPath[str], request: Request[Any, Any, Any]
        ) -> Response[Any]:
            return await _send(request)

        @post("/{version:str}/{page_id:str}/messages", status_code=200)
        async def page_messages(
            version: FromPath[str], page_id: FromPath[str], request: Request[Any, Any, Any]
        ) -> Response[Any]:
            if page_id != sim.config.page_id:
                err = _invalid(f"Object with ID '{page_id}' does not exist")
                return Response(err.body("sim"), status_code=400)
            return await _send(request)

        @get("/{version:str}/me", sync_to_thread=False)
        def me(version: FromPath[str], request: Request[Any, Any, Any]) -> Response[Any]:
            token = request.query_params.get("access_token") or ""
            if not hmac.compare_digest(token.encode(), sim.config.page_access_token.encode()):
                err = SendError(190, "Invalid OAuth access token - Cannot parse access token")
                return Response(err.body("sim"), status_code=err.http_status)
            name = "tresen Simulator (Instagram)" if sim.instagram else "tresen Simulator"
            return Response({"id": sim.config.page_id, "name": name})

        @get("/_sim/cdn/{token:str}", sync_to_thread=False)
        def cdn(token: FromPath[str]) -> Response[Any]:
            found = sim.media.get(token)
            if found is None:
                return Response(b"", status_code=404)
            sim.media_downloads += 1
            return Response(found[0], media_type=found[1])

        @post("/_sim/inbound", status_code=200)
        async def inbound(request: Request[Any, Any, Any]) -> dict[str, str]:
            try:
                data = json.loads(await request.body())
            except ValueError:
                raise HTTPException(status_code=400, detail="body must be JSON") from None
            if not isinstance(data, dict) or not isinstance(data.get("psid"), str):
                raise HTTPException(status_code=400, detail="psid (string) is required")
            try:
                mid = await sim.customer_sends(
                    data["psid"],
                    type=str(data.get("type") or "text"),
                    body=data.get("body"),
                    payload=data.get("payload"),
                    wait=False,
                )
            except ValueError as exc:
                raise HTTPException(status_code=400, detail=str(exc)) from None
            return {"mid": mid}

        @get("/_sim/messages", sync_to_thread=False)
        def messages(psid: FromQuery[str]) -> list[dict[str, Any]]:
            return sim.messages_for(psid)

        return Litestar(
            route_handlers=[
                me_messages,
                page_messages,
                me,
                cdn,
                inbound,
                messages,
                *sim._sim_routes(),
            ],
            openapi_config=None,
            # No logging set-up of its own: Litestar's default logs every request at INFO.
            logging_config=None,
        )


def _json_or_text(value: str) -> Any:
    """A form field of a Graph API call: an object or array as JSON text, else the text."""
    if value.startswith(("{", "[")):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


@asynccontextmanager
async def run_messenger_simulator(
    config: MessengerSimConfig | None = None, host: str = "127.0.0.1", port: int = 0
) -> AsyncIterator[MessengerSimulator]:
    """Serve a Messenger (or Instagram) simulator over HTTP and yield it with base_url set."""
    async with serve_simulator(MessengerSimulator(config), host, port) as sim:
        yield sim


def _command(sim_app: typer.Typer, name: str, obj: str, label: str, default_port: int) -> None:
    @sim_app.command(name, help=f"Run the {label} Send API simulator on its own.")
    def run_sim(
        port: Annotated[int, typer.Option(min=1, max=65535)] = default_port,
        webhook: Annotated[str, typer.Option(help="tresen's webhook URL for the channel.")] = "",
        host: str = "127.0.0.1",
        page_access_token: str = "sim-page-token",
        app_secret: str = "sim-app-secret",
        page_id: str = "300000000000001",
        mps: Annotated[float, typer.Option(min=0.1, help="Send API cap, calls/s.")] = 300.0,
        fault_rate: Annotated[float, typer.Option(min=0.0, max=1.0)] = 0.0,
        duplicate_rate: Annotated[float, typer.Option(min=0.0, max=1.0)] = 0.0,
        echoes: Annotated[bool, typer.Option(help="Post message echoes.")] = False,
    ) -> None:
        if webhook and not webhook.startswith(("http://", "https://")):
            raise typer.BadParameter("--webhook must be an http(s) URL")
        config = MessengerSimConfig(
            page_access_token=page_access_token,
            app_secret=app_secret,
            page_id=page_id,
            object=obj,
            webhook_url=webhook or None,
            mps=mps,
            fault_rate=fault_rate,
            duplicate_rate=duplicate_rate,
            echoes=echoes,
        )

        async def run() -> None:
            async with run_messenger_simulator(config, host=host, port=port) as sim:
                typer.echo(f"{label} simulator on {sim.base_url}")
                await asyncio.Event().wait()

        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(run())


def add_cli(sim_app: typer.Typer) -> None:
    """Register `tresen sim messenger` and `tresen sim instagram`."""
    _command(sim_app, "messenger", "page", "Messenger", 9011)
    _command(sim_app, "instagram", "instagram", "Instagram", 9012)
