"""Simulated Twilio Programmable Messaging API: a real HTTP server speaking Twilio's wire format."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import random
import re
import time
from collections import Counter
from collections.abc import AsyncIterator, Coroutine, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import asdict, dataclass, field
from email.utils import formatdate
from typing import Annotated, Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx
import typer
from litestar import Litestar, Request, Response, get, post
from litestar.exceptions import HTTPException
from litestar.params import FromPath, FromQuery
from litestar.types import ASGIApp, Receive, Scope, Send

from tresen.channels.sms import segments
from tresen.sim.common import TokenBucket, WebhookStats
from tresen.sim.server import serve_asgi

__all__ = [
    "LedgerEntry",
    "SmsSimConfig",
    "SmsSimulator",
    "add_cli",
    "run_sms_simulator",
    "sign_request",
]

API_VERSION = "2010-04-01"
# Twilio's own opt-out handling knows only the English words; German ones are for tresen:
# https://help.twilio.com/articles/223134027
TWILIO_OPT_OUT = ("STOP", "STOPALL", "UNSUBSCRIBE", "END", "QUIT", "CANCEL", "REVOKE", "OPTOUT")
TWILIO_OPT_IN = ("START", "YES", "UNSTOP")
STATUS_RANK = {"queued": 0, "sending": 1, "sent": 2, "delivered": 3, "undelivered": 4, "failed": 4}
_E164 = re.compile(r"^\+[1-9]\d{6,14}$")
_ERRORS: dict[int, tuple[str, int]] = {
    20003: ("Authenticate", 401),
    20404: ("The requested resource was not found", 404),
    20429: ("Too Many Requests", 429),
    21211: ("The 'To' number is not a valid phone number.", 400),
    21602: ("Message body is required.", 400),
    21604: ("A 'To' phone number is required.", 400),
    21606: ("The 'From' phone number provided is not a valid message-capable phone number.", 400),
    21609: ("Invalid StatusCallback: it must be an http(s) URL", 400),
    21610: ("Attempt to send to unsubscribed recipient", 400),
    21611: ("This 'From' number has exceeded the maximum number of queued messages", 400),
    21617: ("The concatenated message body exceeds the 1600 character limit.", 400),
    21620: ("Invalid media URL(s)", 400),
    20500: ("An internal server error has occurred", 500),
}
_FAILURE_TEXT = {
    30003: "Unreachable destination handset",
    30005: "Unknown destination handset",
    30006: "Landline or unreachable carrier",
    30007: "Message filtered",
    30008: "Unknown error",
}


@dataclass
class SmsSimConfig:
    """Behaviour of one simulated Twilio account with one sending number."""

    account_sid: str = "AC" + "0" * 31 + "1"
    auth_token: str = "sim-auth-token"
    phone_number: str = "+4930123456700"
    messaging_service_sid: str | None = None
    webhook_url: str | None = None
    """Where inbound SMS are posted (the number's "A message comes in" URL)."""
    status_callback_url: str | None = None
    """Used when a send request has no StatusCallback (like a messaging service's default)."""
    status_delays: tuple[float, float, float] = (0.02, 0.05, 0.1)
    mps: float = 10.0
    burst: float | None = None
    queue_limit: int | None = None
    """Messages still queued (not yet `sent`) above which sends get 21611."""
    undeliverable: dict[str, int] = field(default_factory=dict)
    """Numbers whose messages end `undelivered` with this error code (e.g. 30003)."""
    fault_rate: float = 0.0
    fault_kinds: tuple[str, ...] = ("5xx", "timeout", "drop")
    fault_after_accept_share: float = 0.0
    timeout_seconds: float = 15.0
    duplicate_rate: float = 0.0
    webhook_retry_delays: tuple[float, ...] = (0.2, 0.5, 1, 2, 5, 10, 20, 30)
    seed: int | None = None


@dataclass
class LedgerEntry:
    """One outbound message the simulator accepted."""

    sid: str
    to: str
    from_: str
    body: str
    media_urls: list[str]
    status_callback: str | None
    accepted_at: float
    num_segments: int
    status: str = "queued"
    error_code: int | None = None

    def to_json(self) -> dict[str, Any]:
        """Return the entry as a JSON-ready dict."""
        return asdict(self)


class TwilioError(Exception):
    """A REST API error answer."""

    def __init__(self, code: int, message: str | None = None, http_status: int | None = None):
        default_message, default_status = _ERRORS.get(code, ("Error", 400))
        super().__init__(f"{code}: {message or default_message}")
        self.code = code
        self.message = message or default_message
        self.http_status = http_status or default_status

    def body(self) -> dict[str, Any]:
        """The JSON error body Twilio answers with."""
        return {
            "code": self.code,
            "message": self.message,
            "more_info": f"https://www.twilio.com/docs/errors/{self.code}",
            "status": self.http_status,
        }


def sign_request(auth_token: str, url: str, params: Sequence[tuple[str, str]]) -> str:
    """X-Twilio-Signature for a form POST to url."""
    data = url + "".join(k + v for k, v in sorted(params))
    return base64.b64encode(
        hmac.new(auth_token.encode(), data.encode(), hashlib.sha1).digest()
    ).decode()


def _keyword(text: str) -> str:
    return text.strip().upper()


def _segments(body: str) -> int:
    return max(1, segments(body).segments)


class SmsSimulator:
    """A simulated Twilio Messaging API for one account and sender."""

    def __init__(self, config: SmsSimConfig | None = None) -> None:
        self.config = config or SmsSimConfig()
        unknown = set(self.config.fault_kinds) - {"5xx", "timeout", "drop"}
        if unknown:
            raise ValueError(f"unknown fault kinds: {sorted(unknown)}")
        self.base_url: str | None = None
        self.ledger: list[LedgerEntry] = []
        self.inbound: list[dict[str, str]] = []
        self.media: dict[str, tuple[bytes, str]] = {}
        self.media_downloads = 0
        self.opted_out: set[str] = set()
        self.webhook_stats = WebhookStats()
        self.rejected: Counter[int] = Counter()
        self.faults: Counter[str] = Counter()
        self.faults_after_accept = 0
        self._rng = random.Random(self.config.seed)
        self._bucket = TokenBucket(self.config.mps, self.config.burst or max(1.0, self.config.mps))
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closing = asyncio.Event()
        self._client = httpx.AsyncClient(timeout=httpx.Timeout(10.0))
        self.app = self._build_app()

    # -- bookkeeping -------------------------------------------------------------------

    def duplicates(self) -> int:
        """Count accepted messages whose callback reference or (to, body, media) came before."""
        seen: set[tuple[str, ...]] = set()
        count = 0
        for e in self.ledger:
            query = dict(parse_qsl(urlsplit(e.status_callback or "").query))
            ref = query.get("tresen_ref")
            key = ("ref", ref) if ref else ("msg", e.to, e.body, *e.media_urls)
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
            "opted_out": len(self.opted_out),
            "duplicates": self.duplicates(),
            "faults_after_accept": self.faults_after_accept,
        }

    def messages_for(self, number: str) -> list[dict[str, Any]]:
        """The business messages sent to `number` with their last status."""
        return [
            {
                "sid": e.sid,
                "body": e.body,
                "media_urls": e.media_urls,
                "status": e.status,
                "error_code": e.error_code,
                "accepted_at": e.accepted_at,
            }
            for e in self.ledger
            if e.to == number
        ]

    def _sid(self, prefix: str) -> str:
        return prefix + self._rng.randbytes(16).hex()

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- sending -----------------------------------------------------------------------

    def _check_auth(self, account_sid: str, authorization: str | None) -> None:
        cfg = self.config
        user = password = ""
        if authorization and authorization.startswith("Basic "):
            with suppress(ValueError):
                user, _, password = base64.b64decode(authorization[6:]).decode().partition(":")
        ok_user = hmac.compare_digest(user.encode(), cfg.account_sid.encode())
        ok_password = hmac.compare_digest(password.encode(), cfg.auth_token.encode())
        if not (ok_user and ok_password):
            raise TwilioError(20003)
        if account_sid != cfg.account_sid:
            raise TwilioError(
                20404, f"The requested resource /Accounts/{account_sid} was not found"
            )

    def _validate(self, form: dict[str, list[str]]) -> tuple[str, str, str, list[str], str | None]:
        cfg = self.config

        def one(name: str) -> str | None:
            values = form.get(name)
            return values[-1] if values else None

        to = one("To")
        if not to:
            raise TwilioError(21604)
        if not _E164.match(to):
            raise TwilioError(21211, f"The 'To' number {to} is not a valid phone number.")
        sender = one("From")
        service = one("MessagingServiceSid")
        if service is not None and service != cfg.messaging_service_sid:
            raise TwilioError(21606, "The MessagingServiceSid is not valid for this account.")
        if sender is not None and sender != cfg.phone_number:
            raise TwilioError(21606)
        if sender is None and service is None:
            raise TwilioError(21606, "A 'From' phone number or MessagingServiceSid is required.")
        body = one("Body") or ""
        media = form.get("MediaUrl", [])
        if not body and not media:
            raise TwilioError(21602)
        if len(body) > 1600:
            raise TwilioError(21617)
        if len(media) > 10 or not all(u.startswith(("http://", "https://")) for u in media):
            raise TwilioError(21620)
        callback = one("StatusCallback") or cfg.status_callback_url
        if callback is not None and not callback.startswith(("http://", "https://")):
            raise TwilioError(21609)
        return to, sender or cfg.phone_number, body, media, callback

    def _accept(self, form: dict[str, list[str]]) -> LedgerEntry:
        to, sender, body, media, callback = self._validate(form)
        if to in self.opted_out:
            raise TwilioError(21610)
        if self.config.queue_limit is not None:
            queued = sum(1 for e in self.ledger if e.status == "queued")
            if queued >= self.config.queue_limit:
                raise TwilioError(21611)
        if not self._bucket.take():
            raise TwilioError(20429)
        entry = LedgerEntry(
            sid=self._sid("MM" if media else "SM"),
            to=to,
            from_=sender,
            body=body,
            media_urls=list(media),
            status_callback=callback,
            accepted_at=time.time(),
            num_segments=_segments(body),
        )
        self.ledger.append(entry)
        self._schedule_statuses(entry)
        return entry

    def resource(self, entry: LedgerEntry) -> dict[str, Any]:
        """The Message resource JSON for a ledger entry."""
        cfg = self.config
        return {
            "sid": entry.sid,
            "account_sid": cfg.account_sid,
            "messaging_service_sid": cfg.messaging_service_sid,
            "to": entry.to,
            "from": entry.from_,
            "body": entry.body,
            "status": entry.status,
            "num_segments": str(entry.num_segments),
            "num_media": str(len(entry.media_urls)),
            "direction": "outbound-api",
            "api_version": API_VERSION,
            "price": None,
            "price_unit": "USD",
            "error_code": entry.error_code,
            "error_message": None,
            "date_created": formatdate(entry.accepted_at, usegmt=True),
            "date_updated": formatdate(time.time(), usegmt=True),
            "date_sent": None,
            "uri": f"/{API_VERSION}/Accounts/{cfg.account_sid}/Messages/{entry.sid}.json",
            "subresource_uris": {
                "media": f"/{API_VERSION}/Accounts/{cfg.account_sid}/Messages/{entry.sid}/Media.json"
            },
        }

    def handle_send(
        self, account_sid: str, authorization: str | None, raw: bytes
    ) -> tuple[int, dict[str, Any] | None, str | None]:
        """Process one send request; return (http status, body, fault kind)."""
        cfg = self.config
        try:
            self._check_auth(account_sid, authorization)
            form: dict[str, list[str]] = {}
            try:
                for k, v in parse_qsl(raw.decode(), keep_blank_values=True):
                    form.setdefault(k, []).append(v)
            except (UnicodeDecodeError, ValueError):
                raise TwilioError(21602, "The request body is not form-encoded.") from None
            if cfg.fault_rate > 0 and cfg.fault_kinds and self._rng.random() < cfg.fault_rate:
                fault = self._rng.choice(cfg.fault_kinds)
                self.faults[fault] += 1
                if self._rng.random() < cfg.fault_after_accept_share:
                    with suppress(TwilioError):
                        self._accept(form)
                        self.faults_after_accept += 1
                return 0, None, fault
            entry = self._accept(form)
        except TwilioError as exc:
            self.rejected[exc.code] += 1
            return exc.http_status, exc.body(), None
        return 201, self.resource(entry), None

    def _schedule_statuses(self, entry: LedgerEntry) -> None:
        code = self.config.undeliverable.get(entry.to)
        names = ["queued", "sent", "undelivered" if code else "delivered"]
        for name, delay in zip(names, self.config.status_delays, strict=True):
            self._spawn(self._status_later(entry, name, delay, code))

    async def _status_later(
        self, entry: LedgerEntry, name: str, delay: float, code: int | None
    ) -> None:
        await asyncio.sleep(delay)
        if STATUS_RANK[name] > STATUS_RANK[entry.status]:
            entry.status = name
            if name == "undelivered":
                entry.error_code = code
        if not entry.status_callback:
            return
        params = [
            ("AccountSid", self.config.account_sid),
            ("ApiVersion", API_VERSION),
            ("From", entry.from_),
            ("MessageSid", entry.sid),
            ("MessageStatus", name),
            ("SmsSid", entry.sid),
            ("SmsStatus", name),
            ("To", entry.to),
        ]
        if self.config.messaging_service_sid:
            params.append(("MessagingServiceSid", self.config.messaging_service_sid))
        if name == "delivered":
            params.append(("RawDlrDoneDate", time.strftime("%y%m%d%H%M", time.gmtime())))
        if name == "undelivered" and code:
            params.append(("ErrorCode", str(code)))
        await self._deliver(entry.status_callback, params)

    async def send_endpoint(
        self, account_sid: str, authorization: str | None, raw: bytes
    ) -> ASGIApp:
        """Handle POST /2010-04-01/Accounts/{sid}/Messages.json; return the raw ASGI answer."""
        status, body, fault = self.handle_send(account_sid, authorization, raw)
        if fault is None:
            assert body is not None
            return _json_app(status, body)
        unavailable = TwilioError(20500).body()
        if fault == "5xx":
            return _json_app(self._rng.choice((500, 503)), unavailable)
        if fault == "timeout":
            with suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), self.config.timeout_seconds)
            return _json_app(500, unavailable)
        return _dropping_app()

    # -- webhooks ----------------------------------------------------------------------

    async def _post_once(self, url: str, params: list[tuple[str, str]]) -> bool:
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": sign_request(self.config.auth_token, url, params),
            "User-Agent": "TwilioProxy/1.1",
            "I-Twilio-Idempotency-Token": self._sid(""),
        }
        try:
            response = await self._client.post(url, content=urlencode(params), headers=headers)
        except httpx.HTTPError:
            return False
        return 200 <= response.status_code < 300

    async def _post_with_retries(self, url: str, params: list[tuple[str, str]]) -> bool:
        self.webhook_stats.posted += 1
        if await self._post_once(url, params):
            self.webhook_stats.delivered += 1
            return True
        for delay in self.config.webhook_retry_delays:
            await asyncio.sleep(delay)
            if self._closing.is_set():
                break
            self.webhook_stats.retried += 1
            if await self._post_once(url, params):
                self.webhook_stats.delivered += 1
                return True
        self.webhook_stats.failed += 1
        return False

    async def _deliver(self, url: str | None, params: list[tuple[str, str]]) -> bool:
        if url is None or self._closing.is_set():
            return False
        twice = self.config.duplicate_rate > 0 and self._rng.random() < self.config.duplicate_rate
        ok = await self._post_with_retries(url, params)
        if twice:
            self.webhook_stats.duplicated += 1
            await self._post_with_retries(url, params)
        return ok

    # -- customer side -----------------------------------------------------------------

    def build_inbound(
        self,
        from_number: str,
        body: str = "",
        media_urls: Sequence[str] = (),
        media_types: Sequence[str] | None = None,
    ) -> list[tuple[str, str]]:
        """The form fields Twilio posts for one inbound SMS/MMS."""
        if not isinstance(from_number, str) or not _E164.match(from_number):
            raise ValueError("from_number must be an E.164 number like +4915112345678")
        if not isinstance(body, str) or len(body) > 1600:
            raise ValueError("body must be a string of at most 1600 characters")
        if len(media_urls) > 10:
            raise ValueError("at most 10 media URLs")
        if not body and not media_urls:
            raise ValueError("an inbound message needs a body or media")
        types = list(media_types or ["image/jpeg"] * len(media_urls))
        if len(types) != len(media_urls):
            raise ValueError("media_types must match media_urls")
        cfg = self.config
        sid = self._sid("MM" if media_urls else "SM")
        params = [
            ("ToCountry", "DE"),
            ("ToState", ""),
            ("SmsMessageSid", sid),
            ("NumMedia", str(len(media_urls))),
            ("ToCity", ""),
            ("FromZip", ""),
            ("SmsSid", sid),
            ("FromState", ""),
            ("SmsStatus", "received"),
            ("FromCity", ""),
            ("Body", body),
            ("FromCountry", "DE"),
            ("To", cfg.phone_number),
            ("ToZip", ""),
            ("NumSegments", str(_segments(body))),
            ("MessageSid", sid),
            ("AccountSid", cfg.account_sid),
            ("From", from_number),
            ("ApiVersion", API_VERSION),
        ]
        if cfg.messaging_service_sid:
            params.append(("MessagingServiceSid", cfg.messaging_service_sid))
        for i, (url, ctype) in enumerate(zip(media_urls, types, strict=True)):
            params += [(f"MediaUrl{i}", url), (f"MediaContentType{i}", ctype)]
        return params

    async def customer_sends(
        self,
        from_number: str,
        body: str = "",
        *,
        media_urls: Sequence[str] = (),
        media_types: Sequence[str] | None = None,
        media: Sequence[tuple[bytes, str]] = (),
        wait: bool = True,
    ) -> str:
        """Post a signed inbound SMS webhook from a customer; returns its MessageSid.

        `media` (bytes, content type) pairs are hosted by the simulator behind basic auth and
        sent as MediaUrlN, as Twilio hosts the files of an MMS.
        """
        if media:
            media_urls = [*media_urls, *(self.host_media(c, t) for c, t in media)]
            media_types = [*(media_types or ["image/jpeg"] * (len(media_urls) - len(media)))]
            media_types += [t for _, t in media]
        params = self.build_inbound(from_number, body, media_urls, media_types)
        word = _keyword(body)
        if word in TWILIO_OPT_OUT:
            self.opted_out.add(from_number)
        elif word in TWILIO_OPT_IN:
            self.opted_out.discard(from_number)
        self.inbound.append(dict(params))
        if wait:
            await self._deliver(self.config.webhook_url, params)
        else:
            self._spawn(self._deliver(self.config.webhook_url, params))
        return dict(params)["MessageSid"]

    def host_media(self, content: bytes, content_type: str) -> str:
        """Serve a file under a Media URL of this account; return the URL."""
        media_sid = self._sid("ME")
        self.media[media_sid] = (content, content_type)
        return (
            f"{self.base_url}/{API_VERSION}/Accounts/{self.config.account_sid}"
            f"/Messages/{self._sid('MM')}/Media/{media_sid}"
        )

    def media_download(self, account_sid: str, media_sid: str, auth: str | None) -> Response[Any]:
        """A hosted file, for the account's credentials only (HTTP basic auth)."""
        expected = (
            "Basic "
            + base64.b64encode(
                f"{self.config.account_sid}:{self.config.auth_token}".encode()
            ).decode()
        )
        if account_sid != self.config.account_sid or not hmac.compare_digest(
            (auth or "").encode(), expected.encode()
        ):
            return Response(b"", status_code=401)
        found = self.media.get(media_sid)
        if found is None:
            return Response(b"", status_code=404)
        self.media_downloads += 1
        return Response(found[0], media_type=found[1])

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

        @post(f"/{API_VERSION}/Accounts/{{account_sid:str}}/Messages.json", status_code=201)
        async def create_message(
            account_sid: FromPath[str], request: Request[Any, Any, Any]
        ) -> ASGIApp:
            raw = await request.body()
            return await sim.send_endpoint(account_sid, request.headers.get("authorization"), raw)

        @get(f"/{API_VERSION}/Accounts/{{account_sid:str}}/Messages/{{name:str}}")
        async def fetch_message(
            account_sid: FromPath[str], name: FromPath[str], request: Request[Any, Any, Any]
        ) -> ASGIApp:
            try:
                sim._check_auth(account_sid, request.headers.get("authorization"))
            except TwilioError as exc:
                return _json_app(exc.http_status, exc.body())
            sid = name.removesuffix(".json")
            for entry in sim.ledger:
                if entry.sid == sid:
                    return _json_app(200, sim.resource(entry))
            return _json_app(404, TwilioError(20404).body())

        @get(
            f"/{API_VERSION}/Accounts/{{account_sid:str}}/Messages/{{message_sid:str}}"
            "/Media/{media_sid:str}",
            sync_to_thread=False,
        )
        def media_file(
            account_sid: FromPath[str],
            message_sid: FromPath[str],
            media_sid: FromPath[str],
            request: Request[Any, Any, Any],
        ) -> Response[Any]:
            return sim.media_download(account_sid, media_sid, request.headers.get("authorization"))

        @post("/_sim/inbound", status_code=200)
        async def inbound(request: Request[Any, Any, Any]) -> dict[str, str]:
            try:
                data = json.loads(await request.body())
            except ValueError:
                raise HTTPException(status_code=400, detail="body must be JSON") from None
            if not isinstance(data, dict) or not isinstance(data.get("from"), str):
                raise HTTPException(status_code=400, detail="from (string) is required")
            media = data.get("media_urls") or []
            if not isinstance(media, list) or not all(isinstance(u, str) for u in media):
                raise HTTPException(status_code=400, detail="media_urls must be strings")
            body = data.get("body") or ""
            if not isinstance(body, str):
                raise HTTPException(status_code=400, detail="body must be a string")
            try:
                sid = await sim.customer_sends(data["from"], body, media_urls=media, wait=False)
            except ValueError as exc:
                raise HTTPException(status_code=400, detail=str(exc)) from None
            return {"sid": sid}

        @get("/_sim/ledger", sync_to_thread=False)
        def ledger() -> list[dict[str, Any]]:
            return [e.to_json() for e in sim.ledger]

        @get("/_sim/messages", sync_to_thread=False)
        def messages(number: FromQuery[str]) -> list[dict[str, Any]]:
            return sim.messages_for(number)

        @get("/_sim/stats", sync_to_thread=False)
        def stats() -> dict[str, Any]:
            return sim.stats()

        return Litestar(
            route_handlers=[
                create_message,
                fetch_message,
                media_file,
                inbound,
                ledger,
                messages,
                stats,
            ],
            openapi_config=None,
        )


