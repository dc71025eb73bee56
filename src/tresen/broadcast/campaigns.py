"""Campaigns: what goes to a topic's subscribers, when, and how fast; pause, resume, cancel."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from tresen.broadcast import segments
from tresen.broadcast.audience import audience_query
from tresen.broadcast.links import rewrite_links
from tresen.channels.registry import channel_factory
from tresen.db import outbox
from tresen.db.tables import (
    Campaign,
    CampaignRecipient,
    ChannelRow,
    Contact,
    ContactIdentity,
    Conversation,
    MessageTemplate,
    Subscription,
    Topic,
    Workspace,
)
from tresen.db.types import utcnow
from tresen.domain.conversation import window_open
from tresen.domain.errors import DomainError
from tresen.domain.events import CampaignStateChanged
from tresen.domain.ids import new_id
from tresen.domain.message import ContentKind, SenderKind
from tresen.pipeline.outbound import (
    OutboundContent,
    OutboundRefused,
    queue_message,
    validate_content,
)
from tresen.pipeline.templates import content as template_content
from tresen.pipeline.templates import variables
from tresen.privacy import audit

DRAFT, SCHEDULED, STARTING, RUNNING, PAUSED, DONE, CANCELLED = (
    "draft",
    "scheduled",
    "starting",
    "running",
    "paused",
    "done",
    "cancelled",
)
FINAL = (DONE, CANCELLED)
QUIET = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-3]):([0-5]\d)$")
VARIABLE = re.compile(r"\{([a-z_][a-z0-9_]{0,63})\}")
DEFAULT_QUIET_HOURS = "21:00-08:00"


class CampaignError(DomainError):
    """A campaign request that cannot be done, with a stable code."""


@dataclass(frozen=True)
class ChannelContent:
    """What one channel sends: free content inside the window, a template outside it."""

    kind: ContentKind
    body: str
    payload: dict[str, Any]
    template: dict[str, Any] | None  # {"name", "language", "parameters"}; WhatsApp only


def content_for(content: dict[str, Any], channel_kind: str) -> ChannelContent:
    """The campaign content as one channel sends it (its per-channel part overrides the rest)."""
    merged = {k: v for k, v in content.items() if k != "channels"}
    merged.update((content.get("channels") or {}).get(channel_kind) or {})
    text = str(merged.get("text") or "")
    media = merged.get("media")
    buttons = merged.get("buttons")
    if isinstance(media, dict) and media.get("link"):
        kind = ContentKind.MEDIA
        payload: dict[str, Any] = {
            "link": media["link"],
            "media_type": media.get("media_type", "image"),
        }
    elif buttons:
        kind = ContentKind.INTERACTIVE
        payload = {"buttons": buttons}
    else:
        kind = ContentKind.TEXT
        payload = {}
    if channel_kind == "email" and isinstance(merged.get("subject"), str) and merged["subject"]:
        payload["subject"] = merged["subject"]  # a broadcast mail opens a thread: no "Re:"
    template = merged.get("template")
    return ChannelContent(kind, text, payload, template if isinstance(template, dict) else None)


def contact_variables(
    display_name: str | None, attributes: dict[str, Any] | None
) -> dict[str, str]:
    """The personal variables of one contact: {first_name}, {last_name}, {name} and attributes."""
    attrs = {
        str(k): str(v) for k, v in (attributes or {}).items() if isinstance(v, str | int | float)
    }
    name = (display_name or "").strip()
    parts = name.split()
    values = {k.lower(): v for k, v in attrs.items() if VARIABLE.fullmatch("{" + k.lower() + "}")}
    values.setdefault("first_name", parts[0] if parts else "")
    values.setdefault("last_name", " ".join(parts[1:]) if len(parts) > 1 else "")
    values.setdefault("name", name)
    return values


def fill_variables(text: str, values: dict[str, str]) -> str:
    """The text with {variables} filled in; unknown ones become empty."""
    return VARIABLE.sub(lambda m: values.get(m.group(1), ""), text)


def personal_payload(payload: dict[str, Any], values: dict[str, str]) -> dict[str, Any]:
    """The payload one recipient gets: an e-mail subject takes the same {variables} as the text."""
    out = dict(payload)
    if isinstance(out.get("subject"), str):
        out["subject"] = fill_variables(out["subject"], values).strip() or out["subject"]
    return out


async def render_campaign_text(
    session: AsyncSession | None,
    text: str,
    values: dict[str, str],
    *,
    campaign_id: str | None,
    contact_id: str | None,
    per_person: bool = True,
    workspace_id: str | None = None,
) -> str:
    """The text one recipient gets: personal variables, then links rewritten to count clicks.

    A link is the person's own only when they consented to link tracking (`rewrite_links`
    checks); everyone else shares the campaign's anonymous link.
    """
    filled = fill_variables(text, values)
    if session is None:
        return filled
    return await rewrite_links(
        session,
        filled,
        campaign_id=campaign_id,
        contact_id=contact_id,
        per_person=per_person,
        workspace_id=workspace_id,
    )


def parse_quiet_hours(raw: str | None) -> tuple[time, time] | None:
    """("21:00", "08:00") from "21:00-08:00"; None for no quiet hours; CampaignError if malformed."""
    if raw is None or raw.strip() in ("", "none", "off"):
        return None
    match = QUIET.match(raw.strip())
    if match is None:
        raise CampaignError("quiet_hours", "quiet hours look like 21:00-08:00 (or none)")
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    if (h1, m1) == (h2, m2):
        raise CampaignError("quiet_hours", "quiet hours must start and end at different times")
    return time(h1, m1), time(h2, m2)


def zone(name: str) -> ZoneInfo:
    """A time zone by IANA name, or a CampaignError."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise CampaignError(
            "time_zone", f"unknown time zone {name!r} (e.g. Europe/Berlin)"
        ) from None


