"""Simulated Twilio Programmable Messaging API: a real HTTP server speaking Twilio's wire format."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import re
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import asdict, dataclass, field
from typing import Annotated, Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx
import typer
from litestar import Litestar, Request, delete, get, post
from litestar.exceptions import HTTPException
from litestar.params import FromPath, FromQuery
from litestar.types import ASGIApp

from tresen.channels.sms import segments
from tresen.sim.base import (
    SimBase,
    TokenBucket,
    bytes_app,
    empty_app,
    json_app,
    serve_simulator,
)
from tresen.sim.twilio_resources import (
    API_VERSION,
    MediaItem,
    MessageRecord,
    media_resource,
    message_resource,
    page,
)

__all__ = [
    "LedgerEntry",
    "SmsSimConfig",
    "SmsSimulator",
    "add_cli",
    "run_sms_simulator",
    "sign_request",
]

_DROPPED = json.dumps({"sid": "SM", "status": "queued"}).encode()[:10]
"""The start of a send answer that breaks off (the "drop" fault)."""
# Twilio's own opt-out handling knows only the English words; German ones are for tresen:
# https://help.twilio.com/articles/223134027
TWILIO_OPT_OUT = ("STOP", "STOPALL", "UNSUBSCRIBE", "END", "QUIT", "CANCEL", "REVOKE", "OPTOUT")
TWILIO_OPT_IN = ("START", "YES", "UNSTOP")
STATUS_RANK = {
    "accepted": 0,
    "queued": 1,
    "sending": 2,
    "sent": 3,
    "delivered": 4,
    "undelivered": 5,
    "failed": 5,
}
_E164 = re.compile(r"^\+[1-9]\d{6,14}$")
_SID = re.compile(r"^[A-Z]{2}[0-9a-f]{32}$")
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
    21705: ("The Messaging Service Sid is invalid.", 400),
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
    messaging_service_sid: str | None = "MG" + "0" * 31 + "1"
    """The account's Messaging Service; its sender pool is phone_number."""
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
    messaging_service_sid: str | None = None
    """Set when the message went through the Messaging Service."""
    from_given: bool = True
    """Whether the request named From (else the service picks it when queueing)."""
    deleted: bool = False

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


