"""Rendering of server-side pages: Jinja2 with autoescaping, gettext and locale formatting."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from litestar import Request
from litestar.response import Response
from litestar.utils.scope.state import ScopeState

from tresen.inbox.permissions import Actor
from tresen.web import i18n
from tresen.web.layout import nav_for

_env = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=select_autoescape(["html"], default=True),
    extensions=["jinja2.ext.i18n"],
    trim_blocks=True,
    lstrip_blocks=True,
)
_env.install_gettext_callables(i18n.gettext, i18n.ngettext, newstyle=True)  # type: ignore[attr-defined]
_env.globals.update(when=i18n.when, number=i18n.number, reason_text=i18n.reason_text)


def csrf_token(request: Request[Any, Any, Any]) -> str:
    """The CSRF token Litestar's middleware issued for this request."""
    token = ScopeState.from_scope(request.scope).csrf_token
    return token if isinstance(token, str) else ""


def render(
    request: Request[Any, Any, Any], template: str, status_code: int = 200, **context: Any
) -> Response[str]:
    """A rendered page in the current language, with the header when someone is signed in."""
    actor = context.get("actor")
    if isinstance(actor, Actor):
        context.setdefault("nav", nav_for(actor, request.url.path))
    html = _env.get_template(template).render(
        csrf=csrf_token(request),
        lang=i18n.current_language.get(),
        zone=i18n.current_zone.get(),
        **context,
    )
    return Response(html, status_code=status_code, media_type="text/html; charset=utf-8")


def language_from(request: Request[Any, Any, Any]) -> None:
    """Before sign-in: the language asked for, else the cookie, else the browser's."""
    chosen = request.query_params.get("lang") or request.cookies.get("tresen_lang")
    i18n.current_language.set(i18n.pick_language(chosen, request.headers.get("accept-language")))
