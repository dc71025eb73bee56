"""Rendering of server-side pages: Jinja2 with autoescaping, gettext and locale formatting."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from litestar import Request
from litestar.response import Response
from litestar.utils.scope.state import ScopeState

from tresen.web import i18n

_env = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=select_autoescape(["html"], default=True),
    extensions=["jinja2.ext.i18n"],
    trim_blocks=True,
    lstrip_blocks=True,
)
_env.install_gettext_callables(i18n.gettext, i18n.ngettext, newstyle=True)  # type: ignore[attr-defined]
_env.globals.update(when=i18n.when, number=i18n.number)


def csrf_token(request: Request[Any, Any, Any]) -> str:
    """The CSRF token Litestar's middleware issued for this request."""
    token = ScopeState.from_scope(request.scope).csrf_token
    return token if isinstance(token, str) else ""


def render(
    request: Request[Any, Any, Any], template: str, status_code: int = 200, **context: Any
) -> Response[str]:
    """A rendered page in the current language."""
    html = _env.get_template(template).render(
        csrf=csrf_token(request), lang=i18n.current_language.get(), **context
    )
    return Response(html, status_code=status_code, media_type="text/html; charset=utf-8")