def quiet_until(now: datetime, time_zone: str, quiet_hours: str | None) -> datetime | None:
    """When the quiet hours around `now` end (UTC), or None when sending is allowed now."""
    window = parse_quiet_hours(quiet_hours)
    if window is None:
        return None
    start, end = window
    local = now.astimezone(zone(time_zone))
    t = local.time()
    inside = (start <= t < end) if start < end else (t >= start or t < end)
    if not inside:
        return None
    end_day = local.date() if t < end else local.date() + timedelta(days=1)
    ends = datetime.combine(end_day, end, tzinfo=local.tzinfo)
    return ends.astimezone(UTC)


async def _template_row(
    session: AsyncSession, channel_id: str, template: dict[str, Any]
) -> MessageTemplate | None:
    stmt = select(MessageTemplate).where(
        MessageTemplate.channel_id == channel_id, MessageTemplate.name == template.get("name")
    )
    if template.get("language"):
        stmt = stmt.where(MessageTemplate.language == template["language"])
    return (await session.scalars(stmt.limit(1))).first()


async def check_template(
    session: AsyncSession, channel: ChannelRow, template: dict[str, Any]
) -> MessageTemplate:
    """The approved template a campaign names, with the right number of parameters."""
    if not channel_factory(channel.kind).capabilities.templates:
        raise CampaignError("no_templates", f"{channel.kind} has no message templates")
    if not isinstance(template.get("name"), str) or not template["name"]:
        raise CampaignError("template", "a template needs a name")
    row = await _template_row(session, channel.id, template)
    if row is None:
        raise CampaignError(
            "template_unknown", f"{channel.name} has no template {template['name']!r}; sync first"
        )
    if row.status != "approved":
        raise CampaignError(
            "template_not_approved",
            f"template {row.name!r} ({row.language}) is {row.status}, not approved",
        )
    params = template.get("parameters") or []
    if not isinstance(params, list) or not all(isinstance(p, str) for p in params):
        raise CampaignError("template_parameters", "template parameters are a list of texts")
    if len(params) != variables(row.body):
        raise CampaignError(
            "template_parameters",
            f"{row.name!r} needs {variables(row.body)} parameters, got {len(params)}",
        )
    return row


