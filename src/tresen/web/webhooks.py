"""Provider webhooks: verify first, parse at the edge, hand to `Receiver.receive`, answer fast."""

from __future__ import annotations

import time
from typing import Any

from litestar import Request, Response, get, post
from litestar.params import FromPath
from litestar.response import Response as PlainResponse

from tresen import metrics
from tresen.channels.base import WebhookRejected, WebhookRequest
from tresen.runtime import Runtime
from tresen.web import webhook_seen
from tresen.web.bodies import MAX_JSON_DEPTH, too_deep


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
    started = time.perf_counter()
    runtime: Runtime = request.app.state.runtime
    body = await read_body(request, runtime.settings.max_webhook_bytes)
    loaded = await _channel(runtime, kind, channel_id)
    webhook = _webhook_request(request, body, runtime.settings.base_url)
    try:
        loaded.adapter.verify(webhook)
    except WebhookRejected:
        metrics.WEBHOOKS.labels(kind=kind, outcome="forged").inc()
        await webhook_seen.note(runtime, channel_id, webhook_seen.REFUSED)
        raise
    if too_deep(body):
        metrics.WEBHOOKS.labels(kind=kind, outcome="malformed").inc()
        await webhook_seen.note(runtime, channel_id, webhook_seen.MALFORMED)
        raise WebhookRejected(400, f"the body nests deeper than {MAX_JSON_DEPTH} levels")
    try:
        parsed = loaded.adapter.parse(webhook)
    except WebhookRejected:
        metrics.WEBHOOKS.labels(kind=kind, outcome="malformed").inc()
        await webhook_seen.note(runtime, channel_id, webhook_seen.MALFORMED)
        raise
    result = await runtime.receiver.receive(loaded.ref, parsed)
    await webhook_seen.note(runtime, channel_id, webhook_seen.ACCEPTED)
    metrics.INGEST_SECONDS.labels(kind=kind).observe(time.perf_counter() - started)
    metrics.WEBHOOKS.labels(kind=kind, outcome="stored").inc()
    metrics.INBOUND_MESSAGES.labels(kind=kind).inc(len(result.new_message_ids))
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
