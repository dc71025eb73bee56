"""Run an ASGI app with uvicorn inside the current event loop."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Literal

import uvicorn

__all__ = ["serve_asgi"]


@asynccontextmanager
async def serve_asgi(
    app: Any,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    lifespan: Literal["auto", "on", "off"] = "on",
    startup_timeout: float = 10.0,
    graceful_timeout: int = 3,
) -> AsyncIterator[str]:
    """Serve `app` on host:port (0 picks a free port) and yield its base URL."""
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        lifespan=lifespan,
        timeout_graceful_shutdown=graceful_timeout,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        deadline = asyncio.get_running_loop().time() + startup_timeout
        while not server.started:
            if task.done():
                task.result()
                raise RuntimeError(f"server on {host}:{port} stopped during startup")
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"server on {host}:{port} did not start in {startup_timeout}s")
            await asyncio.sleep(0.005)
        bound_host, bound_port = server.servers[0].sockets[0].getsockname()[:2]
        url_host = f"[{bound_host}]" if ":" in bound_host else bound_host
        yield f"http://{url_host}:{bound_port}"
    finally:
        server.should_exit = True
        await task
