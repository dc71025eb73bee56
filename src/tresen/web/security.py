"""Security headers on every response; no-store for signed-in callers; a correct OPTIONS Allow."""

from __future__ import annotations

from litestar.datastructures import MutableScopeHeaders
from litestar.types import ASGIApp, Message, Receive, Scope, Send

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
HEADERS = {
    "content-security-policy": CONTENT_SECURITY_POLICY,
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "same-origin",
    "permissions-policy": "camera=(), microphone=(), geolocation=(), payment=()",
    "cross-origin-opener-policy": "same-origin",
}


HSTS = "max-age=31536000; includeSubDomains"
SESSION_COOKIE = b"tresen_session="
_CACHEABLE = ("/static/", "/widget.js")


def security_headers(app: ASGIApp, hsts: bool = False) -> ASGIApp:
    """Wrap an ASGI app so every HTTP response carries the security headers."""

    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        private = _signed_in(scope) and not scope["path"].startswith(_CACHEABLE)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableScopeHeaders.from_message(message)
                for name, value in HEADERS.items():
                    if name not in headers:
                        headers[name] = value
                if hsts:
                    headers["strict-transport-security"] = HSTS
                if private and "cache-control" not in headers:
                    headers["cache-control"] = "no-store"
                if scope.get("method") == "OPTIONS" and "allow" in headers:
                    headers["allow"] = _allowed_methods(scope, headers["allow"])
            await send(message)

        await app(scope, receive, send_with_headers)

    return wrapped


def _signed_in(scope: Scope) -> bool:
    """Whether the request carries a session cookie or an API token."""
    for name, value in scope["headers"]:
        if name == b"authorization" or (name == b"cookie" and SESSION_COOKIE in value):
            return True
    return False


def _allowed_methods(scope: Scope, given: str) -> str:
    """Every method the matched path answers (Litestar lists only the first handler's)."""
    template = scope.get("path_template")
    methods = {m.strip() for m in given.split(",") if m.strip()}
    for route in getattr(scope.get("app"), "routes", ()):
        if getattr(route, "path_format", None) == template:
            methods |= set(getattr(route, "methods", ()))
    return ", ".join(sorted(methods))
