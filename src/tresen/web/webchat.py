"""The web chat's HTTP side: the widget script, visitor sessions, messages, live replies, files."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import hashlib
import html
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import msgspec
from litestar import Request, Response, Router, get, post, route
from litestar.enums import HttpMethod
from litestar.params import FromPath, FromQuery
from litestar.response import Stream
from sqlalchemy import or_, select

from tresen.channels.base import InboundMessage, ParsedWebhook, StatusUpdate, WebhookRejected
from tresen.channels.webchat import (
    TOKEN_RE,
    SessionRequest,
    WebchatChannel,
    normalise_origin,
    sniff_type,
    visitor_address,
)
from tresen.db.tables import ContactIdentity, Conversation, Media, Message, Workspace
from tresen.db.types import utcnow
from tresen.domain import profile as profiles
from tresen.domain.ids import new_id
from tresen.domain.message import DeliveryState, Direction
from tresen.events import (
    MESSAGE_NEW,
    MESSAGE_STATUS,
    RESYNC,
    REVOCATIONS,
    TYPING,
    Event,
    Subscription,
)
from tresen.jobs.ratelimit import RateLimiters
from tresen.media import store
from tresen.media.sniff import MediaRefused
from tresen.pipeline import webchat as sessions
from tresen.pipeline.inbound import apply_status
from tresen.privacy import consent
from tresen.runtime import LoadedChannel, Runtime
from tresen.settings import ensure_secret_key
from tresen.web.clientip import client_ip
from tresen.web.errors import error_response
from tresen.web.media import stored_file
from tresen.web.webhooks import read_body

WIDGET_FILE = Path(__file__).parent / "static" / "widget.js"
VISITOR_HEADER = "x-tresen-visitor"
HISTORY_LIMIT = 200
HEARTBEAT_SECONDS = 15.0
MAX_JSON_BYTES = 16_000
UPLOAD_HARD_LIMIT = 50 * 1024 * 1024
STREAMS_PER_CLIENT = 20
KNOWN_SECONDS = 60.0  # erasures empty the cache at once (see KnownVisitors)
_VISIBLE = (DeliveryState.SENT.value, DeliveryState.DELIVERED.value, DeliveryState.READ.value)
_CORS_BASE = {
    "access-control-allow-methods": "GET, POST, OPTIONS",
    "access-control-allow-headers": f"content-type, {VISITOR_HEADER}, x-file-name",
    "access-control-max-age": "600",
    "vary": "Origin",
}


class Limits:
    """The web chat's rate limits: shared by all web processes when Redis is configured."""

    def __init__(self, limiters: RateLimiters) -> None:
        self.messages = limiters.window("webchat-messages", 10, 10.0)
        self.uploads = limiters.window("webchat-uploads", 5, 60.0)
        self.sessions = limiters.window("webchat-sessions", 30, 60.0)
        self.conversations = limiters.window("webchat-conversations", 10, 600.0)


def _limits(request: Request[Any, Any, Any]) -> Limits:
    found = getattr(request.app.state, "webchat_limits", None)
    if found is None:
        found = Limits(request.app.state.runtime.limiters)
        request.app.state.webchat_limits = found
    return found


class Widget:
    """The widget script with its gzip form and ETag, read once."""

    def __init__(self, path: Path) -> None:
        self.body = path.read_bytes()
        self.gzipped = gzip.compress(self.body, 9, mtime=0)
        self.etag = '"' + hashlib.sha256(self.body).hexdigest()[:16] + '"'


_widget: Widget | None = None


def widget() -> Widget:
    """The widget, loaded on first use."""
    global _widget
    if _widget is None:
        _widget = Widget(WIDGET_FILE)
    return _widget


