"""Every error a client can cause becomes JSON with a clear message; never a bare 500."""

from __future__ import annotations

import logging
from typing import Any

from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from sqlalchemy.exc import DBAPIError, OperationalError

from tresen.channels.base import WebhookRejected
from tresen.domain.errors import DomainError
from tresen.inbox.service import Forbidden, NotFound
from tresen.web import i18n
from tresen.web.pages import language_from, render

MACHINE_PATHS = ("/api/", "/webhooks/", "/chat/", "/healthz", "/metrics", "/ping")

log = logging.getLogger(__name__)


class SignInRequired(Exception):
    """No valid session: pages redirect to the login, htmx gets 401 with a redirect header."""


class ApiError(DomainError):
    """A refusal only the HTTP API makes (authentication, scopes, unknown ids in a URL)."""


def error_response(
    status: int, code: str, message: str, extra: dict[str, Any] | None = None
) -> Response[Any]:
    """The JSON body all errors share."""
    body: dict[str, Any] = {"error": {"code": code, "message": message}}
    if extra:
        body["error"].update(extra)
    return Response(body, status_code=status, media_type="application/json")


def _domain_error(request: Request[Any, Any, Any], exc: DomainError) -> Response[Any]:
    """Every domain error, from any layer: a page in the user's language, or JSON in English."""
    if _wants_page(request):  # the signed-in person's language is set already
        if exc.status in (403, 404):
            return _error_page(request, exc.status)
        title = i18n.gettext("This did not work")
        text = i18n.error_text(exc)
        return render(
            request, "error.html", status_code=exc.status, title=title, text=text, status=exc.status
        )
    return error_response(exc.status, exc.code, exc.message)


def _webhook_rejected(_: Request[Any, Any, Any], exc: WebhookRejected) -> Response[Any]:
    code = {
        400: "malformed",
        401: "unauthenticated",
        403: "forbidden",
        404: "not_found",
        413: "too_large",
    }
    return error_response(exc.status_code, code.get(exc.status_code, "rejected"), exc.message)


def _validation(_: Request[Any, Any, Any], exc: ValidationException) -> Response[Any]:
    extra = {"details": exc.extra} if exc.extra else None
    return error_response(400, "invalid_request", str(exc.detail), extra)


def _wants_page(request: Request[Any, Any, Any]) -> bool:
    """A browser asking for a page (not htmx, not the API, webhooks or the chat widget)."""
    return (
        "text/html" in request.headers.get("accept", "")
        and not request.headers.get("hx-request")
        and not request.url.path.startswith(MACHINE_PATHS)
    )


def _error_page(request: Request[Any, Any, Any], status: int) -> Response[Any]:
    if status == 403:
        title = i18n.gettext("Not allowed")
        text = i18n.gettext("Your role may not open this page or do this. Ask an admin.")
    else:
        title = i18n.gettext("Page not found")
        text = i18n.gettext("This page does not exist (any more), or you may not see it.")
    return render(request, "error.html", status_code=status, title=title, text=text, status=status)


def not_found_page(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    """The HTML 404 page, for exceptions of browser-only routers that mean "no such page"."""
    return _error_page(request, 404)


def _http(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    if exc.status_code in (403, 404, 405) and _wants_page(request):
        language_from(request)
        return _error_page(request, 404 if exc.status_code == 405 else exc.status_code)
    code = {
        400: "bad_request",
        401: "unauthenticated",
        403: "forbidden",
        404: "not_found",
        405: "method_not_allowed",
        413: "too_large",
        415: "unsupported_media_type",
        429: "rate_limited",
    }.get(exc.status_code, "http_error")
    response = error_response(exc.status_code, code, str(exc.detail))
    if exc.headers:
        response.headers.update(exc.headers)
    return response


_BAD_TEXT = {"22021", "22P05"}  # PostgreSQL: NUL (0x00) in text, \u0000 in jsonb


def _database(_: Request[Any, Any, Any], exc: DBAPIError) -> Response[Any]:
    if getattr(exc.orig, "sqlstate", None) in _BAD_TEXT:
        return error_response(400, "bad_text", "text must not contain NUL (0x00) characters")
    log.warning(
        "database unavailable or busy: %s",
        type(exc.orig).__name__ if exc.orig else type(exc).__name__,
    )
    if isinstance(exc, OperationalError) or exc.connection_invalidated:
        return error_response(503, "unavailable", "the database is busy or unreachable; try again")
    return error_response(503, "unavailable", "the request could not be stored; try again")


def _sign_in(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    if request.headers.get("hx-request"):
        return Response("", status_code=401, headers={"HX-Redirect": "/inbox/login"})
    return Response("", status_code=303, headers={"Location": "/inbox/login"})


def _forbidden(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    if _wants_page(request):
        return _error_page(request, 403)
    return error_response(403, "forbidden", str(exc) or "not allowed")


def _missing(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    if _wants_page(request):
        return _error_page(request, 404)
    return error_response(404, "not_found", "no such conversation")


def _too_deep(_: Request[Any, Any, Any], exc: RecursionError) -> Response[Any]:
    return error_response(400, "too_deep", "the request is nested too deeply")


def _unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    log.exception("unexpected error on %s %s", request.method, request.url.path)
    return error_response(500, "internal", "an unexpected error occurred; it has been logged")


EXCEPTION_HANDLERS: dict[Any, Any] = {
    SignInRequired: _sign_in,
    Forbidden: _forbidden,
    NotFound: _missing,
    DomainError: _domain_error,
    WebhookRejected: _webhook_rejected,
    ValidationException: _validation,
    HTTPException: _http,
    DBAPIError: _database,
    RecursionError: _too_deep,
    Exception: _unexpected,
}
