"""The learning loop: what the bot answered, did not understand or handed over, per day."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from tresen.bot.text import clean, normalize
from tresen.db.tables import BotTurn, Message
from tresen.db.types import utcnow

UNANSWERED_SCAN = 2000


@dataclass(frozen=True)
class Day:
    """One day's bot turns by outcome; `fallback` counts every "don't know", also the one that
    ended in a hand-over (the second miss in a row)."""

    day: date
    answered: int
    fallback: int
    handover: int
    total: int

    @property
    def containment(self) -> float:
        """Share of turns the bot answered itself (FAQ or flow)."""
        return self.answered / self.total if self.total else 0.0

    @property
    def fallback_rate(self) -> float:
        """Share of turns the bot did not understand."""
        return self.fallback / self.total if self.total else 0.0


@dataclass(frozen=True)
class Unanswered:
    """A question the bot did not understand, how often it came, and the latest turn's id."""

    text: str
    count: int
    turn_id: int
    last_at: datetime


ANSWERED = ("answered", "flow", "blacklisted", "greeting", "product", "order")
NOT_UNDERSTOOD = "not_understood"  # engine.Reason.NOT_UNDERSTOOD: a hand-over after misses


async def per_day(
    session: AsyncSession, workspace_id: str, days: int = 14, now: datetime | None = None
) -> list[Day]:
    """Counts per UTC day, newest first (days without turns are left out)."""
    since = (now or utcnow()) - timedelta(days=days)
    rows = await session.execute(
        select(BotTurn.occurred_at, BotTurn.outcome, BotTurn.reason).where(
            BotTurn.workspace_id == workspace_id, BotTurn.occurred_at >= since
        )
    )
    counts: dict[date, Counter[str]] = defaultdict(Counter)
    for at, outcome, reason in rows.all():
        kind = "answered" if outcome in ANSWERED else outcome
        counts[at.date()][kind] += 1
        counts[at.date()]["total"] += 1
        if outcome == "handover" and reason == NOT_UNDERSTOOD:
            counts[at.date()]["fallback"] += 1
    return [
        Day(d, c["answered"], c["fallback"], c["handover"], c["total"])
        for d, c in sorted(counts.items(), reverse=True)
    ]


async def unanswered(session: AsyncSession, workspace_id: str, limit: int = 10) -> list[Unanswered]:
    """The most frequent messages the bot did not understand (recent turns, same text grouped)."""
    rows = await session.execute(
        select(BotTurn.id, BotTurn.occurred_at, Message.body)
        .join(Message, Message.id == BotTurn.message_id)
        .where(
            BotTurn.workspace_id == workspace_id,
            or_(BotTurn.outcome == "fallback", BotTurn.reason == NOT_UNDERSTOOD),
        )
        .order_by(BotTurn.id.desc())
        .limit(UNANSWERED_SCAN)
    )
    groups: dict[str, list[tuple[int, datetime, str]]] = defaultdict(list)
    for turn_id, at, body in rows.all():
        text = clean(body or "")[:300]
        key = normalize(text).strip(" ?!.")
        if key:
            groups[key].append((turn_id, at, text))
    ranked = sorted(groups.values(), key=lambda g: (-len(g), -g[0][0]))
    return [Unanswered(g[0][2], len(g), g[0][0], g[0][1]) for g in ranked[:limit]]


async def turn_text(session: AsyncSession, workspace_id: str, turn_id: int) -> str:
    """The customer's text of one turn (to teach it as a phrasing); LookupError when none."""
    body = await session.scalar(
        select(Message.body)
        .join(BotTurn, BotTurn.message_id == Message.id)
        .where(BotTurn.id == turn_id, BotTurn.workspace_id == workspace_id)
    )
    if not body or not clean(body).strip():
        raise LookupError(turn_id)
    return clean(body)
