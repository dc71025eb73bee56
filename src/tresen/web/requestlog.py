"""A request id for every request (logs and the X-Request-ID header), and the access log."""

from __future__ import annotations

import logging
import re
import secrets
import time
from collections.abc import Callable

from litestar.datastructures import MutableScopeHeaders
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from tresen.logs import REQUEST_ID

access_log = logging.getLogger("tresen.access")
_GIVEN_ID = re.compile(r"^[A-Za-z0-9._:-]{8,64}$")


def _request_id(scope: Scope) -> str:
    for name, value in scope.get("headers", ()):
        if name == b"x-request-id":
            text = value.decode("latin-1")
            if _GIVEN_ID.match(text):
                return text
    return secrets.token_hex(8)


def request_ids(access: bool) -> Callable[[ASGIApp], ASGIApp]:
    """Middleware factory: request ids always, one access-log line a request when `access`."""

    def middleware(app: ASGIApp) -> ASGIApp:
        async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http":
                await app(scope, receive, send)
                return
            request_id = _request_id(scope)
            REQUEST_ID.set(request_id)
            started = time.perf_counter()
            status = 500

            async def send_with_id(message: Message) -> None:
                nonlocal status
                if message["type"] == "http.response.start":
                    status = message["status"]
                    MutableScopeHeaders.from_message(message)["x-request-id"] = request_id
                await send(message)

            try:
                await app(scope, receive, send_with_id)
            finally:
                if access:
                    # The route's template, never the raw path: paths carry tokens and ids.
                    access_log.info(
                        "%s %s %d %.1f ms",
                        scope.get("method", "-"),
                        scope.get("path_template") or "(no route)",
                        status,
                        (time.perf_counter() - started) * 1000,
                    )

        return wrapped

    return middleware
