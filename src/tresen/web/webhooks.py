"""Provider webhooks: verify first, parse at the edge, store in one transaction, answer fast."""

from __future__ import annotations

import asyncio
from typing import Any

from litestar import Request, Response, get, post
from litestar.params import FromPath
from litestar.response import Response as PlainResponse

from tresen.channels.base import ParsedWebhook, WebhookRejected, WebhookRequest
from tresen.events import MESSAGE_NEW, MESSAGE_STATUS, Event
from tresen.pipeline.inbound import ChannelRef, IngestResult, apply_pending_statuses, ingest
from tresen.runtime import Runtime
from tresen.web import metrics


async def read_body(request: Request[Any, Any, Any], limit: int) -> bytes:
    """The raw body, refusing anything over `limit` bytes with 413."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            if int(declared) > limit:
                raise WebhookRejected(413, f"body larger than {limit} bytes")
        except ValueError as exc:
            raise WebhookRejected(400, "Content-Length is not a number") from exc
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise WebhookRejected(413, f"body larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _webhook_request(request: Request[Any, Any, Any], body: bytes, base_url: str) -> WebhookRequest:
    query = request.scope.get("query_string", b"").decode("latin-1")
    public = base_url.rstrip("/") + request.url.path + (f"?{query}" if query else "")
    return WebhookRequest(
        method=request.method,
        url=str(request.url),
        headers={k.lower(): v for k, v in request.headers.items()},
        query={k: v for k, v in request.query_params.items()},
        body=body,
        public_url=public,
    )


class GroupCommit:
    """Store webhooks in shared transactions; each request still answers only after its commit.

    At most `writers` transactions run at once (one on SQLite, which has one writer anyway).
    While they run, new webhooks gather in one open batch, which the next free writer stores in
    a single transaction (at most `max_batch` webhooks): under load one commit serves many
    webhooks, at low load a webhook is written alone at once. Each webhook runs through the
    same `ingest` as on its own, in arrival order. When a shared transaction fails, every
    webhook of it is stored again in a transaction of its own, so one bad webhook fails alone
    (and a webhook alone that fails is answered with the error, as before).
    """

    def __init__(self, runtime: Runtime, writers: int, max_batch: int = 64) -> None:
        self.runtime = runtime
        self.slots = asyncio.Semaphore(writers)
        self.max_batch = max_batch
        self.open: list[tuple[ChannelRef, ParsedWebhook, asyncio.Future[Any]]] | None = None
        self.tasks: set[asyncio.Task[None]] = set()

    @classmethod
    def for_app(cls, request: Request[Any, Any, Any], runtime: Runtime) -> GroupCommit:
        """The app's committer, created on first use."""
        state = request.app.state
        found = getattr(state, "ingest_group_commit", None)
        if found is None or found.runtime is not runtime:
            writers = 1 if runtime.engine.dialect.name == "sqlite" else 4
            found = cls(runtime, writers)
            state.ingest_group_commit = found
        return found

    async def store(self, ref: ChannelRef, parsed: ParsedWebhook) -> IngestResult:
        """Store one webhook durably; returns what it changed."""
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if self.open is not None and len(self.open) < self.max_batch:
            self.open.append((ref, parsed, fut))
        else:
            self.open = [(ref, parsed, fut)]
            task = asyncio.create_task(self._lead(self.open))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
        result = await fut
        if result is _ALONE:
            async with self.slots:
                return (await self._transaction([(ref, parsed)]))[0]
        return result

    async def _lead(
        self, batch: list[tuple[ChannelRef, ParsedWebhook, asyncio.Future[Any]]]
    ) -> None:
        try:
            async with self.slots:
                if self.open is batch:
                    self.open = None
                results = await self._transaction([(ref, parsed) for ref, parsed, _ in batch])
        except BaseException as exc:
            if self.open is batch:
                self.open = None
            if len(batch) == 1:
                if not batch[0][2].done():
                    batch[0][2].set_exception(exc)
            else:
                for _, _, fut in batch:
                    if not fut.done():
                        fut.set_result(_ALONE)
            if not isinstance(exc, Exception):
                raise
            return
        for (_, _, fut), result in zip(batch, results, strict=True):
            if not fut.done():
                fut.set_result(result)

    async def _transaction(
        self, items: list[tuple[ChannelRef, ParsedWebhook]]
    ) -> list[IngestResult]:
        async with self.runtime.sessions() as session, session.begin():
            return [await ingest(session, ref, parsed) for ref, parsed in items]


