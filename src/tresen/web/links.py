"""The redirect of tracked links: GET /l/{token} answers 302 to the stored URL and counts the click."""

from __future__ import annotations

from typing import Any

from litestar import Request, get, head
from litestar.params import FromPath
from litestar.response import Redirect, Response

from tresen.broadcast import links
from tresen.web import i18n
from tresen.web.pages import render

_NO_STORE = {"cache-control": "no-store", "referrer-policy": "no-referrer"}
TEXTS = {
    "de": "Dieser Link ist unbekannt oder nicht mehr gültig.",
    "en": "This link is unknown or no longer valid.",
}


def _unknown(request: Request[Any, Any, Any]) -> Response[str]:
    language = i18n.pick_language(None, request.headers.get("accept-language"))
    response = render(
        request, "optin.html", status_code=404, text=TEXTS[language], page_lang=language
    )
    response.headers.update(_NO_STORE)
    return response


async def _resolve(request: Request[Any, Any, Any], token: str) -> Response[Any]:
    runtime = request.app.state.runtime
    agent = (request.headers.get("user-agent") or "")[:400] or None
    async with runtime.sessions() as session, session.begin():
        found = await links.click(
            session,
            token,
            user_agent=agent,
            ip_address=request.client.host if request.client else None,
            store_client=runtime.settings.link_tracking_store_client,
        )
    if found is None:
        return _unknown(request)
    return Redirect(found.url, status_code=302, headers=_NO_STORE)


@get("/l/{token:str}", include_in_schema=False)
async def follow_link(request: Request[Any, Any, Any], token: FromPath[str]) -> Response[Any]:
    """Redirect to the URL this token stands for (only stored URLs: no open redirect)."""
    return await _resolve(request, token)


@head("/l/{token:str}", include_in_schema=False)
async def probe_link(request: Request[Any, Any, Any], token: FromPath[str]) -> Response[None]:
    """The same redirect for HEAD (link checkers); not counted as a click."""
    async with request.app.state.runtime.sessions() as session:
        found = await links.click(session, token, count=False)
    if found is None:
        return Response(None, status_code=404, headers=_NO_STORE)
    return Response(None, status_code=302, headers={**_NO_STORE, "location": found.url})