@get("/widget.js", include_in_schema=False)
async def widget_js(request: Request[Any, Any, Any]) -> Response[bytes]:
    """The embeddable widget (cached for a day, revalidated by ETag, gzip when accepted)."""
    w = widget()
    headers = {
        "cache-control": "public, max-age=86400, stale-while-revalidate=604800",
        "etag": w.etag,
        "vary": "Accept-Encoding",
        "x-widget-bytes": str(len(w.body)),
    }
    if request.headers.get("if-none-match") == w.etag:
        return Response(b"", status_code=304, headers=headers)
    if "gzip" in request.headers.get("accept-encoding", ""):
        headers["content-encoding"] = "gzip"
        return Response(w.gzipped, media_type="text/javascript", headers=headers)
    return Response(w.body, media_type="text/javascript", headers=headers)


class Visitor:
    """An authorised call: the channel, the visitor's token and the CORS headers to answer with."""

    def __init__(self, loaded: LoadedChannel, token: str, cors: dict[str, str]) -> None:
        self.loaded = loaded
        self.token = token
        self.address = visitor_address(token)
        self.cors = cors
        self.started = False

    @property
    def adapter(self) -> WebchatChannel:
        """The channel's adapter."""
        adapter = self.loaded.adapter
        assert isinstance(adapter, WebchatChannel)
        return adapter


def _own_origins(runtime: Runtime) -> tuple[str, ...]:
    """tresen's own origin (the demo page); never derived from the request's Host header."""
    own = normalise_origin(runtime.settings.base_url)
    return (own,) if own else ()


def _client(request: Request[Any, Any, Any]) -> str:
    """The client address (the proxy's forwarded one only from trusted proxies)."""
    return client_ip(request)


class KnownVisitors:
    """Sessions seen recently in this process, so a message costs no lookup: key → started.

    An erasure anywhere (this process, another one through Redis) empties the cache before the
    next lookup; so does a possible loss of events (`bus.resync`).
    """

    def __init__(self, revocations: Subscription | None = None) -> None:
        self.entries: dict[tuple[str, str], tuple[float, bool]] = {}
        self.streams: dict[str, int] = {}
        self.revocations = revocations

    def get(self, key: tuple[str, str]) -> bool | None:
        """Started flag of a recently seen session; None when not cached."""
        if self.revocations is not None and self.revocations.drain():
            self.entries.clear()
        found = self.entries.get(key)
        if found is None or found[0] < time.monotonic():
            return None
        return found[1]

    def put(self, key: tuple[str, str], started: bool) -> None:
        """Remember a session for a few minutes."""
        if len(self.entries) > 50_000:
            self.entries.clear()
        self.entries[key] = (time.monotonic() + KNOWN_SECONDS, started)


async def _known(request: Request[Any, Any, Any]) -> KnownVisitors:
    found = getattr(request.app.state, "webchat_known", None)
    if found is None:
        runtime: Runtime = request.app.state.runtime
        # Open for the app's life: revocations are read without waiting at each lookup.
        listening = contextlib.AsyncExitStack()
        revocations = await listening.enter_async_context(runtime.events.subscribe(REVOCATIONS))
        found = getattr(request.app.state, "webchat_known", None)
        if found is not None:  # another request was first
            await listening.aclose()
            return found
        found = KnownVisitors(revocations)
        request.app.state.webchat_known = found
        request.app.state.webchat_known_listening = listening
    return found


async def _channel(runtime: Runtime, channel_id: str) -> LoadedChannel:
    loaded = await runtime.channel(channel_id) if len(channel_id) <= 64 else None
    if loaded is None or loaded.ref.kind != "webchat" or not loaded.enabled:
        raise WebhookRejected(404, "no active web chat with this id")
    return loaded


