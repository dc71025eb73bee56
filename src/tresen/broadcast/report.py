"""A campaign's report: the delivery funnel (also over time), failures, skips, opt-outs, clicks."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Integer, and_, cast, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from tresen.broadcast.links import clicks_per_link
from tresen.broadcast.topics import WITHDRAWN
from tresen.db.tables import Campaign, CampaignRecipient, Message, Subscription
from tresen.db.types import utcnow

SENT_STATES = ("sent", "delivered", "read")
DELIVERED_STATES = ("delivered", "read")
FAILED_STATES = ("failed", "dead")
MAX_POINTS = 48


@dataclass
class Report:
    """The figures of one campaign."""

    campaign_id: str
    name: str
    state: str
    audience: int
    pending: int
    sent: int
    delivered: int
    read: int
    failed: int
    skipped: int
    opted_out_after: int
    failures: list[tuple[str, str, int]] = field(default_factory=list)  # code, reason, count
    skips: list[tuple[str, int]] = field(default_factory=list)
    series: list[tuple[datetime, int, int, int]] = field(default_factory=list)  # cumulative
    clicks: list[dict[str, Any]] = field(default_factory=list)
    started_at: datetime | None = None
    finished_at: datetime | None = None

    def to_json(self) -> dict[str, Any]:
        """The report as JSON-ready data."""
        return {
            "campaign": self.campaign_id,
            "name": self.name,
            "state": self.state,
            "audience": self.audience,
            "pending": self.pending,
            "sent": self.sent,
            "delivered": self.delivered,
            "read": self.read,
            "failed": self.failed,
            "skipped": self.skipped,
            "opted_out_after": self.opted_out_after,
            "failures": [{"code": c, "reason": r, "count": n} for c, r, n in self.failures],
            "skips": [{"reason": r, "count": n} for r, n in self.skips],
            "series": [
                {"at": at.isoformat(), "sent": s, "delivered": d, "read": r}
                for at, s, d, r in self.series
            ],
            "clicks": self.clicks,
        }

    def chart(self, width: int = 640, height: int = 200) -> dict[str, str]:
        """SVG polyline points of the cumulative sent / delivered / read curves."""
        if not self.series:
            return {"sent": "", "delivered": "", "read": ""}
        top = max(1, self.audience, max(s for _, s, _, _ in self.series))
        n = len(self.series)

        def points(index: int) -> str:
            out = []
            for i, row in enumerate(self.series):
                x = 0 if n == 1 else i * width / (n - 1)
                y = height - float(row[index]) * height / top  # type: ignore[arg-type]
                out.append(f"{x:.1f},{y:.1f}")
            return " ".join(out)

        return {"sent": points(1), "delivered": points(2), "read": points(3)}


async def clicks_for(session: AsyncSession, campaign_id: str) -> list[dict[str, Any]]:
    """Clicks per link of a campaign (rows: link, clicks, people)."""
    return [
        {"link": row.url, "clicks": row.clicks, "people": row.unique_persons}
        for row in await clicks_per_link(session, campaign_id)
    ]


def _bucket(column: Any, dialect: str, size: int) -> ColumnElement[Any]:
    """The start (unix seconds) of the `size`-second bucket a timestamp falls in."""
    epoch: ColumnElement[Any]
    if dialect == "postgresql":
        epoch = func.extract("epoch", column)
    else:
        epoch = cast(func.strftime("%s", column), Integer)
    return func.floor(epoch / size) * size


async def _series(
    session: AsyncSession, campaign: Campaign, now: datetime
) -> list[tuple[datetime, int, int, int]]:
    if campaign.started_at is None:
        return []
    end = campaign.finished_at or now
    span = max(60.0, (end - campaign.started_at).total_seconds())
    size = max(1, math.ceil(span / MAX_POINTS))
    dialect = session.get_bind().dialect.name
    joined = (
        select()
        .select_from(CampaignRecipient)
        .join(Message, Message.id == CampaignRecipient.message_id)
        .where(CampaignRecipient.campaign_id == campaign.id)
    )
    counts: dict[int, list[int]] = {}
    # A read whose delivered status came late (or never) was delivered all the same.
    delivered = func.coalesce(Message.delivered_at, Message.read_at)
    for slot, column in enumerate((Message.sent_at, delivered, Message.read_at)):
        bucket = _bucket(column, dialect, size)
        rows = await session.execute(
            joined.add_columns(bucket, func.count()).where(column.is_not(None)).group_by(bucket)
        )
        for at, n in rows.all():
            counts.setdefault(int(at), [0, 0, 0])[slot] += int(n)
    start = int(campaign.started_at.timestamp()) // size * size
    last = int(end.timestamp()) // size * size
    out: list[tuple[datetime, int, int, int]] = []
    running = [0, 0, 0]
    for at in range(start, last + size, size):
        step = counts.pop(at, [0, 0, 0])
        running = [a + b for a, b in zip(running, step, strict=True)]
        out.append((campaign.started_at + timedelta(seconds=at - start), *running))  # type: ignore[arg-type]
    if counts:  # times outside the window (clock skew): count them at the end
        late = [sum(v[i] for v in counts.values()) for i in range(3)]
        running = [a + b for a, b in zip(running, late, strict=True)]
        out.append((end, *running))  # type: ignore[arg-type]
    return out


async def build(session: AsyncSession, campaign: Campaign, now: datetime | None = None) -> Report:
    """Count everything for the report page and `tresen broadcast report`."""
    r = CampaignRecipient
    by_state = dict(
        (
            await session.execute(
                select(r.state, func.count()).where(r.campaign_id == campaign.id).group_by(r.state)
            )
        ).all()
    )
    message_states = dict(
        (
            await session.execute(
                select(Message.state, func.count())
                .join(r, r.message_id == Message.id)
                .where(r.campaign_id == campaign.id)
                .group_by(Message.state)
            )
        ).all()
    )
    failures = [
        (str(code or "?"), str(reason or ""), int(n))
        for code, reason, n in (
            await session.execute(
                select(Message.error_code, func.min(Message.error_reason), func.count())
                .join(r, r.message_id == Message.id)
                .where(r.campaign_id == campaign.id, Message.state.in_(FAILED_STATES))
                .group_by(Message.error_code)
                .order_by(func.count().desc())
            )
        ).all()
    ]
    skips = [
        (str(code or "?"), int(n))
        for code, n in (
            await session.execute(
                select(r.error_code, func.count())
                .where(r.campaign_id == campaign.id, r.state == "skipped")
                .group_by(r.error_code)
                .order_by(func.count().desc())
            )
        ).all()
    ]
    opted_out_after = int(
        await session.scalar(
            select(func.count())
            .select_from(r)
            .join(
                Subscription,
                and_(
                    Subscription.contact_id == r.contact_id,
                    Subscription.topic_id == campaign.topic_id,
                ),
            )
            .where(
                r.campaign_id == campaign.id,
                r.state == "sent",
                Subscription.state == WITHDRAWN,
                Subscription.withdrawn_at >= r.sent_at,
            )
        )
        or 0
    )
    total = sum(int(v) for v in by_state.values())
    return Report(
        campaign_id=campaign.id,
        name=campaign.name,
        state=campaign.state,
        audience=campaign.audience or total,
        pending=int(by_state.get("pending", 0)) + int(by_state.get("sending", 0)),
        sent=sum(int(message_states.get(s, 0)) for s in SENT_STATES),
        delivered=sum(int(message_states.get(s, 0)) for s in DELIVERED_STATES),
        read=int(message_states.get("read", 0)),
        failed=sum(int(message_states.get(s, 0)) for s in FAILED_STATES),
        skipped=int(by_state.get("skipped", 0)),
        opted_out_after=opted_out_after,
        failures=failures,
        skips=skips,
        series=await _series(session, campaign, now or utcnow()),
        clicks=await clicks_for(session, campaign.id),
        started_at=campaign.started_at,
        finished_at=campaign.finished_at,
    )
