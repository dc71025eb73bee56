"""Every error a client can cause becomes JSON with a clear message; never a bare 500."""

from __future__ import annotations

import logging
from typing import Any

from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from sqlalchemy.exc import DBAPIError, OperationalError

from tresen.channels.base import ConfigError, WebhookRejected
from tresen.inbox.service import Forbidden, NotFound
from tresen.pipeline.outbound import OutboundRefused
from tresen.web.inbox import SignInRequired

log = logging.getLogger(__name__)


class ApiError(Exception):
    """An error with an HTTP status, a stable code and a message for the caller."""

    def __init__(self, status_code: int, code: str, message: str):
        super().__init__(message)
        self.status_code = status_code
        self.code = code
        self.message = message


def error_response(
    status: int, code: str, message: str, extra: dict[str, Any] | None = None
) -> Response[Any]:
    """The JSON body all errors share."""
    body: dict[str, Any] = {"error": {"code": code, "message": message}}
    if extra:
        body["error"].update(extra)
    return Response(body, status_code=status, media_type="application/json")


def _api_error(_: Request[Any, Any, Any], exc: ApiError) -> Response[Any]:
    return error_response(exc.status_code, exc.code, exc.message)


def _webhook_rejected(_: Request[Any, Any, Any], exc: WebhookRejected) -> Response[Any]:
    code = {
        400: "malformed",
        401: "unauthenticated",
        403: "forbidden",
        404: "not_found",
        413: "too_large",
    }
    return error_response(exc.status_code, code.get(exc.status_code, "rejected"), exc.message)


def _refused(_: Request[Any, Any, Any], exc: OutboundRefused) -> Response[Any]:
    return error_response(exc.status_code, exc.code, exc.message)


def _config(_: Request[Any, Any, Any], exc: ConfigError) -> Response[Any]:
    return error_response(400, "invalid_config", str(exc))


def _validation(_: Request[Any, Any, Any], exc: ValidationException) -> Response[Any]:
    extra = {"details": exc.extra} if exc.extra else None
    return error_response(400, "invalid_request", str(exc.detail), extra)


def _http(_: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
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


def _database(_: Request[Any, Any, Any], exc: DBAPIError) -> Response[Any]:
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
    return error_response(403, "forbidden", str(exc) or "not allowed")


def _missing(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    return error_response(404, "not_found", "no such conversation")


def _unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    log.exception("unexpected error on %s %s", request.method, request.url.path)
    return error_response(500, "internal", "an unexpected error occurred; it has been logged")


EXCEPTION_HANDLERS: dict[Any, Any] = {
    SignInRequired: _sign_in,
    Forbidden: _forbidden,
    NotFound: _missing,
    ApiError: _api_error,
    WebhookRejected: _webhook_rejected,
    OutboundRefused: _refused,
    ConfigError: _config,
    ValidationException: _validation,
    HTTPException: _http,
    DBAPIError: _database,
    Exception: _unexpected,
}