async def _cors(
    request: Request[Any, Any, Any], channel_id: str
) -> tuple[LoadedChannel, dict[str, str]]:
    """The channel and CORS headers; 403 for an Origin that may not embed this chat."""
    runtime: Runtime = request.app.state.runtime
    loaded = await _channel(runtime, channel_id)
    adapter = loaded.adapter
    assert isinstance(adapter, WebchatChannel)
    origin = request.headers.get("origin")
    if origin is None:
        return loaded, {}  # same-origin GET or not a browser: no CORS needed
    if not adapter.origin_allowed(origin, _own_origins(runtime)):
        raise WebhookRejected(403, "this site may not embed the chat (allowed_origins)")
    return loaded, {**_CORS_BASE, "access-control-allow-origin": origin}


async def _visitor(request: Request[Any, Any, Any], channel_id: str) -> Visitor:
    """The channel and the visitor whose token the widget sent."""
    loaded, cors = await _cors(request, channel_id)
    token = request.headers.get(VISITOR_HEADER, "")
    if not TOKEN_RE.match(token):
        raise WebhookRejected(401, "start a session first (POST /chat/{channel_id}/session)")
    visitor = Visitor(loaded, token, cors)
    key = (loaded.ref.id, visitor.address)
    known = await _known(request)
    started = known.get(key)
    if started is None:
        runtime: Runtime = request.app.state.runtime
        async with runtime.sessions() as session:
            row = await sessions.find(session, loaded.ref.id, token)
        if row is None:
            raise WebhookRejected(
                401, "unknown session; start one (POST /chat/{channel_id}/session)"
            )
        started = row.started_at is not None
        known.put(key, started)
    visitor.started = started
    return visitor


async def _may_start(request: Request[Any, Any, Any], visitor: Visitor) -> None:
    """A visitor's first message opens a conversation: limited per client and channel."""
    if visitor.started:
        return
    runtime: Runtime = request.app.state.runtime
    ref = visitor.loaded.ref
    async with runtime.sessions() as session, session.begin():
        if not await sessions.started(session, ref.id, visitor.address):
            wait = await _limits(request).conversations.check(f"{ref.id}:{_client(request)}")
            if wait is not None:
                raise _rate_limited(wait, "too many new conversations from here; please wait")
            await sessions.mark_started(session, ref.id, visitor.address)
    visitor.started = True
    (await _known(request)).put((ref.id, visitor.address), True)


async def _answer(
    request: Request[Any, Any, Any], work: Callable[[], Awaitable[Response[Any]]]
) -> Response[Any]:
    """Run a handler; errors become JSON that the widget can read (CORS headers kept)."""
    try:
        return await work()
    except WebhookRejected as exc:
        codes = {400: "malformed", 401: "no_session", 403: "forbidden", 404: "not_found"}
        codes.update({413: "too_large", 415: "unsupported_type", 429: "rate_limited"})
        resp = error_response(exc.status_code, codes.get(exc.status_code, "rejected"), exc.message)
        cors = getattr(exc, "cors", None)
        if cors is None:
            with contextlib.suppress(WebhookRejected):
                _, cors = await _cors(request, request.path_params.get("channel_id", ""))
        for name, value in (cors or {}).items():
            resp.headers[name] = value
        retry = getattr(exc, "retry_after", None)
        if retry is not None:
            resp.headers["retry-after"] = str(max(1, round(retry)))
        return resp


def _rate_limited(
    seconds: float, message: str = "too many messages; please wait a moment"
) -> WebhookRejected:
    exc = WebhookRejected(429, message)
    exc.retry_after = seconds  # type: ignore[attr-defined]
    return exc


async def _store(request: Request[Any, Any, Any], visitor: Visitor, msg: InboundMessage) -> None:
    """Store a visitor's message like any inbound message, then tell live inboxes."""
    runtime: Runtime = request.app.state.runtime
    await _may_start(request, visitor)
    loaded = visitor.loaded
    await runtime.receiver.receive(
        loaded.ref, ParsedWebhook([msg]), hint={"visitor": visitor.address}
    )


