"""The campaign wizard's last steps on the draft: when (in the workspace's time zone), quiet
hours, a test to my own address, then the confirm step with the count and what it costs."""

from __future__ import annotations

from typing import Any

from litestar import Request, get, post
from litestar.params import FromPath
from litestar.response import Redirect, Response
from sqlalchemy import select

from tresen.broadcast import campaigns, segments
from tresen.channels.registry import channel_factory
from tresen.db.tables import Campaign, ChannelRow
from tresen.db.types import utcnow
from tresen.domain.errors import DomainError
from tresen.inbox.permissions import Actor
from tresen.web import i18n
from tresen.web.campaign_form import (
    BASE,
    KINDS,
    WizardError,
    admin_actor,
    draft_of,
    page_helpers,
)
from tresen.web.campaign_preview import previews, sample_contact
from tresen.web.inbox import Form, _runtime
from tresen.web.pages import render

NO_QUIET_HOURS = ("", "none", "off", "keine", "aus")
"""What people type for "send around the clock"."""


async def _send_page(
    request: Request[Any, Any, Any],
    actor: Actor,
    row: Campaign,
    form: dict[str, str],
    error: str | None = None,
) -> Response[str]:
    async with _runtime(request).sessions() as session:
        channels = list(
            await session.scalars(
                select(ChannelRow).where(ChannelRow.id.in_(row.channel_ids.get("ids") or [""]))
            )
        )
    return render(
        request,
        "campaign_send.html",
        status_code=422 if error else 200,
        actor=actor,
        campaign=row,
        channels=channels,
        form=form,
        error=error,
        tested=request.query_params.get("tested") == "1",
        test_error=request.query_params.get("error"),
        **page_helpers(),
    )


@get(f"{BASE}/{{campaign_id:str}}/send", include_in_schema=False)
async def wizard_send(request: Request[Any, Any, Any], campaign_id: FromPath[str]) -> Response[Any]:
    """Step 3: when (in the workspace's zone), quiet hours, and a test to my own address."""
    actor = await admin_actor(request)
    row = await draft_of(request, actor, campaign_id)
    if row.state != campaigns.DRAFT:
        return Redirect(f"/inbox/admin/campaigns/{row.id}", status_code=303)
    form = {"quiet_hours": row.quiet_hours or "", "when": "now"}
    return await _send_page(request, actor, row, form)


@post(f"{BASE}/{{campaign_id:str}}/send", include_in_schema=False, status_code=200)
async def wizard_send_post(
    request: Request[Any, Any, Any], campaign_id: FromPath[str], data: Form
) -> Response[Any]:
    """Check the time and the quiet hours, keep the quiet hours, go to the confirm step."""
    actor = await admin_actor(request)
    row = await draft_of(request, actor, campaign_id)
    if row.state != campaigns.DRAFT:
        return Redirect(f"/inbox/admin/campaigns/{row.id}", status_code=303)
    form = {k: str(data.get(k, ""))[:40] for k in ("when", "at", "quiet_hours")}
    at = form["at"].strip() if form["when"] == "later" else ""
    try:
        if form["when"] == "later":
            if not at:
                raise WizardError("at", "give the time as YYYY-MM-DD HH:MM")
            if campaigns.parse_local_time(at, row.time_zone) < utcnow():
                raise WizardError("at", "the time lies in the past")
        quiet = form["quiet_hours"].strip()
        quiet = "" if quiet.lower() in NO_QUIET_HOURS else quiet
        campaigns.parse_quiet_hours(quiet)
    except DomainError as exc:
        return await _send_page(request, actor, row, form, i18n.error_text(exc))
    async with _runtime(request).sessions() as session, session.begin():
        fresh = await session.get_one(Campaign, row.id)
        if fresh.state == campaigns.DRAFT:
            fresh.quiet_hours = quiet or None
    suffix = f"?at={at}" if at else ""
    return Redirect(f"{BASE}/{row.id}/confirm{suffix}", status_code=303)


@get(f"{BASE}/{{campaign_id:str}}/confirm", include_in_schema=False)
async def wizard_confirm(
    request: Request[Any, Any, Any], campaign_id: FromPath[str]
) -> Response[Any]:
    """Step 4: the count and what it costs (template messages, SMS parts), then start."""
    actor = await admin_actor(request)
    row = await draft_of(request, actor, campaign_id)
    if row.state != campaigns.DRAFT:
        return Redirect(f"/inbox/admin/campaigns/{row.id}", status_code=303)
    at_text = request.query_params.get("at", "")[:40]
    try:
        at = campaigns.parse_local_time(at_text, row.time_zone) if at_text else None
    except DomainError:
        at = None
    async with _runtime(request).sessions() as session:
        estimate = await campaigns.audience_estimate(session, row)
        reach = await segments.reach(
            session,
            row.workspace_id,
            row.filter,
            frequency_cap=row.frequency_cap,
            campaign_id=row.id,
        )
        sample = await sample_contact(session, row.workspace_id, row.filter)
    kinds = sorted(reach.per_kind, key=lambda k: KINDS.index(k) if k in KINDS else 99)
    shown = previews(row.content, kinds, sample.values, None)
    waits = campaigns.quiet_until(at or utcnow(), row.time_zone, row.quiet_hours)
    template_kinds = {
        k for k in kinds if campaigns.content_for(row.content, k).template is not None
    }
    windowed = {k for k in kinds if channel_factory(k).capabilities.window is not None}
    return render(
        request,
        "campaign_confirm.html",
        actor=actor,
        campaign=row,
        at=at,
        at_text=at_text if at else "",
        estimate=estimate,
        reach=reach,
        previews=shown,
        template_kinds=template_kinds,
        windowed=windowed,
        waits=waits,
        **page_helpers(),
    )


@post(f"{BASE}/{{campaign_id:str}}/confirm", include_in_schema=False, status_code=303)
async def wizard_confirm_post(
    request: Request[Any, Any, Any], campaign_id: FromPath[str], data: Form
) -> Redirect:
    """Start now or schedule; the report page follows (with pause, resume and cancel)."""
    actor = await admin_actor(request)
    row = await draft_of(request, actor, campaign_id)
    target = f"/inbox/admin/campaigns/{row.id}"
    at = str(data.get("at", ""))[:40].strip()
    async with _runtime(request).sessions() as session, session.begin():
        fresh = await session.get_one(Campaign, row.id)
        try:
            if at:
                await campaigns.schedule(
                    session, fresh, campaigns.parse_local_time(at, fresh.time_zone)
                )
            else:
                await campaigns.start(session, fresh)
        except campaigns.CampaignError as exc:
            return Redirect(f"{target}?error={exc.code}", status_code=303)
    _runtime(request).jobs_ready.set()
    return Redirect(target, status_code=303)


SCHEDULE = [wizard_send, wizard_send_post, wizard_confirm, wizard_confirm_post]
