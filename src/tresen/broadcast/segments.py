"""Segments: who a broadcast reaches, as a filter over contacts, and its live count."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, exists, func, not_, or_, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from tresen.broadcast.topics import CONFIRMED
from tresen.channels.registry import channel_factory
from tresen.db.tables import (
    CampaignRecipient,
    ChannelRow,
    Contact,
    ContactIdentity,
    Conversation,
    ConversationLabel,
    Label,
    Segment,
    Subscription,
    Topic,
)
from tresen.db.types import utcnow
from tresen.domain.errors import DomainError
from tresen.domain.ids import new_id

ATTRIBUTE_KEY = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
LANGUAGE = re.compile(r"^[a-z]{2,3}$")
BLOCKED_CONSENT = ("refused", "restricted")
MAX_DAYS = 3650


class SegmentError(DomainError):
    """A filter or segment that cannot be used, naming the field."""


@dataclass(frozen=True)
class Filter:
    """A checked segment filter; every part is optional and all parts must hold."""

    topic_id: str | None = None
    channel_ids: tuple[str, ...] = ()
    language: str | None = None
    labels: tuple[str, ...] = ()
    attributes: dict[str, str] = field(default_factory=dict)
    active_within_days: int | None = None
    inactive_for_days: int | None = None

    def to_json(self) -> dict[str, Any]:
        """The stored form (only the parts that are set)."""
        out: dict[str, Any] = {}
        if self.topic_id:
            out["topic"] = self.topic_id
        if self.channel_ids:
            out["channels"] = list(self.channel_ids)
        if self.language:
            out["language"] = self.language
        if self.labels:
            out["labels"] = list(self.labels)
        if self.attributes:
            out["attributes"] = dict(self.attributes)
        if self.active_within_days is not None:
            out["active_within_days"] = self.active_within_days
        if self.inactive_for_days is not None:
            out["inactive_for_days"] = self.inactive_for_days
        return out


def _days(raw: Any, name: str) -> int | None:
    if raw in (None, ""):
        return None
    try:
        days = int(raw)
    except (TypeError, ValueError):
        raise SegmentError(
            name, "{field} must be a whole number of days", params={"field": name}
        ) from None
    if not 1 <= days <= MAX_DAYS:
        raise SegmentError(
            name, "{field} must be between 1 and {max}", params={"field": name, "max": MAX_DAYS}
        )
    return days


def _strings(raw: Any, name: str) -> tuple[str, ...]:
    if raw in (None, ""):
        return ()
    if isinstance(raw, str):
        raw = [part for part in raw.split(",")]
    if not isinstance(raw, list) or not all(isinstance(v, str) for v in raw):
        raise SegmentError(name, "{field} must be a list of strings", params={"field": name})
    cleaned = tuple(dict.fromkeys(v.strip() for v in raw if v.strip()))
    if any(len(v) > 200 for v in cleaned):
        raise SegmentError(
            name, "each of {field} has at most 200 characters", params={"field": name}
        )
    return cleaned


def parse_filter(raw: dict[str, Any] | None) -> Filter:
    """A Filter from its JSON form, or a SegmentError naming what is wrong."""
    raw = dict(raw or {})
    unknown = set(raw) - {
        "topic",
        "channels",
        "language",
        "labels",
        "attributes",
        "active_within_days",
        "inactive_for_days",
    }
    if unknown:
        raise SegmentError(
            "unknown_field",
            "unknown filter fields: {fields}",
            params={"fields": ", ".join(sorted(unknown))},
        )
    topic = raw.get("topic") or None
    if topic is not None and (not isinstance(topic, str) or len(topic) > 64):
        raise SegmentError("topic", "topic must be a topic id or keyword")
    language = raw.get("language") or None
    if language is not None and (not isinstance(language, str) or not LANGUAGE.match(language)):
        raise SegmentError("language", "language must be a code such as de or en")
    attributes = raw.get("attributes") or {}
    if not isinstance(attributes, dict):
        raise SegmentError("attributes", "attributes must map names to values")
    for key, value in attributes.items():
        if not ATTRIBUTE_KEY.match(str(key)) or not isinstance(value, str | int | float | bool):
            raise SegmentError(
                "attributes",
                "attribute filter {key!r} needs a plain value",
                params={"key": str(key)},
            )
    return Filter(
        topic_id=topic,
        channel_ids=_strings(raw.get("channels"), "channels"),
        language=language,
        labels=_strings(raw.get("labels"), "labels"),
        attributes={str(k): str(v) for k, v in attributes.items()},
        active_within_days=_days(raw.get("active_within_days"), "active_within_days"),
        inactive_for_days=_days(raw.get("inactive_for_days"), "inactive_for_days"),
    )


async def resolve(session: AsyncSession, workspace_id: str, flt: Filter) -> Filter:
    """The filter with the topic keyword and channel kinds/names turned into ids (checked)."""
    topic_id = flt.topic_id
    if topic_id is not None:
        found = await session.scalar(
            select(Topic.id).where(
                Topic.workspace_id == workspace_id,
                (Topic.id == topic_id) | (Topic.keyword == topic_id.lower()),
            )
        )
        if found is None:
            raise SegmentError(
                "topic", "no topic {topic!r} in this workspace", params={"topic": topic_id}
            )
        topic_id = found
    channel_ids: list[str] = []
    for ref in flt.channel_ids:
        ids = list(
            await session.scalars(
                select(ChannelRow.id).where(
                    ChannelRow.workspace_id == workspace_id,
                    (ChannelRow.id == ref) | (ChannelRow.kind == ref) | (ChannelRow.name == ref),
                )
            )
        )
        if not ids:
            raise SegmentError(
                "channels", "no channel {channel!r} in this workspace", params={"channel": ref}
            )
        channel_ids.extend(i for i in ids if i not in channel_ids)
    return Filter(
        topic_id=topic_id,
        channel_ids=tuple(channel_ids),
        language=flt.language,
        labels=flt.labels,
        attributes=flt.attributes,
        active_within_days=flt.active_within_days,
        inactive_for_days=flt.inactive_for_days,
    )


def conditions(
    workspace_id: str,
    flt: Filter,
    *,
    subscription: Any = None,
    now: datetime | None = None,
) -> list[ColumnElement[bool]]:
    """SQL conditions on `contacts` (which the query must select from) and, when given, the
    joined topic subscription row."""
    now = now or utcnow()
    contact_id = Contact.id
    out: list[ColumnElement[bool]] = []
    for key, value in flt.attributes.items():
        out.append(Contact.attributes[key].as_string() == value)
    if flt.language:
        if subscription is not None:
            out.append(subscription.language == flt.language)
        else:
            out.append(Contact.attributes["language"].as_string() == flt.language)
    if flt.channel_ids and subscription is None:
        out.append(
            exists().where(
                ContactIdentity.contact_id == contact_id,
                ContactIdentity.channel_id.in_(flt.channel_ids),
            )
        )
    elif flt.channel_ids:
        out.append(subscription.channel_id.in_(flt.channel_ids))
    if flt.labels:
        out.append(
            exists().where(
                Conversation.contact_id == contact_id,
                ConversationLabel.conversation_id == Conversation.id,
                Label.id == ConversationLabel.label_id,
                Label.workspace_id == workspace_id,
                Label.name.in_(flt.labels),
            )
        )
    if flt.active_within_days is not None:
        cutoff = now - timedelta(days=flt.active_within_days)
        out.append(
            exists().where(
                Conversation.contact_id == contact_id, Conversation.last_inbound_at >= cutoff
            )
        )
    if flt.inactive_for_days is not None:
        cutoff = now - timedelta(days=flt.inactive_for_days)
        out.append(
            not_(
                exists().where(
                    Conversation.contact_id == contact_id, Conversation.last_inbound_at >= cutoff
                )
            )
        )
    return out


def matching_contacts(workspace_id: str, flt: Filter, now: datetime | None = None) -> Any:
    """A SELECT of the ids of the (not merged, not refused) contacts the filter matches."""
    stmt = select(Contact.id).where(
        Contact.workspace_id == workspace_id,
        Contact.merged_into_id.is_(None),
        Contact.consent_state.not_in(BLOCKED_CONSENT),
    )
    if flt.topic_id is not None:
        stmt = stmt.join(
            Subscription,
            and_(
                Subscription.contact_id == Contact.id,
                Subscription.topic_id == flt.topic_id,
                Subscription.state == CONFIRMED,
            ),
        )
        parts = conditions(workspace_id, flt, subscription=Subscription, now=now)
    else:
        parts = conditions(workspace_id, flt, now=now)
    return stmt.where(and_(true(), *parts))


async def count(
    session: AsyncSession,
    workspace_id: str,
    raw: dict[str, Any] | Filter,
    now: datetime | None = None,
) -> int:
    """How many contacts the filter matches right now."""
    flt = raw if isinstance(raw, Filter) else parse_filter(raw)
    flt = await resolve(session, workspace_id, flt)
    inner = matching_contacts(workspace_id, flt, now).subquery()
    return int(await session.scalar(select(func.count()).select_from(inner)) or 0)


async def save_segment(
    session: AsyncSession, workspace_id: str, name: str, raw: dict[str, Any]
) -> Segment:
    """Create or replace a named segment (its filter checked)."""
    name = name.strip()
    if not name or len(name) > 200:
        raise SegmentError("name", "a segment needs a name of 1 to 200 characters")
    flt = await resolve(session, workspace_id, parse_filter(raw))
    row = await session.scalar(
        select(Segment).where(Segment.workspace_id == workspace_id, Segment.name == name)
    )
    now = utcnow()
    if row is None:
        row = Segment(id=new_id(), workspace_id=workspace_id, name=name, created_at=now)
        session.add(row)
    row.filter = flt.to_json()
    row.updated_at = now
    await session.flush()
    return row


async def find_segment(session: AsyncSession, workspace_id: str, ref: str) -> Segment | None:
    """A segment by id or name."""
    return await session.scalar(
        select(Segment).where(
            Segment.workspace_id == workspace_id, or_(Segment.id == ref, Segment.name == ref)
        )
    )


@dataclass(frozen=True)
class Reach:
    """Who a topic's broadcast with a filter reaches, and who is left out and why."""

    matched: int
    subscribed: int
    pending: int
    blocked: int
    unreachable: int
    per_kind: dict[str, int]
    window_closed: dict[str, int]
    capped: int = 0
    """Matching, but already got the weekly number of broadcasts."""

    @property
    def filtered(self) -> int:
        """Confirmed, allowed and reachable, but not matching the other filter parts."""
        return max(
            self.subscribed - self.blocked - self.unreachable - self.matched - self.capped, 0
        )


