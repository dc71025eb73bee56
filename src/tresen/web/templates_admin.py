"""WhatsApp message templates in the browser: the list with review states, sync, create and submit."""

from __future__ import annotations

from typing import Any

import httpx
from litestar import Request, Router, get, post
from litestar.params import FromPath
from litestar.response import Redirect, Response
from sqlalchemy import select

from tresen.channels.base import ChannelError, ConfigError
from tresen.channels.manage import workspace_channel
from tresen.channels.registry import channel_factory
from tresen.db.tables import ChannelRow, MessageTemplate
from tresen.inbox.permissions import Action, Actor, may
from tresen.inbox.service import Forbidden
from tresen.pipeline import templates
from tresen.web import channel_checks, i18n
from tresen.web.audited import record_by
from tresen.web.errors import not_found_page
from tresen.web.inbox import Form, _runtime, current_actor
from tresen.web.pages import render

LANGUAGES = ("de", "en", "en_US", "fr", "it", "nl", "pl", "tr", "es")
"""Languages offered first in the form (any code WhatsApp knows can be typed)."""


class NoTemplates(Exception):
    """No such channel in this workspace, or its kind has no template catalog."""


async def _admin(request: Request[Any, Any, Any]) -> Actor:
    actor = await current_actor(request)
    if not may(actor, Action.MANAGE_SETTINGS):
        raise Forbidden("only admins manage message templates")
    return actor


async def _channel(session: Any, actor: Actor, channel_id: str) -> ChannelRow:
    try:
        row = await workspace_channel(session, actor.user.workspace_id, channel_id[:40])
    except ConfigError as exc:
        raise NoTemplates() from exc
    if not channel_factory(row.kind).capabilities.template_catalog:
        raise NoTemplates()
    return row


def _refusal(exc: Exception) -> str:
    if isinstance(exc, ConfigError) or (
        isinstance(exc, templates.TemplateError) and exc.code == "invalid_config"
    ):
        return i18n.gettext(
            "Enter the WhatsApp Business Account ID in the channel's settings first."
        )
    if isinstance(exc, templates.TemplateError):
        return i18n.error_text(exc)
    return channel_checks.failure_text(exc)


async def _page(
    request: Request[Any, Any, Any],
    actor: Actor,
    channel_id: str,
    *,
    error: str | None = None,
    posted: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response[str]:
    async with _runtime(request).sessions() as session:
        row = await _channel(session, actor, channel_id)
        rows = list(
            await session.scalars(
                select(MessageTemplate)
                .where(MessageTemplate.channel_id == row.id)
                .order_by(MessageTemplate.name, MessageTemplate.language)
            )
        )
    return render(
        request,
        "admin_templates.html",
        status_code=status_code,
        actor=actor,
        row=row,
        rows=rows,
        error=error,
        posted=posted or {},
        languages=LANGUAGES,
        categories=templates.CATEGORIES,
        notice=request.query_params.get("notice"),
    )


@get("/inbox/admin/channels/{channel_id:str}/templates", include_in_schema=False)
async def templates_page(
    request: Request[Any, Any, Any], channel_id: FromPath[str]
) -> Response[str]:
    """The channel's templates with their review state, and the form for a new one."""
    actor = await _admin(request)
    return await _page(request, actor, channel_id)


@post(
    "/inbox/admin/channels/{channel_id:str}/templates/sync",
    include_in_schema=False,
    status_code=303,
)
async def sync_templates(
    request: Request[Any, Any, Any], channel_id: FromPath[str]
) -> Response[Any]:
    """Fetch every template and its review state from the provider."""
    actor = await _admin(request)
    runtime = _runtime(request)
    try:
        async with runtime.sessions() as session, session.begin():
            row = await _channel(session, actor, channel_id)
            await templates.sync(session, runtime.http, row)
    except (templates.TemplateError, ChannelError, ConfigError, httpx.HTTPError) as exc:
        return await _page(request, actor, channel_id, error=_refusal(exc), status_code=422)
    return Redirect(f"/inbox/admin/channels/{row.id}/templates?notice=synced", status_code=303)


@post("/inbox/admin/channels/{channel_id:str}/templates", include_in_schema=False, status_code=303)
async def create_template(
    request: Request[Any, Any, Any], channel_id: FromPath[str], data: Form
) -> Response[Any]:
    """Submit a new template for the provider's review; it is stored as pending."""
    actor = await _admin(request)
    runtime = _runtime(request)
    posted = {k: str(data.get(k, ""))[:1100].strip() for k in ("name", "language", "category")}
    posted["body"] = str(data.get("body", ""))[:1100]
    try:
        draft = templates.check_draft(
            posted["name"], posted["language"], posted["category"], posted["body"]
        )
        async with runtime.sessions() as session, session.begin():
            row = await _channel(session, actor, channel_id)
            await templates.submit(session, runtime.http, row, draft)
            await record_by(session, actor, "template.submitted", "channel", row.id)
    except (templates.TemplateError, ChannelError, ConfigError, httpx.HTTPError) as exc:
        return await _page(
            request, actor, channel_id, error=_refusal(exc), posted=posted, status_code=422
        )
    return Redirect(f"/inbox/admin/channels/{row.id}/templates?notice=submitted", status_code=303)


templates_router = Router(
    path="/",
    route_handlers=[templates_page, sync_templates, create_template],
    exception_handlers={NoTemplates: not_found_page},
)
