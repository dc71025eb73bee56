"""The client's address as limits should see it."""

from __future__ import annotations

from typing import Any

from litestar import Request


def client_ip(request: Request[Any, Any, Any]) -> str:
    """The peer address; the server takes X-Forwarded-For only from TRESEN_TRUSTED_PROXIES."""
    return request.client.host if request.client else "unknown"


def proxy_options(trusted_proxies: str) -> dict[str, Any]:
    """uvicorn's options: forwarded headers believed only from the named proxies."""
    trusted = trusted_proxies.strip()
    return {"proxy_headers": bool(trusted), "forwarded_allow_ips": trusted or ""}


def is_loopback(request: Request[Any, Any, Any]) -> bool:
    """Whether the (trusted) client address is this machine."""
    return client_ip(request) in ("127.0.0.1", "::1", "localhost")
