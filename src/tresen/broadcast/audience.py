"""Who a campaign reaches: the audience query that fixes its recipients, and the frequency cap."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import and_, false, literal, select

from tresen.broadcast import segments
from tresen.broadcast.topics import CONFIRMED
from tresen.db.tables import Campaign, CampaignRecipient, Contact, ContactIdentity, Subscription

PENDING, SENDING, SENT, SKIPPED, FAILED, CANCELLED = (
    "pending",
    "sending",
    "sent",
    "skipped",
    "failed",
    "cancelled",
)
"""The states of one campaign recipient."""
CAP_DAYS = segments.CAP_DAYS


def audience_query(
    campaign: Campaign, now: datetime, after: str | None = None, through: str | None = None
) -> Any:
    """The recipient rows the campaign gets (optionally only contact ids in (after, through])."""
    flt = segments.parse_filter(campaign.filter)
    channel_ids = list((campaign.channel_ids or {}).get("ids") or [])
    sub, contact, ident = Subscription, Contact, ContactIdentity
    in_range = []
    if after is not None:
        in_range.append(sub.contact_id > after)
    if through is not None:
        in_range.append(sub.contact_id <= through)
    chosen = (
        select(
            literal(campaign.id),
            sub.contact_id,
            sub.channel_id,
            ident.id,
            literal(PENDING),
            literal(0),
        )
        .select_from(sub)
        .join(contact, contact.id == sub.contact_id)
        .join(ident, and_(ident.contact_id == sub.contact_id, ident.channel_id == sub.channel_id))
        .where(
            sub.topic_id == campaign.topic_id,
            *in_range,
            sub.state == CONFIRMED,
            sub.channel_id.in_(channel_ids),
            contact.workspace_id == campaign.workspace_id,
            contact.merged_into_id.is_(None),
            contact.consent_state.not_in(segments.BLOCKED_CONSENT),
            ident.unreachable.is_(false()),
            *segments.conditions(
                campaign.workspace_id,
                segments.Filter(
                    language=flt.language,
                    labels=flt.labels,
                    attributes=flt.attributes,
                    active_within_days=flt.active_within_days,
                    inactive_for_days=flt.inactive_for_days,
                ),
                subscription=sub,
                now=now,
            ),
        )
    )
    if campaign.frequency_cap > 0:
        capped = capped_contacts(campaign, now)
        if after is not None:
            capped = capped.where(CampaignRecipient.contact_id > after)
        if through is not None:
            capped = capped.where(CampaignRecipient.contact_id <= through)
        chosen = chosen.where(sub.contact_id.not_in(capped))
    return chosen


def capped_contacts(campaign: Campaign, now: datetime) -> Any:
    """Contacts that got `frequency_cap` broadcasts (of other campaigns) in the last 7 days."""
    return segments.capped_contacts(campaign.frequency_cap, now, campaign.id)