@route(
    [
        "/chat/{channel_id:str}/session",
        "/chat/{channel_id:str}/messages",
        "/chat/{channel_id:str}/events",
        "/chat/{channel_id:str}/upload",
        "/chat/{channel_id:str}/offline",
    ],
    http_method=[HttpMethod.OPTIONS],
    include_in_schema=False,
)
async def preflight(request: Request[Any, Any, Any], channel_id: FromPath[str]) -> Response[Any]:
    """CORS preflight: allowed only for the channel's allowed_origins."""

    async def work() -> Response[Any]:
        _, cors = await _cors(request, channel_id)
        return Response(b"", status_code=204, headers=cors)

    return await _answer(request, work)


def _consent_step(
    runtime: Runtime, adapter: WebchatChannel, workspace: Workspace, language: str
) -> dict[str, str]:
    """The widget's language and colour, and its privacy notice (the consent step of the
    web chat) where consent comes first or the channel has a notice of its own."""
    profile = profiles.from_settings(workspace.settings, workspace.name)
    look = {"language": language, "colour": profile.colour}
    own_text = adapter.config.privacy_notice
    if not (runtime.settings.consent_first or own_text.strip()):
        return {**look, "privacy_notice": ""}
    shown = consent.widget_notice(workspace, language, own_text, adapter.config.privacy_link)
    return {**look, **shown.public()}


@post("/chat/{channel_id:str}/session", status_code=200, include_in_schema=False)
async def start_session(
    request: Request[Any, Any, Any], channel_id: FromPath[str]
) -> Response[Any]:
    """Start (or resume with the stored token) a visitor session; returns what the widget shows."""

    async def work() -> Response[Any]:
        loaded, cors = await _cors(request, channel_id)
        wait = await _limits(request).sessions.check(f"{channel_id}:{_client(request)}")
        if wait is not None:
            raise _rate_limited(wait)
        body = await read_body(request, MAX_JSON_BYTES)
        try:
            data = msgspec.json.decode(body or b"{}", type=SessionRequest)
        except msgspec.DecodeError as exc:
            raise WebhookRejected(400, f"malformed session request: {exc}") from exc
        runtime: Runtime = request.app.state.runtime
        async with runtime.sessions() as session, session.begin():
            token, resumed = await sessions.open_session(session, loaded.ref, data.token)
            workspace = await session.get_one(Workspace, loaded.ref.workspace_id)
            language = await consent.workspace_language(session, workspace.id)
            agreed = await consent.has_consented(session, loaded.ref.id, visitor_address(token))
        adapter = loaded.adapter
        assert isinstance(adapter, WebchatChannel)
        out = {
            "token": token,
            "resumed": resumed,
            **adapter.public_config(),
            **_consent_step(runtime, adapter, workspace, language),
            # With consent first, an acceptance the browser remembers counts only while the
            # person's consent is on record (not after an erasure, or before a first message).
            "privacy_accepted": agreed or not runtime.settings.consent_first,
        }
        return Response(out, headers={**cors, "cache-control": "no-store"})

    return await _answer(request, work)


@post("/chat/{channel_id:str}/messages", status_code=201, include_in_schema=False)
async def visitor_message(
    request: Request[Any, Any, Any], channel_id: FromPath[str]
) -> Response[Any]:
    """A visitor's text: stored like any inbound message (a retry with the same id once)."""

    async def work() -> Response[Any]:
        visitor = await _visitor(request, channel_id)
        wait = await _limits(request).messages.check(visitor.address)
        if wait is not None:
            raise _rate_limited(wait)
        body = await read_body(request, MAX_JSON_BYTES)
        msg = visitor.adapter.visitor_text(visitor.token, body)
        await _store(request, visitor, msg)
        return Response({"ok": True}, status_code=201, headers=visitor.cors)

    return await _answer(request, work)