async def check_content(
    session: AsyncSession, content: dict[str, Any], channels: list[ChannelRow]
) -> None:
    """Refuse content a channel cannot carry, or an unapproved template."""
    if not isinstance(content, dict):
        raise CampaignError("content", "content must be an object")
    for channel in channels:
        part = content_for(content, channel.kind)
        caps = channel_factory(channel.kind).capabilities
        if not part.body.strip() and part.kind != ContentKind.MEDIA and part.template is None:
            raise CampaignError("content", f"the {channel.kind} content needs a text")
        if part.body.strip() or part.kind == ContentKind.MEDIA:
            sample = fill_variables(part.body, {})
            try:
                validate_content(
                    OutboundContent(part.kind, sample, part.payload), caps, channel.kind
                )
            except OutboundRefused as refused:
                raise CampaignError(refused.code, f"{channel.name}: {refused.message}") from None
        if part.template is not None:
            await check_template(session, channel, part.template)


async def _channels(
    session: AsyncSession, workspace_id: str, topic_id: str, refs: list[str]
) -> list[ChannelRow]:
    if refs:
        flt = await segments.resolve(
            session, workspace_id, segments.Filter(channel_ids=tuple(refs))
        )
        ids = list(flt.channel_ids)
    else:
        ids = list(
            await session.scalars(
                select(Subscription.channel_id).where(Subscription.topic_id == topic_id).distinct()
            )
        )
    rows = list(
        await session.scalars(
            select(ChannelRow).where(
                ChannelRow.id.in_(ids), ChannelRow.workspace_id == workspace_id
            )
        )
    )
    return sorted(rows, key=lambda r: ids.index(r.id))


async def create_campaign(
    session: AsyncSession,
    workspace_id: str,
    *,
    name: str,
    topic: str,
    content: dict[str, Any],
    channels: list[str] | None = None,
    segment: str | None = None,
    filter: dict[str, Any] | None = None,
    time_zone: str | None = None,
    quiet_hours: str | None = DEFAULT_QUIET_HOURS,
    frequency_cap: int = 0,
    created_by: str | None = None,
) -> Campaign:
    """A draft campaign to a topic's confirmed subscribers (optionally narrowed by a segment)."""
    name = name.strip()
    if not name or len(name) > 200:
        raise CampaignError("name", "a campaign needs a name of 1 to 200 characters")
    topic_row = await session.scalar(
        select(Topic).where(
            Topic.workspace_id == workspace_id,
            (Topic.id == topic) | (Topic.keyword == topic.strip().lower()),
        )
    )
    if topic_row is None:
        raise CampaignError("topic", f"no topic {topic!r}: campaigns go to a topic's subscribers")
    raw_filter = dict(filter or {})
    segment_id = None
    if segment:
        seg = await segments.find_segment(session, workspace_id, segment)
        if seg is None:
            raise CampaignError("segment", f"no segment {segment!r}")
        raw_filter = {**seg.filter, **raw_filter}
        segment_id = seg.id
    try:
        flt = await segments.resolve(session, workspace_id, segments.parse_filter(raw_filter))
    except segments.SegmentError as exc:
        raise CampaignError(exc.code, exc.message) from None
    if flt.topic_id is not None and flt.topic_id != topic_row.id:
        raise CampaignError("segment", "the segment is about another topic")
    rows = await _channels(session, workspace_id, topic_row.id, channels or [])
    if not rows:
        raise CampaignError("channels", "no channel to send on: nobody subscribed yet")
    await check_content(session, content, rows)
    if frequency_cap < 0 or frequency_cap > 1000:
        raise CampaignError("frequency_cap", "the frequency cap is 0 (none) to 1000 per 7 days")
    workspace = await session.get_one(Workspace, workspace_id)
    tz = time_zone or workspace.time_zone or "Europe/Berlin"
    zone(tz)
    parse_quiet_hours(quiet_hours)
    now = utcnow()
    campaign = Campaign(
        id=new_id(),
        workspace_id=workspace_id,
        name=name,
        state=DRAFT,
        topic_id=topic_row.id,
        channel_ids={"ids": [r.id for r in rows]},
        filter={**flt.to_json(), "topic": topic_row.id},
        segment_id=segment_id,
        content=content,
        time_zone=tz,
        quiet_hours=(quiet_hours or "").strip() or None,
        frequency_cap=frequency_cap,
        audience=0,
        created_by=created_by,
        created_at=now,
        updated_at=now,
    )
    session.add(campaign)
    await session.flush()
    outbox.record(session, CampaignStateChanged(workspace_id, campaign.id, DRAFT))
    return campaign