class SmsSimulator(SimBase):
    """A simulated Twilio Messaging API for one account and sender."""

    config: SmsSimConfig
    ledger: list[LedgerEntry]
    inbound: list[dict[str, str]]

    def __init__(self, config: SmsSimConfig | None = None) -> None:
        self.config = config or SmsSimConfig()
        self._start(self.config)
        self.media: dict[str, MediaItem] = {}
        """Files of messages in both directions, by media sid."""
        self.media_downloads = 0
        self._received_at: dict[str, float] = {}
        self.opted_out: set[str] = set()
        self._bucket = TokenBucket(self.config.mps, self.config.burst or max(1.0, self.config.mps))
        self.app = self._build_app()

    # -- bookkeeping -------------------------------------------------------------------

    def duplicates(self) -> int:
        """Count accepted messages whose callback reference or (to, body, media) came before."""

        def key(e: LedgerEntry) -> tuple[str, ...]:
            ref = dict(parse_qsl(urlsplit(e.status_callback or "").query)).get("tresen_ref")
            return ("ref", ref) if ref else ("msg", e.to, e.body, *e.media_urls)

        return self._repeats.count(self.ledger, key)

    def stats(self) -> dict[str, Any]:
        """Counters as a JSON-ready dict."""
        return {**super().stats(), "opted_out": len(self.opted_out)}

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
        sender = one("From") or None
        service = one("MessagingServiceSid") or None
        if service is not None and service != cfg.messaging_service_sid:
            raise TwilioError(21705, f"The Messaging Service Sid {service} is invalid.")
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
        return to, sender or "", body, media, callback

    def _accept(self, form: dict[str, list[str]]) -> LedgerEntry:
        to, sender, body, media, callback = self._validate(form)
        service = (form.get("MessagingServiceSid") or [""])[-1] or None
        if to in self.opted_out:
            raise TwilioError(21610)
        if self.config.queue_limit is not None:
            queued = sum(1 for e in self.ledger if e.status in ("accepted", "queued"))
            if queued >= self.config.queue_limit:
                raise TwilioError(21611)
        if not self._bucket.take():
            raise TwilioError(20429)
        # Through a Messaging Service without From, Twilio answers "accepted" and picks the
        # sender from the service's pool when it queues the message.
        through_service = service is not None and not sender
        entry = LedgerEntry(
            sid=self._sid("MM" if media else "SM"),
            to=to,
            from_=sender or self.config.phone_number,
            body=body,
            media_urls=list(media),
            status_callback=callback,
            accepted_at=time.time(),
            num_segments=_segments(body),
            status="accepted" if through_service else "queued",
            messaging_service_sid=service,
            from_given=bool(sender),
        )
        self.ledger.append(entry)
        self._schedule_statuses(entry)
        for url in entry.media_urls:
            item = MediaItem(self._sid("ME"), entry.sid, b"", "application/octet-stream")
            self.media[item.sid] = item
            self._spawn(self._copy_media(item, url))
        return entry

    async def _copy_media(self, item: MediaItem, url: str) -> None:
        """Fetch an outbound MediaUrl and keep the copy, as Twilio does."""
        try:
            response = await self._fetch(url)
        except httpx.HTTPError:
            return
        if response.status_code == 200:
            item.content = response.content
            item.content_type = response.headers.get("content-type", item.content_type)

    def _record(self, entry: LedgerEntry) -> MessageRecord:
        shows_from = entry.from_given or entry.status != "accepted"
        return MessageRecord(
            sid=entry.sid,
            to=entry.to,
            from_=entry.from_ if shows_from else None,
            body=entry.body,
            status=entry.status,
            direction="outbound-api",
            num_segments=entry.num_segments,
            num_media=len(entry.media_urls),
            created_at=entry.accepted_at,
            messaging_service_sid=entry.messaging_service_sid,
            error_code=entry.error_code,
            error_message=_FAILURE_TEXT.get(entry.error_code or 0),
        )

    def _inbound_record(self, params: dict[str, str]) -> MessageRecord:
        sid = params["MessageSid"]
        return MessageRecord(
            sid=sid,
            to=params["To"],
            from_=params["From"],
            body=params.get("Body", ""),
            status="received",
            direction="inbound",
            num_segments=int(params.get("NumSegments") or 1),
            num_media=int(params.get("NumMedia") or 0),
            created_at=self._received_at.get(sid, 0.0),
            messaging_service_sid=params.get("MessagingServiceSid"),
        )

    def resource(self, entry: LedgerEntry) -> dict[str, Any]:
        """The Message resource JSON for a ledger entry."""
        return message_resource(self.config.account_sid, self._record(entry))

    def records(self) -> list[MessageRecord]:
        """Every message of the account, both directions, newest first (as Twilio lists)."""
        out = [self._record(e) for e in self.ledger if not e.deleted]
        out += [
            self._inbound_record(p)
            for p in self.inbound
            if p.get("MessageSid") in self._received_at
        ]
        return sorted(out, key=lambda r: r.created_at, reverse=True)

    def listing(self, query: dict[str, str]) -> dict[str, Any]:
        """GET Messages.json: filtered by To, From and DateSent (YYYY-MM-DD, also < and >)."""
        records = self.records()
        if query.get("To"):
            records = [r for r in records if r.to == query["To"]]
        if query.get("From"):
            records = [r for r in records if r.from_ == query["From"]]
        for key, keep in (
            ("DateSent", lambda day, d: day == d),
            ("DateSent<", lambda day, d: day <= d),
            ("DateSent>", lambda day, d: day >= d),
        ):
            if query.get(key):
                records = [
                    r
                    for r in records
                    if keep(time.strftime("%Y-%m-%d", time.gmtime(r.created_at)), query[key][:10])
                ]
        sid = self.config.account_sid
        items = [message_resource(sid, r) for r in records]
        return page("messages", f"/{API_VERSION}/Accounts/{sid}/Messages.json", items, query)

    def find(self, sid: str) -> MessageRecord | None:
        """A message of either direction by its sid."""
        return next((r for r in self.records() if r.sid == sid), None)

    def media_of(self, message_sid: str) -> list[MediaItem]:
        """The files of one message, oldest first."""
        return [m for m in self.media.values() if m.parent_sid == message_sid]

    def delete_message(self, sid: str) -> bool:
        """DELETE a message (and its files); whether it existed."""
        entry = next((e for e in self.ledger if e.sid == sid and not e.deleted), None)
        found = entry is not None
        if entry is not None:
            entry.deleted = True
        kept = [p for p in self.inbound if p.get("MessageSid") != sid]
        found = found or len(kept) != len(self.inbound)
        self.inbound[:] = kept
        for item in self.media_of(sid):
            del self.media[item.sid]
        return found

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
            fault = self._decide_fault()
            if fault is not None:
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
        """queued (a service's message leaves `accepted`), sent, then delivered or undelivered."""
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
            return json_app(status, body)
        unavailable = TwilioError(20500).body()
        return await self._fault_answer(
            fault,
            unavailable,
            statuses=(500, 503),
            timeout_status=500,
            partial=_DROPPED,
            drop_status=201,
        )

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

    async def _deliver(self, url: str | None, params: list[tuple[str, str]]) -> bool:
        if url is None or self._closing.is_set():
            return False
        target = url
        return await self._post_maybe_twice(lambda: self._post_once(target, params))

    # -- customer side -----------------------------------------------------------------

    def build_inbound(
        self,
        from_number: str,
        body: str = "",
        media_urls: Sequence[str] = (),
        media_types: Sequence[str] | None = None,
        sid: str | None = None,
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
        sid = sid or self._sid("MM" if media_urls else "SM")
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
        sid = self._sid("MM" if media or media_urls else "SM")
        if media:
            media_types = [*(media_types or ["image/jpeg"] * len(media_urls))]
            media_urls = [*media_urls, *(self.host_media(c, t, sid) for c, t in media)]
            media_types += [t for _, t in media]
        params = self.build_inbound(from_number, body, media_urls, media_types, sid=sid)
        self._received_at[sid] = time.time()
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

    def host_media(self, content: bytes, content_type: str, message_sid: str = "") -> str:
        """Keep a file as Media of a message (a new sid when none is named); return its URL."""
        item = MediaItem(self._sid("ME"), message_sid or self._sid("MM"), content, content_type)
        self.media[item.sid] = item
        return (
            f"{self.base_url}/{API_VERSION}/Accounts/{self.config.account_sid}"
            f"/Messages/{item.parent_sid}/Media/{item.sid}"
        )

    def media_download(self, account_sid: str, media_sid: str, auth: str | None) -> ASGIApp:
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
            return empty_app(401)
        found = self.media.get(media_sid)
        if found is None:
            return empty_app(404)
        self.media_downloads += 1
        return bytes_app(200, found.content, found.content_type)

    # -- web app -----------------------------------------------------------------------

    def _build_app(self) -> Litestar:
        sim = self

        @post(f"/{API_VERSION}/Accounts/{{account_sid:str}}/Messages.json", status_code=201)
        async def create_message(
            account_sid: FromPath[str], request: Request[Any, Any, Any]
        ) -> ASGIApp:
            raw = await request.body()
            return await sim.send_endpoint(account_sid, request.headers.get("authorization"), raw)

        def authorised(account_sid: str, request: Request[Any, Any, Any]) -> ASGIApp | None:
            """None when the request may read the account, else the error answer."""
            try:
                sim._check_auth(account_sid, request.headers.get("authorization"))
            except TwilioError as exc:
                return json_app(exc.http_status, exc.body())
            return None

        def not_found(path: str) -> ASGIApp:
            return json_app(
                404, TwilioError(20404, f"The requested resource {path} was not found").body()
            )

        @get(f"/{API_VERSION}/Accounts/{{name:str}}")
        async def fetch_account(name: FromPath[str], request: Request[Any, Any, Any]) -> ASGIApp:
            """The Account resource (GET /2010-04-01/Accounts/{Sid}.json)."""
            account_sid = name.removesuffix(".json")
            if not name.endswith(".json"):
                return not_found(f"/{API_VERSION}/Accounts/{name}")
            refused = authorised(account_sid, request)
            return refused or json_app(
                200,
                {
                    "sid": account_sid,
                    "friendly_name": "tresen Simulator",
                    "status": "active",
                    "type": "Full",
                    "uri": f"/{API_VERSION}/Accounts/{account_sid}.json",
                },
            )

        @get(f"/{API_VERSION}/Accounts/{{account_sid:str}}/Messages.json")
        async def list_messages(
            account_sid: FromPath[str], request: Request[Any, Any, Any]
        ) -> ASGIApp:
            refused = authorised(account_sid, request)
            return refused or json_app(200, sim.listing(dict(request.query_params)))

        @get(f"/{API_VERSION}/Accounts/{{account_sid:str}}/Messages/{{name:str}}")
        async def fetch_message(
            account_sid: FromPath[str], name: FromPath[str], request: Request[Any, Any, Any]
        ) -> ASGIApp:
            refused = authorised(account_sid, request)
            if refused is not None:
                return refused
            record = sim.find(name.removesuffix(".json"))
            if record is None:
                return not_found(request.url.path)
            return json_app(200, message_resource(sim.config.account_sid, record))

        # The handlers answer 204 themselves (an ASGI app); Litestar refuses 204 with a body.
        @delete(
            f"/{API_VERSION}/Accounts/{{account_sid:str}}/Messages/{{name:str}}", status_code=200
        )
        async def delete_message(
            account_sid: FromPath[str], name: FromPath[str], request: Request[Any, Any, Any]
        ) -> ASGIApp:
            refused = authorised(account_sid, request)
            if refused is not None:
                return refused
            if not sim.delete_message(name.removesuffix(".json")):
                return not_found(request.url.path)
            return empty_app(204)

        @get(f"/{API_VERSION}/Accounts/{{account_sid:str}}/Messages/{{message_sid:str}}/Media.json")
        async def list_media(
            account_sid: FromPath[str], message_sid: FromPath[str], request: Request[Any, Any, Any]
        ) -> ASGIApp:
            refused = authorised(account_sid, request)
            if refused is not None:
                return refused
            if sim.find(message_sid) is None:
                return not_found(request.url.path)
            items = [media_resource(account_sid, m) for m in sim.media_of(message_sid)]
            return json_app(
                200, page("media_list", request.url.path, items, dict(request.query_params))
            )

        media_path = (
            f"/{API_VERSION}/Accounts/{{account_sid:str}}/Messages/{{message_sid:str}}"
            "/Media/{media_sid:str}"
        )

        @get(media_path)
        async def media_file(
            account_sid: FromPath[str],
            message_sid: FromPath[str],
            media_sid: FromPath[str],
            request: Request[Any, Any, Any],
        ) -> ASGIApp:
            if not media_sid.endswith(".json"):
                # The file itself (media URLs have no suffix).
                return sim.media_download(
                    account_sid, media_sid, request.headers.get("authorization")
                )
            refused = authorised(account_sid, request)
            if refused is not None:
                return refused
            item = sim.media.get(media_sid.removesuffix(".json"))
            if item is None or item.parent_sid != message_sid:
                return not_found(request.url.path)
            return json_app(200, media_resource(account_sid, item))

        @delete(media_path, status_code=200)
        async def delete_media(
            account_sid: FromPath[str],
            message_sid: FromPath[str],
            media_sid: FromPath[str],
            request: Request[Any, Any, Any],
        ) -> ASGIApp:
            refused = authorised(account_sid, request)
            if refused is not None:
                return refused
            item = sim.media.get(media_sid.removesuffix(".json"))
            if item is None or item.parent_sid != message_sid:
                return not_found(request.url.path)
            del sim.media[item.sid]
            return empty_app(204)

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

        @get("/_sim/messages", sync_to_thread=False)
        def messages(number: FromQuery[str]) -> list[dict[str, Any]]:
            return sim.messages_for(number)

        return Litestar(
            route_handlers=[
                create_message,
                fetch_account,
                list_messages,
                fetch_message,
                delete_message,
                list_media,
                media_file,
                delete_media,
                inbound,
                messages,
                *sim._sim_routes(),
            ],
            openapi_config=None,
            # No logging set-up of its own: Litestar's default logs every request at INFO.
            logging_config=None,
        )


@asynccontextmanager
async def run_sms_simulator(
    config: SmsSimConfig | None = None, host: str = "127.0.0.1", port: int = 0
) -> AsyncIterator[SmsSimulator]:
    """Serve an SMS simulator over HTTP and yield it with base_url set."""
    async with serve_simulator(SmsSimulator(config), host, port) as sim:
        yield sim


def add_cli(sim_app: typer.Typer) -> None:
    """Register `tresen sim sms` on the given Typer app."""

    @sim_app.command("sms")
    def sim_sms(
        port: Annotated[int, typer.Option(min=1, max=65535)] = 9003,
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
