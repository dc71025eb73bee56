"""Campaigns created in the browser: audience with a live count, text, quiet hours, schedule in
the workspace's time zone; a test send to my own address before the real one."""

from __future__ import annotations

from typing import Any

from litestar import Request, Router, post
from litestar.params import FromPath
from litestar.response import Redirect, Response
from sqlalchemy.ext.asyncio import AsyncSession

from tresen.broadcast import campaigns
from tresen.db.tables import Campaign, ChannelRow, User
from tresen.inbox.permissions import Action, Actor, may
from tresen.inbox.service import Forbidden, NotFound
from tresen.web import i18n
from tresen.web.audited import record_by
from tresen.web.broadcast import _filter_from, campaigns_view
from tresen.web.campaign_form import BASE
from tresen.web.campaign_schedule import SCHEDULE
from tresen.web.campaign_wizard import WIZARD
from tresen.web.inbox import Form, _runtime, current_actor


async def _admin(request: Request[Any, Any, Any]) -> Actor:
    actor = await current_actor(request)
    if not may(actor, Action.MANAGE_SETTINGS):
        raise Forbidden("only admins create and send campaigns")
    return actor


@post("/inbox/admin/campaign-drafts", include_in_schema=False, status_code=303)
async def create_draft(request: Request[Any, Any, Any], data: Form) -> Response[Any]:
    """A draft to a topic's subscribers, narrowed by the segment fields; scheduled if a time is given."""
    actor = await _admin(request)
    form = {k: str(v)[:4000] for k, v in data.items()}
    flt = _filter_from({k: v for k, v in form.items() if k != "topic"})
    try:
        async with _runtime(request).sessions() as session, session.begin():
            row = await campaigns.create_campaign(
                session,
                actor.user.workspace_id,
                name=form.get("name", ""),
                topic=form.get("topic", ""),
                content={"text": form.get("text", "")},
                filter=flt,
                quiet_hours=form.get("quiet_hours", "").strip() or None,
                frequency_cap=_runtime(request).settings.broadcast_weekly_cap,
                created_by=actor.user.id,
            )
            at = form.get("at", "").strip()
            if at:
                await campaigns.schedule(
                    session, row, campaigns.parse_local_time(at, row.time_zone)
                )
            await record_by(session, actor, "campaign.created", "campaign", row.id)
    except campaigns.CampaignError as exc:
        return await campaigns_view(
            request, actor, error=i18n.error_text(exc), posted=form, status_code=422
        )
    return Redirect(f"/inbox/admin/campaigns/{row.id}", status_code=303)


async def _remember_test_address(
    session: AsyncSession, actor: Actor, channel_id: str, address: str
) -> None:
    """Keep my own test address per channel kind, so the next test form is filled in."""
    channel = await session.get(ChannelRow, channel_id)
    user = await session.get(User, actor.user.id)
    if channel is None or user is None:
        return
    user.test_addresses = {**(user.test_addresses or {}), channel.kind: address.strip()}


@post("/inbox/admin/campaign-tests/{campaign_id:str}", include_in_schema=False, status_code=303)
async def test_send(
    request: Request[Any, Any, Any], campaign_id: FromPath[str], data: Form
) -> Redirect:
    """Send the campaign once to my own address on a channel (it must have written before)."""
    actor = await _admin(request)
    target = f"/inbox/admin/campaigns/{campaign_id[:40]}"
    if data.get("return_to") == "wizard":
        target = f"{BASE}/{campaign_id[:40]}/send"
    async with _runtime(request).sessions() as session, session.begin():
        row = await session.get(Campaign, campaign_id[:40])
        if row is None or row.workspace_id != actor.user.workspace_id:
            raise NotFound("no such campaign")
        channel_id, address = str(data.get("channel", ""))[:40], str(data.get("address", ""))[:320]
        try:
            await campaigns.test_send(session, row, channel_id, address)
        except campaigns.CampaignError as exc:
            return Redirect(f"{target}?error={exc.code}", status_code=303)
        await _remember_test_address(session, actor, channel_id, address)
    _runtime(request).jobs_ready.set()
    return Redirect(f"{target}?tested=1", status_code=303)


campaign_drafts_router = Router(
    path="/", route_handlers=[create_draft, test_send, *WIZARD, *SCHEDULE]
)