async def find_campaign(session: AsyncSession, workspace_id: str, ref: str) -> Campaign:
    """A campaign by id or (unique) name, or a CampaignError."""
    rows = list(
        await session.scalars(
            select(Campaign).where(
                Campaign.workspace_id == workspace_id, (Campaign.id == ref) | (Campaign.name == ref)
            )
        )
    )
    if not rows:
        raise CampaignError("not_found", f"no campaign {ref!r}", 404)
    if len(rows) > 1:
        raise CampaignError("ambiguous", f"several campaigns are called {ref!r}; use the id", 409)
    return rows[0]


async def _move(
    session: AsyncSession,
    campaign: Campaign,
    allowed: tuple[str, ...],
    to: str,
    verb: str,
    **values: Any,
) -> Campaign:
    if campaign.state not in allowed:
        raise CampaignError(
            "state", f"campaign {campaign.name!r} is {campaign.state}; cannot go to {to}", 409
        )
    moved = await session.execute(
        update(Campaign)
        .where(Campaign.id == campaign.id, Campaign.state == campaign.state)
        .values(state=to, updated_at=utcnow(), **values)
    )
    if not moved.rowcount:  # type: ignore[attr-defined]
        raise CampaignError("state", "the campaign changed meanwhile; look again", 409)
    await audit.admin_action(
        session, campaign.workspace_id, f"campaign.{verb}", "campaign", campaign.id
    )
    outbox.record(session, CampaignStateChanged(campaign.workspace_id, campaign.id, to))
    await session.refresh(campaign)
    return campaign


def parse_local_time(value: str, time_zone: str) -> datetime:
    """A local date and time ("2026-05-01 09:00") in a time zone, as UTC."""
    try:
        naive = datetime.fromisoformat(value.strip().replace("T", " "))
    except ValueError:
        raise CampaignError("at", "give the time as YYYY-MM-DD HH:MM") from None
    if naive.tzinfo is not None:
        return naive.astimezone(UTC)
    return naive.replace(tzinfo=zone(time_zone)).astimezone(UTC)


async def schedule(
    session: AsyncSession, campaign: Campaign, at: datetime, *, now: datetime | None = None
) -> Campaign:
    """Send from `at` (UTC) on; the audience is fixed when sending starts."""
    if at <= (now or utcnow()) - timedelta(minutes=1):
        raise CampaignError("at", "the time lies in the past")
    return await _move(
        session, campaign, (DRAFT, SCHEDULED), SCHEDULED, "schedule", scheduled_at=at
    )


async def start(session: AsyncSession, campaign: Campaign) -> Campaign:
    """Start now: a worker fixes the audience and sends (within quiet hours it waits)."""
    return await _move(
        session, campaign, (DRAFT, SCHEDULED), STARTING, "start", scheduled_at=utcnow()
    )


async def pause(session: AsyncSession, campaign: Campaign) -> Campaign:
    """Stop claiming recipients; messages already on the wire finish."""
    return await _move(session, campaign, (SCHEDULED, STARTING, RUNNING), PAUSED, "pause")