@post("/chat/{channel_id:str}/offline", status_code=201, include_in_schema=False)
async def offline_form(request: Request[Any, Any, Any], channel_id: FromPath[str]) -> Response[Any]:
    """The after-hours form: becomes a message in the visitor's conversation."""

    async def work() -> Response[Any]:
        visitor = await _visitor(request, channel_id)
        wait = await _limits(request).uploads.check("offline:" + visitor.address)
        if wait is not None:
            raise _rate_limited(wait)
        body = await read_body(request, MAX_JSON_BYTES)
        msg = visitor.adapter.offline_form(visitor.token, body)
        await _store(request, visitor, msg)
        return Response({"ok": True}, status_code=201, headers=visitor.cors)

    return await _answer(request, work)


@post(
    "/chat/{channel_id:str}/upload",
    status_code=201,
    include_in_schema=False,
    request_max_body_size=UPLOAD_HARD_LIMIT,
)
async def upload(request: Request[Any, Any, Any], channel_id: FromPath[str]) -> Response[Any]:
    """A visitor's file (raw body, Content-Type = the file's type): size and type checked here."""

    async def work() -> Response[Any]:
        visitor = await _visitor(request, channel_id)
        adapter = visitor.adapter
        limit = adapter.config.max_upload_bytes
        mime = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if mime not in adapter.upload_types:
            raise WebhookRejected(
                415,
                f"files of type {mime or 'unknown'} are not accepted; allowed: "
                + ", ".join(adapter.upload_types),
            )
        wait = await _limits(request).uploads.check(visitor.address)
        if wait is not None:
            raise _rate_limited(wait)
        try:
            data = await read_body(request, limit)
        except WebhookRejected as exc:
            if exc.status_code == 413:
                raise WebhookRejected(413, f"the file is larger than {limit // 1024} KB") from exc
            raise
        if not data:
            raise WebhookRejected(400, "the file is empty")
        if not sniff_type(data[:16], mime):
            raise WebhookRejected(415, f"the file's content is not {mime}")
        runtime: Runtime = request.app.state.runtime
        media_id = new_id()
        try:
            # Stored once, where the media table keeps every file; the message row points at it.
            saved = await asyncio.to_thread(
                store.save,
                runtime.files,
                visitor.loaded.ref.workspace_id,
                media_id,
                data,
                mime,
                limit,
            )
        except MediaRefused as refused:
            raise WebhookRejected(
                413 if refused.code == "too_large" else 415, refused.message
            ) from refused
        filename = unquote(request.headers.get("x-file-name", ""))[:200]
        # ?consent=1: sent from the widget after its privacy notice was accepted.
        accepted = request.query_params.get("consent") == "1"
        msg = adapter.visitor_file(visitor.token, media_id, saved, filename, consent=accepted)
        await _store(request, visitor, msg)
        return Response({"ok": True, "size": len(data)}, status_code=201, headers=visitor.cors)

    return await _answer(request, work)


@get("/chat/{channel_id:str}/files/{media_id:str}", include_in_schema=False)
async def visitor_file(
    request: Request[Any, Any, Any],
    channel_id: FromPath[str],
    media_id: FromPath[str],
    exp: FromQuery[str] = "",
    sig: FromQuery[str] = "",
) -> Response[Any]:
    """A file of the visitor's conversation, by a link only that visitor's session was given."""

    async def work() -> Response[Any]:
        runtime: Runtime = request.app.state.runtime
        loaded = await _channel(runtime, channel_id)
        async with runtime.sessions() as session:
            found = (
                await session.execute(
                    select(Media, ContactIdentity.address)
                    .join(Message, Message.id == Media.message_id)
                    .join(Conversation, Conversation.id == Message.conversation_id)
                    .join(ContactIdentity, ContactIdentity.id == Conversation.identity_id)
                    .where(
                        Media.id == media_id,
                        Media.state == store.STORED,
                        Message.channel_id == loaded.ref.id,
                    )
                )
            ).first()
        secret = ensure_secret_key(runtime.settings).secret_key
        if found is None or not store.visitor_link_valid(
            secret, loaded.ref.id, media_id, found[1], exp, sig
        ):
            raise WebhookRejected(404, "no such file, or the link has expired")
        return await stored_file(
            runtime.files,
            found[0],
            extra_headers={"cross-origin-resource-policy": "cross-origin"},
            missing=WebhookRejected(404, "no such file, or the link has expired"),
        )

    return await _answer(request, work)