def _json_app(status: int, body: dict[str, Any]) -> ASGIApp:
    """An ASGI app that answers with a JSON body."""
    data = json.dumps(body).encode()

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
    """An ASGI app that starts a 201 answer and stops in the middle of its body."""
    data = json.dumps({"sid": "SM", "status": "queued"}).encode()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 201,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(data) + 64).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": data[:10], "more_body": True})

    return app


@asynccontextmanager
async def run_sms_simulator(
    config: SmsSimConfig | None = None, host: str = "127.0.0.1", port: int = 0
) -> AsyncIterator[SmsSimulator]:
    """Serve an SMS simulator over HTTP and yield it with base_url set."""
    sim = SmsSimulator(config)
    try:
        async with serve_asgi(sim.app, host, port) as base_url:
            sim.base_url = base_url
            try:
                yield sim
            finally:
                await sim.close()
    finally:
        if not sim._closing.is_set():
            await sim.close()


def add_cli(sim_app: typer.Typer) -> None:
    """Register `tresen sim sms` on the given Typer app."""

    @sim_app.command("sms")
    def sim_sms(
        port: Annotated[int, typer.Option(min=1, max=65535)] = 9002,
        webhook: Annotated[str, typer.Option(help="tresen's webhook URL for the channel.")] = "",
        host: str = "127.0.0.1",
        account_sid: str = SmsSimConfig.account_sid,
        auth_token: str = SmsSimConfig.auth_token,
        phone_number: str = SmsSimConfig.phone_number,
        mps: Annotated[float, typer.Option(min=0.01, help="Rate cap, messages/s.")] = 10.0,
        fault_rate: Annotated[float, typer.Option(min=0.0, max=1.0)] = 0.0,
        duplicate_rate: Annotated[float, typer.Option(min=0.0, max=1.0)] = 0.0,
    ) -> None:
        """Run the Twilio-compatible SMS simulator on its own."""
        if webhook and not webhook.startswith(("http://", "https://")):
            typer.echo("error: --webhook must be an http(s) URL", err=True)
            raise typer.Exit(2)
        if not _E164.match(phone_number):
            typer.echo("error: --phone-number must be in E.164 form", err=True)
            raise typer.Exit(2)
        config = SmsSimConfig(
            account_sid=account_sid,
            auth_token=auth_token,
            phone_number=phone_number,
            webhook_url=webhook or None,
            mps=mps,
            fault_rate=fault_rate,
            duplicate_rate=duplicate_rate,
        )

        async def run() -> None:
            async with run_sms_simulator(config, host=host, port=port) as sim:
                typer.echo(f"SMS simulator (Twilio API) on {sim.base_url}")
                typer.echo(f"  channel add sms --api-base {sim.base_url} ...")
                await asyncio.Event().wait()

        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(run())