async def resume(
    session: AsyncSession, campaign: Campaign, *, now: datetime | None = None
) -> Campaign:
    """Carry on where the campaign was paused (one whose time has not come waits for it)."""
    if campaign.expand_seconds is not None:  # its audience is fixed
        to = RUNNING
    elif campaign.scheduled_at is not None and campaign.scheduled_at > (now or utcnow()):
        to = SCHEDULED
    else:
        to = STARTING
    return await _move(session, campaign, (PAUSED,), to, "resume")


async def cancel(session: AsyncSession, campaign: Campaign) -> Campaign:
    """End the campaign; recipients not yet sent to are never sent to."""
    moved = await _move(
        session,
        campaign,
        (DRAFT, SCHEDULED, STARTING, RUNNING, PAUSED),
        CANCELLED,
        "cancel",
        finished_at=utcnow(),
    )
    await session.execute(
        update(CampaignRecipient)
        .where(CampaignRecipient.campaign_id == campaign.id, CampaignRecipient.state == "pending")
        .values(state="cancelled", done_at=utcnow())
    )
    return moved


async def progress(session: AsyncSession, campaign_id: str) -> dict[str, int]:
    """Recipient counts by state."""
    rows = await session.execute(
        select(CampaignRecipient.state, func.count())
        .where(CampaignRecipient.campaign_id == campaign_id)
        .group_by(CampaignRecipient.state)
    )
    return {state: int(n) for state, n in rows.all()}


async def audience_estimate(session: AsyncSession, campaign: Campaign) -> int:
    """How many the campaign would reach if it started now (the query that fixes the audience)."""
    chosen = audience_query(campaign, utcnow()).subquery()
    return int(await session.scalar(select(func.count()).select_from(chosen)) or 0)


async def test_send(
    session: AsyncSession, campaign: Campaign, channel_id: str, address: str
) -> str:
    """Send the campaign once to an address of the admin's own (it must have written before)."""
    row = (
        await session.execute(
            select(Conversation, ChannelRow, Contact)
            .join(ContactIdentity, ContactIdentity.id == Conversation.identity_id)
            .join(ChannelRow, ChannelRow.id == Conversation.channel_id)
            .join(Contact, Contact.id == Conversation.contact_id)
            .where(
                ChannelRow.workspace_id == campaign.workspace_id,
                (ChannelRow.id == channel_id)
                | (ChannelRow.kind == channel_id)
                | (ChannelRow.name == channel_id),
                ContactIdentity.address == address.strip(),
            )
        )
    ).first()
    if row is None:
        raise CampaignError(
            "test_address",
            "no conversation with this address on that channel; write to the business once first",
        )
    conversation, channel, contact = row
    values = contact_variables(contact.display_name, contact.attributes)
    part = content_for(campaign.content, channel.kind)
    caps = channel_factory(channel.kind).capabilities
    closed = not window_open(conversation.last_inbound_at, caps.window, utcnow())
    use_template = part.template is not None and (closed or not part.body.strip())
    if use_template:
        assert part.template is not None
        template = await check_template(session, channel, part.template)
        params = [fill_variables(p, values) for p in part.template.get("parameters") or []]

        outbound = template_content(template, params)
    else:
        # Links work, but the tester's clicks are not the campaign's: no campaign on them.
        body = await render_campaign_text(
            session,
            part.body,
            values,
            campaign_id=None,
            contact_id=None,
            workspace_id=campaign.workspace_id,
        )
        outbound = OutboundContent(
            part.kind, body, {**personal_payload(part.payload, values), "campaign": campaign.id}
        )
    try:
        message = await queue_message(
            session, conversation, channel, outbound, sender_kind=SenderKind.SYSTEM
        )
    except OutboundRefused as refused:
        raise CampaignError(refused.code, refused.message) from None
    return message.id
