"""API tokens over the API: list them and revoke one (its requests get 401 at once)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec
from litestar import Request, Router, delete, get
from litestar.params import FromPath

from tresen.integrations.tokens import list_tokens, revoke_token
from tresen.web.api import ERROR_RESPONSES, _runtime, authenticate_first, require
from tresen.web.errors import ApiError


class TokenOut(msgspec.Struct):
    """An API token as it can be shown: never its value."""

    id: str
    name: str
    state: str
    scopes: list[str]
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None


@get("/tokens", responses=ERROR_RESPONSES, summary="List the workspace's API tokens")
async def tokens(request: Request[Any, Any, Any]) -> list[TokenOut]:
    """Every token of the caller's workspace, newest first, with its state."""
    principal = await require(request, "tokens:manage")
    async with _runtime(request).sessions() as session:
        found = await list_tokens(session, principal.workspace_id)
    return [
        TokenOut(t.id, t.name, t.state, t.scopes, t.created_at, t.expires_at, t.revoked_at)
        for t in found
    ]


@delete(
    "/tokens/{token_id:str}",
    responses=ERROR_RESPONSES,
    status_code=204,
    summary="Revoke an API token",
)
async def revoke(request: Request[Any, Any, Any], token_id: FromPath[str]) -> None:
    """Revoke a token of the caller's workspace; its next request is refused with 401."""
    principal = await require(request, "tokens:manage")
    async with _runtime(request).sessions() as session, session.begin():
        revoked = await revoke_token(session, principal.workspace_id, token_id)
    if not revoked:
        raise ApiError("not_found", "no active token with this id", 404)


tokens_router = Router(
    path="/api/v1",
    route_handlers=[tokens, revoke],
    security=[{"BearerToken": []}],
    before_request=authenticate_first,
)