CAP_DAYS = 7
"""The frequency cap counts the broadcasts of this many days."""


def capped_contacts(cap: int, now: datetime, other_than: str | None = None) -> Any:
    """Contacts that got `cap` broadcasts (of campaigns other than `other_than`) in 7 days."""
    r = CampaignRecipient
    return (
        select(r.contact_id)
        .where(
            r.state == "sent",
            r.sent_at >= now - timedelta(days=CAP_DAYS),
            r.campaign_id != (other_than or ""),
        )
        .group_by(r.contact_id)
        .having(func.count() >= cap)
    )


async def reach(
    session: AsyncSession,
    workspace_id: str,
    raw: dict[str, Any] | Filter,
    now: datetime | None = None,
    *,
    frequency_cap: int = 0,
    campaign_id: str | None = None,
) -> Reach:
    """The recipients of a filter with a topic, per channel kind, and the ones left out
    (those the weekly `frequency_cap` holds back among them)."""
    flt = raw if isinstance(raw, Filter) else parse_filter(raw)
    flt = await resolve(session, workspace_id, flt)
    if flt.topic_id is None:
        raise SegmentError("topic", "choose a topic: broadcasts go to a topic's subscribers")
    now = now or utcnow()
    sub = Subscription
    base = (
        select(func.count())
        .select_from(sub)
        .join(Contact, Contact.id == sub.contact_id)
        .where(
            sub.topic_id == flt.topic_id,
            Contact.workspace_id == workspace_id,
            Contact.merged_into_id.is_(None),
        )
    )
    confirmed = base.where(sub.state == CONFIRMED)
    subscribed = int(await session.scalar(confirmed) or 0)
    pending = int(await session.scalar(base.where(sub.state == "pending")) or 0)
    blocked = int(
        await session.scalar(confirmed.where(Contact.consent_state.in_(BLOCKED_CONSENT))) or 0
    )
    allowed = confirmed.where(Contact.consent_state.not_in(BLOCKED_CONSENT))
    reachable = exists().where(
        ContactIdentity.contact_id == sub.contact_id,
        ContactIdentity.channel_id == sub.channel_id,
        ContactIdentity.unreachable.is_(False),
    )
    unreachable = int(await session.scalar(allowed.where(not_(reachable))) or 0)
    parts = conditions(workspace_id, flt, subscription=sub, now=now)
    chosen = (
        select(ChannelRow.kind, func.count())
        .select_from(sub)
        .join(Contact, Contact.id == sub.contact_id)
        .join(ChannelRow, ChannelRow.id == sub.channel_id)
        .where(
            sub.topic_id == flt.topic_id,
            sub.state == CONFIRMED,
            Contact.workspace_id == workspace_id,
            Contact.merged_into_id.is_(None),
            Contact.consent_state.not_in(BLOCKED_CONSENT),
            reachable,
            *parts,
        )
        .group_by(ChannelRow.kind)
    )
    capped = 0
    if frequency_cap > 0:
        held = sub.contact_id.in_(capped_contacts(frequency_cap, now, campaign_id))
        capped = int(
            await session.scalar(
                select(func.count()).select_from(
                    chosen.with_only_columns(sub.contact_id).group_by(None).where(held).subquery()
                )
            )
            or 0
        )
        chosen = chosen.where(not_(held))
    counted = [(str(kind), int(n)) for kind, n in (await session.execute(chosen)).all()]
    per_kind = dict(sorted(counted, key=lambda kn: (-kn[1], kn[0])))  # the largest first
    closed: dict[str, int] = {}
    for kind in per_kind:
        window = channel_factory(kind).capabilities.window
        if window is None:
            continue
        is_open = exists().where(
            Conversation.contact_id == sub.contact_id,
            Conversation.channel_id == sub.channel_id,
            Conversation.last_inbound_at > now - window,
        )
        n = await session.scalar(
            select(func.count()).select_from(
                chosen.with_only_columns(sub.contact_id)
                .group_by(None)
                .where(ChannelRow.kind == kind, not_(is_open))
                .subquery()
            )
        )
        closed[kind] = int(n or 0)
    return Reach(
        matched=sum(per_kind.values()),
        subscribed=subscribed,
        pending=pending,
        blocked=blocked,
        unreachable=unreachable,
        per_kind=per_kind,
        window_closed=closed,
        capped=capped,
    )