_ALONE = object()


async def _channel(runtime: Runtime, kind: str, channel_id: str) -> Any:
    loaded = await runtime.channel(channel_id) if len(channel_id) <= 64 else None
    if loaded is None or loaded.ref.kind != kind or not loaded.enabled:
        raise WebhookRejected(404, f"no active {kind} channel with this id")
    return loaded


@get("/webhooks/{kind:str}/{channel_id:str}", include_in_schema=False)
async def verify_webhook(
    request: Request[Any, Any, Any], kind: FromPath[str], channel_id: FromPath[str]
) -> PlainResponse[str]:
    """The provider's subscription handshake."""
    runtime: Runtime = request.app.state.runtime
    loaded = await _channel(runtime, kind, channel_id)
    challenge = loaded.adapter.handshake(_webhook_request(request, b"", runtime.settings.base_url))
    return PlainResponse(challenge, media_type="text/plain")


@post("/webhooks/{kind:str}/{channel_id:str}", status_code=200, include_in_schema=False)
async def receive_webhook(
    request: Request[Any, Any, Any], kind: FromPath[str], channel_id: FromPath[str]
) -> Response[Any]:
    """Accept a provider's webhook once it is authentic and well-formed."""
    runtime: Runtime = request.app.state.runtime
    body = await read_body(request, runtime.settings.max_webhook_bytes)
    loaded = await _channel(runtime, kind, channel_id)
    webhook = _webhook_request(request, body, runtime.settings.base_url)
    try:
        loaded.adapter.verify(webhook)
    except WebhookRejected:
        metrics.WEBHOOKS.labels(kind=kind, outcome="forged").inc()
        raise
    try:
        parsed = loaded.adapter.parse(webhook)
    except WebhookRejected:
        metrics.WEBHOOKS.labels(kind=kind, outcome="malformed").inc()
        raise
    result = await GroupCommit.for_app(request, runtime).store(loaded.ref, parsed)
    if result.pending_ids:
        # The send may have recorded its provider id while this webhook's transaction ran;
        # looked at after both commits, one of the two sides always sees the other.
        async with runtime.sessions() as session, session.begin():
            for provider_message_id in result.pending_ids:
                await apply_pending_statuses(session, loaded.ref.id, provider_message_id)
    metrics.WEBHOOKS.labels(kind=kind, outcome="stored").inc()
    metrics.INBOUND_MESSAGES.labels(kind=kind).inc(len(result.new_message_ids))
    await _publish(runtime, loaded.ref.workspace_id, result)
    reply = getattr(loaded.adapter, "webhook_reply", None)
    if reply is not None:
        return Response(reply[0], media_type=reply[1])
    return Response(
        {
            "stored": len(result.new_message_ids),
            "duplicates": result.duplicate_messages,
            "statuses": result.applied_statuses + result.pending_statuses + result.stale_statuses,
        }
    )


async def _publish(runtime: Runtime, workspace_id: str, result: IngestResult) -> None:
    """One live event per changed conversation, after the commit (ids only)."""
    new: dict[str, list[str]] = {}
    for message_id, conversation_id in result.message_conversations.items():
        new.setdefault(conversation_id, []).append(message_id)
    for conversation_id, ids in new.items():
        await runtime.events.publish(
            Event(workspace_id, MESSAGE_NEW, conversation_id, {"message_ids": ids})
        )
    for conversation_id in result.conversation_ids - new.keys():
        await runtime.events.publish(Event(workspace_id, MESSAGE_STATUS, conversation_id, {}))
