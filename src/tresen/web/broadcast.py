"""Admin pages for broadcasts: campaigns with a live audience count, and each campaign's report."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, Router, get, post
from litestar.params import FromPath
from litestar.response import Redirect
from sqlalchemy import select

from tresen.broadcast import campaigns, report, segments
from tresen.db.tables import Campaign, ChannelRow, Topic
from tresen.inbox.permissions import Action, Actor, may
from tresen.inbox.service import Forbidden, NotFound
from tresen.web import i18n
from tresen.web.inbox import Form, _runtime, current_actor
from tresen.web.pages import render

ACTIONS = ("start", "pause", "resume", "cancel")


async def _viewer(request: Request[Any, Any, Any]) -> Actor:
    actor = await current_actor(request)
    if not may(actor, Action.VIEW_REPORTS):
        raise Forbidden("only supervisors and admins see broadcasts")
    return actor


def _filter_from(params: dict[str, str]) -> dict[str, Any]:
    """A segment filter from the form fields (empty fields are left out)."""
    raw: dict[str, Any] = {}
    for key in ("topic", "language", "active_within_days", "inactive_for_days"):
        value = (params.get(key) or "").strip()
        if value:
            raw[key] = value
    for key in ("labels", "channels"):
        value = (params.get(key) or "").strip()
        if value:
            raw[key] = value
    name, value = (params.get("attribute") or "").strip(), (params.get("value") or "").strip()
    if name and value:
        raw["attributes"] = {name: value}
    return raw


@get("/inbox/admin/campaigns", include_in_schema=False)
async def campaigns_page(request: Request[Any, Any, Any]) -> Response[str]:
    """Campaigns, newest first, and the form for a new one with a live audience count."""
    return await campaigns_view(request, await _viewer(request))


async def campaigns_view(
    request: Request[Any, Any, Any],
    actor: Actor,
    *,
    error: str | None = None,
    posted: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response[str]:
    """The campaigns page, with an error and the posted fields after a refused draft."""
    async with _runtime(request).sessions() as session:
        rows = list(
            await session.scalars(
                select(Campaign)
                .where(Campaign.workspace_id == actor.user.workspace_id)
                .order_by(Campaign.created_at.desc())
                .limit(200)
            )
        )
        topics = list(
            await session.scalars(
                select(Topic)
                .where(Topic.workspace_id == actor.user.workspace_id)
                .order_by(Topic.keyword)
            )
        )
    return render(
        request,
        "admin_campaigns.html",
        status_code=status_code,
        actor=actor,
        campaigns=rows,
        topics=topics,
        may_create=may(actor, Action.MANAGE_SETTINGS),
        error=error,
        posted=posted or {},
    )


@get("/inbox/admin/campaigns/count", include_in_schema=False)
async def segment_count(request: Request[Any, Any, Any]) -> Response[str]:
    """The live count of a segment filter (an htmx fragment)."""
    actor = await _viewer(request)
    params = {k: str(v) for k, v in request.query_params.items()}
    try:
        async with _runtime(request).sessions() as session:
            n = await segments.count(session, actor.user.workspace_id, _filter_from(params))
    except segments.SegmentError as exc:
        return render(request, "_segment_count.html", error=i18n.error_text(exc), count=None)
    return render(request, "_segment_count.html", error=None, count=n)


async def _campaign(request: Request[Any, Any, Any], actor: Actor, campaign_id: str) -> Campaign:
    async with _runtime(request).sessions() as session:
        row = await session.scalar(
            select(Campaign).where(
                Campaign.id == campaign_id, Campaign.workspace_id == actor.user.workspace_id
            )
        )
    if row is None:
        raise NotFound("no such campaign")
    return row


@get("/inbox/admin/campaigns/{campaign_id:str}", include_in_schema=False)
async def campaign_report(
    request: Request[Any, Any, Any], campaign_id: FromPath[str]
) -> Response[str]:
    """One campaign: delivery funnel over time, failures, skips, opt-outs, clicks per link."""
    actor = await _viewer(request)
    row = await _campaign(request, actor, campaign_id)
    async with _runtime(request).sessions() as session:
        figures = await report.build(session, row)
        channels = list(
            await session.scalars(
                select(ChannelRow).where(ChannelRow.id.in_(row.channel_ids.get("ids") or [""]))
            )
        )
    return render(
        request,
        "admin_campaign.html",
        channels=channels,
        request_tested=request.query_params.get("tested") == "1",
        actor=actor,
        campaign=row,
        report=figures,
        chart=figures.chart(),
        may_manage=may(actor, Action.MANAGE_SETTINGS),
        error=request.query_params.get("error"),
    )


@post("/inbox/admin/campaigns/{campaign_id:str}/{action:str}", include_in_schema=False)
async def campaign_action(
    request: Request[Any, Any, Any], campaign_id: FromPath[str], action: FromPath[str], data: Form
) -> Redirect:
    """Start, pause, resume or cancel (admins)."""
    actor = await current_actor(request)
    if not may(actor, Action.MANAGE_SETTINGS) or action not in ACTIONS:
        raise Forbidden("only admins start, pause, resume or cancel campaigns")
    await _campaign(request, actor, campaign_id)
    target = f"/inbox/admin/campaigns/{campaign_id}"
    async with _runtime(request).sessions() as session, session.begin():
        row = await session.get_one(Campaign, campaign_id)
        try:
            await getattr(campaigns, action)(session, row)
        except campaigns.CampaignError as exc:
            return Redirect(f"{target}?error={exc.code}")  # the service audits what it did
    return Redirect(target)


broadcast_router = Router(
    path="/", route_handlers=[campaigns_page, segment_count, campaign_report, campaign_action]
)