def _message_json(m: Message, files: dict[str, str]) -> dict[str, Any]:
    """A message as the widget shows it; `files` are the session's links by message id."""
    media = (m.payload or {}).get("media") if m.content_kind == "media" else None
    file: dict[str, Any] | None = None
    if media or m.id in files:
        name = media.get("filename") if media else (m.payload or {}).get("filename")
        file = {"name": name, "url": files.get(m.id)}
    return {
        "id": m.id,
        "from": "visitor" if m.direction == Direction.INBOUND.value else "agent",
        "text": "" if media else (m.body or ""),
        "file": file,
        "at": _iso(m.created_at),
    }


async def _file_links(
    runtime: Runtime, channel_id: str, address: str, rows: list[Message]
) -> dict[str, str]:
    """Signed links for this visitor to the stored files of these messages, by message id."""
    ids = [m.id for m in rows if m.content_kind == "media"]
    if not ids:
        return {}
    async with runtime.sessions() as session:
        stored = (
            await session.execute(
                select(Media.message_id, Media.id).where(
                    Media.message_id.in_(ids), Media.state == store.STORED
                )
            )
        ).all()
    secret = ensure_secret_key(runtime.settings).secret_key
    return {
        message_id: store.visitor_link(secret, channel_id, media_id, address)
        for message_id, media_id in stored
    }


def _iso(at: datetime | None) -> str | None:
    return at.isoformat() if at else None


async def _visible(
    runtime: Runtime, channel_id: str, address: str
) -> tuple[list[Message], set[str]]:
    """The visitor's history (own messages and sent replies, oldest first) and conversation ids."""
    async with runtime.sessions() as session:
        conversations = set(
            await session.scalars(
                select(Conversation.id)
                .join(ContactIdentity, ContactIdentity.id == Conversation.identity_id)
                .where(ContactIdentity.channel_id == channel_id, ContactIdentity.address == address)
            )
        )
        if not conversations:
            return [], conversations
        rows = list(
            await session.scalars(
                select(Message)
                .where(
                    Message.conversation_id.in_(conversations),
                    or_(
                        Message.direction == Direction.INBOUND.value,
                        Message.state.in_(_VISIBLE),
                    ),
                )
                .order_by(Message.created_at.desc(), Message.id.desc())
                .limit(HISTORY_LIMIT)
            )
        )
    rows.reverse()
    return rows, conversations


async def _mark_delivered(runtime: Runtime, loaded: LoadedChannel, rows: list[Message]) -> None:
    """Replies handed to the live widget count as delivered."""
    sent = [m for m in rows if m.state == DeliveryState.SENT.value and m.provider_message_id]
    if not sent:
        return
    async with runtime.sessions() as session, session.begin():
        for m in sent:
            await apply_status(
                session,
                loaded.ref.id,
                StatusUpdate(m.provider_message_id or "", DeliveryState.DELIVERED, utcnow()),
            )
    for conversation_id in {m.conversation_id for m in sent}:
        await runtime.events.publish(
            Event(loaded.ref.workspace_id, MESSAGE_STATUS, conversation_id, {"webchat": True})
        )


def _sse(event: str, data: dict[str, Any], event_id: str | None = None) -> bytes:
    head = f"id: {event_id}\n" if event_id else ""
    return f"{head}event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n".encode()


