"""Health, a bare endpoint for benchmarks, and a readable API reference page."""

from __future__ import annotations

import html
from typing import Any

from litestar import Request, get
from litestar.response import Response
from sqlalchemy import text

from tresen.runtime import Runtime


@get("/healthz", include_in_schema=False)
async def healthz(request: Request[Any, Any, Any]) -> Response[Any]:
    """200 when the database answers, 503 otherwise."""
    runtime: Runtime = request.app.state.runtime
    try:
        async with runtime.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    except Exception:  # noqa: BLE001 - any failure means unhealthy
        return Response({"status": "unavailable", "database": "unreachable"}, status_code=503)
    return Response({"status": "ok", "database": runtime.engine.dialect.name})


@get("/ping", include_in_schema=False, sync_to_thread=False)
def ping() -> Response[bytes]:
    """The bare endpoint benchmarks compare against."""
    return Response(b"pong", media_type="text/plain")


@get("/api/v1/docs", include_in_schema=False, sync_to_thread=False)
def api_docs(request: Request[Any, Any, Any]) -> Response[str]:
    """A self-contained reference of the REST API, rendered from the OpenAPI document."""
    schema = request.app.openapi_schema.to_schema()
    rows = []
    for path, item in sorted(schema.get("paths", {}).items()):
        for method, op in item.items():
            params = ", ".join(
                f"{p['name']} ({p['in']})" for p in op.get("parameters", []) if isinstance(p, dict)
            )
            rows.append(
                f"<tr><td><code>{html.escape(method.upper())}</code></td><td><code>{html.escape(path)}</code></td>"
                f"<td>{html.escape(op.get('summary', ''))}</td><td>{html.escape(params)}</td></tr>"
            )
    page = (
        "<!doctype html><html lang=en><meta charset=utf-8><title>tresen API v1</title>"
        "<style>body{font-family:system-ui,sans-serif;margin:2rem;max-width:70rem}"
        "td,th{border-bottom:1px solid #ddd;padding:.4rem;text-align:left}</style>"
        "<h1>tresen REST API v1</h1><p>Authenticate with <code>Authorization: Bearer &lt;token&gt;</code> "
        "(<code>tresen token create NAME --scope all</code>). Machine-readable: "
        "<a href=/api/v1/openapi.json>/api/v1/openapi.json</a>.</p>"
        "<table><tr><th>method</th><th>path</th><th>what</th><th>parameters</th></tr>"
        + "".join(rows)
        + "</table></html>"
    )
    return Response(page, media_type="text/html")
