"""API tokens in the browser: create with scopes and an optional expiry (shown once), list, revoke."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from litestar import Request, Router, get, post
from litestar.params import FromPath
from litestar.response import Redirect, Response

from tresen.inbox.permissions import Action, Actor, may
from tresen.inbox.service import Forbidden
from tresen.integrations import tokens
from tresen.web import i18n
from tresen.web.audited import record_by
from tresen.web.inbox import _runtime, current_actor
from tresen.web.pages import render

LIFETIMES = {
    "": None,
    "30": timedelta(days=30),
    "90": timedelta(days=90),
    "365": timedelta(days=365),
}
"""The expiries offered (days); empty: the token stays valid until it is revoked."""


async def _admin(request: Request[Any, Any, Any]) -> Actor:
    actor = await current_actor(request)
    if not may(actor, Action.MANAGE_SETTINGS):
        raise Forbidden("only admins manage API tokens")
    return actor


async def _page(
    request: Request[Any, Any, Any],
    actor: Actor,
    *,
    created: tuple[str, str] | None = None,
    error: str | None = None,
    status_code: int = 200,
) -> Response[str]:
    async with _runtime(request).sessions() as session:
        listed = await tokens.list_tokens(session, actor.user.workspace_id)
    return render(
        request,
        "admin_tokens.html",
        status_code=status_code,
        actor=actor,
        tokens=listed,
        scopes=tokens.SCOPE_MEANINGS,
        created=created,
        error=error,
    )


@get("/inbox/admin/tokens", include_in_schema=False)
async def tokens_page(request: Request[Any, Any, Any]) -> Response[str]:
    """The workspace's API tokens (never their values) and the form for a new one."""
    return await _page(request, await _admin(request))


@post("/inbox/admin/tokens", include_in_schema=False, status_code=200)
async def create(request: Request[Any, Any, Any]) -> Response[str]:
    """A new token, shown only on this page; the scopes are checkboxes, so the form repeats keys."""
    actor = await _admin(request)
    form = await request.form()
    scopes = [str(s)[:40] for s in form.getall("scope")] if "scope" in form else []
    lifetime = str(form.get("expires_in", ""))
    name = str(form.get("name", ""))[:200]
    try:
        if lifetime not in LIFETIMES:
            raise ValueError(i18n.gettext("Choose one of the offered lifetimes."))
        if not scopes:
            raise ValueError(i18n.gettext("Tick at least one thing the token may do."))
        async with _runtime(request).sessions() as session, session.begin():
            value = await tokens.create_token(
                session, actor.user.workspace_id, name, scopes, LIFETIMES[lifetime]
            )
            await record_by(session, actor, "token.created", "token", name)
    except tokens.TokenError as exc:
        return await _page(request, actor, error=exc.text(i18n.gettext), status_code=422)
    except ValueError as exc:
        return await _page(request, actor, error=str(exc), status_code=422)
    return await _page(request, actor, created=(name, value))


@post("/inbox/admin/tokens/{token_id:str}/revoke", include_in_schema=False, status_code=303)
async def revoke(request: Request[Any, Any, Any], token_id: FromPath[str]) -> Redirect:
    """Revoke a token: the next API call with it is refused."""
    actor = await _admin(request)
    async with _runtime(request).sessions() as session, session.begin():
        if await tokens.revoke_token(session, actor.user.workspace_id, token_id[:40]):
            await record_by(session, actor, "token.revoked", "token", token_id[:40])
    return Redirect("/inbox/admin/tokens", status_code=303)


tokens_admin_router = Router(path="/", route_handlers=[tokens_page, create, revoke])