@get("/chat/{channel_id:str}/events", include_in_schema=False)
async def events(request: Request[Any, Any, Any], channel_id: FromPath[str]) -> Response[Any]:
    """Server-sent events for one visitor: the history first, then replies as they are sent."""
    try:
        visitor = await _visitor(request, channel_id)
        client = _client(request)
        streams = (await _known(request)).streams
        if streams.get(client, 0) >= STREAMS_PER_CLIENT:
            raise _rate_limited(30.0, "too many open chat windows from here")
    except WebhookRejected as exc:
        return await _answer(request, _raiser(exc))
    runtime: Runtime = request.app.state.runtime

    async def stream() -> AsyncIterator[bytes]:
        # Counted once running: a stream whose client left before it started holds no place.
        streams[client] = streams.get(client, 0) + 1
        try:
            async for chunk in _stream(runtime, visitor):
                yield chunk
        finally:
            left = streams.get(client, 1) - 1
            if left > 0:
                streams[client] = left
            else:
                streams.pop(client, None)

    headers = {
        **visitor.cors,
        "cache-control": "no-store",
        "x-accel-buffering": "no",
    }
    return Stream(stream(), media_type="text/event-stream", headers=headers)


async def _stream(runtime: Runtime, visitor: Visitor) -> AsyncIterator[bytes]:
    """The visitor's events: woken only by their own conversations (or their first message)."""
    seen: set[str] = set()
    ref = visitor.loaded.ref
    async with runtime.events.subscribe(ref.workspace_id) as sub:
        rows, conversations = await _visible(runtime, ref.id, visitor.address)
        yield b"retry: 2000\n\n"
        while True:
            fresh = [m for m in rows if m.id not in seen]
            await _mark_delivered(runtime, visitor.loaded, fresh)
            links = await _file_links(runtime, ref.id, visitor.address, fresh)
            for m in fresh:
                seen.add(m.id)
                yield _sse("message", _message_json(m, links), m.id)
            while True:
                try:
                    event = await asyncio.wait_for(sub.get(), HEARTBEAT_SECONDS)
                except TimeoutError:
                    yield b": ping\n\n"
                    continue
                if event.kind == TYPING and event.conversation_id in conversations:
                    yield _sse("typing", {"typing": bool(event.data.get("typing"))})
                    continue
                mine = event.conversation_id in conversations
                first = event.kind == MESSAGE_NEW and event.data.get("visitor") == visitor.address
                if event.kind == RESYNC or mine or first:
                    break
            rows, found = await _visible(runtime, ref.id, visitor.address)
            conversations = found


def _raiser(exc: WebhookRejected) -> Callable[[], Awaitable[Response[Any]]]:
    async def work() -> Response[Any]:
        raise exc

    return work


DEMO_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title} – web chat demo</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body><main><h1>{title}</h1><p>This page embeds the web chat widget exactly as a shop page
would: <code>&lt;script src="{origin}/widget.js" data-channel="{channel}" defer&gt;&lt;/script&gt;</code></p>
</main><script src="/widget.js" data-channel="{channel}" defer></script></body></html>
"""


@get("/chat/{channel_id:str}/demo", include_in_schema=False)
async def demo(request: Request[Any, Any, Any], channel_id: FromPath[str]) -> Response[Any]:
    """A test page that embeds the widget (same origin, strict CSP)."""

    async def work() -> Response[Any]:
        runtime: Runtime = request.app.state.runtime
        loaded = await _channel(runtime, channel_id)
        adapter = loaded.adapter
        assert isinstance(adapter, WebchatChannel)
        page = DEMO_PAGE.format(
            title=html.escape(adapter.config.title),
            channel=html.escape(loaded.ref.id),
            origin=html.escape(runtime.settings.base_url.rstrip("/")),
        )
        return Response(page, media_type="text/html")

    return await _answer(request, work)


webchat_router = Router(
    path="/",
    route_handlers=[
        widget_js,
        preflight,
        start_session,
        visitor_message,
        offline_form,
        upload,
        visitor_file,
        events,
        demo,
    ],
)
