"""One HTTP call to a provider's API: connection failures as TransientError, the answer's JSON."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

import httpx

from tresen.channels.base import TransientError


def json_body(response: httpx.Response) -> Any:
    """The answer's body as JSON, or None when it is not JSON."""
    try:
        return response.json()
    except ValueError:
        return None


async def call_api(
    request: Awaitable[httpx.Response], provider: str, *, upload: bool = False
) -> tuple[httpx.Response, Any]:
    """Await one request: its response and JSON body (TransientError when no answer came)."""
    try:
        response = await request
    except httpx.TimeoutException as exc:
        doing = "uploading to" if upload else "talking to"
        raise TransientError(f"timeout {doing} {provider}: {type(exc).__name__}") from exc
    except httpx.TransportError as exc:
        what = "upload" if upload else "connection"
        raise TransientError(f"{what} to {provider} failed: {type(exc).__name__}") from exc
    return response, json_body(response)
