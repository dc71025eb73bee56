"""Health, a bare endpoint for benchmarks, and a readable API reference page."""

from __future__ import annotations

from typing import Any

from litestar import Request, get
from litestar.response import Response

from tresen.ops.readiness import readiness
from tresen.runtime import Runtime
from tresen.web.pages import language_from, render


@get("/healthz", include_in_schema=False, sync_to_thread=False)
def healthz() -> Response[Any]:
    """Liveness: 200 while this process answers (readiness is /readyz)."""
    return Response({"status": "ok"})


@get("/readyz", include_in_schema=False)
async def readyz(request: Request[Any, Any, Any]) -> Response[Any]:
    """Readiness: database, schema, Redis when configured, a worker alive; 503 with reasons."""
    runtime: Runtime = request.app.state.runtime
    settings = runtime.settings
    ready, checks = await readiness(
        runtime.engine, runtime.sessions, settings.redis_url, settings.worker_heartbeat_seconds
    )
    return Response(
        {"status": "ready" if ready else "not ready", "checks": checks},
        status_code=200 if ready else 503,
    )


@get("/ping", include_in_schema=False, sync_to_thread=False)
def ping() -> Response[bytes]:
    """The bare endpoint benchmarks compare against."""
    return Response(b"pong", media_type="text/plain")


@get("/api/v1/docs", include_in_schema=False, sync_to_thread=False)
def api_docs(request: Request[Any, Any, Any]) -> Response[str]:
    """A readable reference of the REST API, rendered from the OpenAPI document."""
    language_from(request)
    schema = request.app.openapi_schema.to_schema()
    operations = [
        (
            method.upper(),
            path,
            op.get("summary", ""),
            ", ".join(
                f"{p['name']} ({p['in']})" for p in op.get("parameters", []) if isinstance(p, dict)
            ),
        )
        for path, item in sorted(schema.get("paths", {}).items())
        for method, op in item.items()
    ]
    return render(request, "api_docs.html", operations=operations)
