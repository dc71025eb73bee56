"""Prometheus counters and the /metrics endpoint."""

from __future__ import annotations

from litestar import get
from litestar.response import Response
from prometheus_client import CONTENT_TYPE_LATEST, Counter, generate_latest

WEBHOOKS = Counter(
    "tresen_webhooks_total", "Webhook calls by channel kind and outcome", ["kind", "outcome"]
)
INBOUND_MESSAGES = Counter("tresen_inbound_messages_total", "New inbound messages stored", ["kind"])


@get("/metrics", include_in_schema=False, sync_to_thread=False)
def metrics_endpoint() -> Response[bytes]:
    """Prometheus text exposition."""
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
