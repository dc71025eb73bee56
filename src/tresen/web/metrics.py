"""The /metrics endpoint: this process's (or all `serve --workers` processes') metrics plus
queue, dead-letter and campaign figures read from the database at scrape time."""

from __future__ import annotations

import hmac
import os
from typing import Any

import uvicorn
from litestar import Litestar, Request, get
from litestar.response import Response
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest, multiprocess
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from tresen.metrics import INBOUND_MESSAGES, WEBHOOKS
from tresen.ops.figures import database_figures
from tresen.runtime import Runtime
from tresen.web.clientip import is_loopback
from tresen.web.health import healthz, readyz

__all__ = [
    "INBOUND_MESSAGES",
    "WEBHOOKS",
    "SideServer",
    "metrics_endpoint",
    "render_metrics",
]


def _process_metrics() -> bytes:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry)
    return generate_latest(REGISTRY)


async def render_metrics(runtime: Runtime) -> bytes:
    """The text exposition: process metrics, then the database figures."""
    return _process_metrics() + await database_figures(runtime.sessions)


def allowed(request: Request[Any, Any, Any], token: str) -> bool:
    """With a token: the bearer must match; without: only clients on this machine."""
    if token:
        given = request.headers.get("authorization", "")
        return hmac.compare_digest(given.encode(), f"Bearer {token}".encode())
    return is_loopback(request)


@get("/metrics", include_in_schema=False)
async def metrics_endpoint(request: Request[Any, Any, Any]) -> Response[bytes]:
    """Prometheus text exposition (TRESEN_METRICS_TOKEN as bearer, or from this machine)."""
    runtime: Runtime = request.app.state.runtime
    if not allowed(request, runtime.settings.metrics_token):
        return Response(
            b"metrics need Authorization: Bearer <TRESEN_METRICS_TOKEN>\n",
            status_code=401,
            media_type="text/plain",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return Response(await render_metrics(runtime), media_type=CONTENT_TYPE_LATEST)


class SideServer:
    """/metrics, /healthz and /readyz of a worker, served inside its event loop."""

    def __init__(self, runtime: Runtime, host: str, port: int):
        app = Litestar(route_handlers=[metrics_endpoint, healthz, readyz], debug=False)
        app.state.runtime = runtime
        self.config = uvicorn.Config(
            app, host=host, port=port, lifespan="off", access_log=False, log_config=None
        )
        self.server = uvicorn.Server(self.config)

    async def start(self) -> None:
        """Listen (the worker keeps its own signal handlers)."""
        self.config.load()
        self.server.lifespan = self.config.lifespan_class(self.config)
        await self.server.startup()

    async def stop(self) -> None:
        """Close the listening socket and open connections."""
        await self.server.shutdown()
