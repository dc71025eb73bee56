"""What a live inbox page missed while it was disconnected, from the domain events."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tresen.db.tables import Conversation, DomainEventRow

MARGIN = timedelta(seconds=2)
"""Events are stamped at commit; a page's last stamp may be a little later than a commit it
had not seen yet."""
MOST = 200
"""More changed conversations than this: the page reloads instead."""


def stamp(now: datetime | None = None) -> str:
    """The id of a live message: milliseconds since the epoch."""
    return str(int((now or datetime.now(UTC)).timestamp() * 1000))


def parse_stamp(value: str | None) -> datetime | None:
    """The time a `Last-Event-ID` names; None when absent or not one of ours."""
    if not value or not value.isdigit() or len(value) > 15:
        return None
    return datetime.fromtimestamp(int(value) / 1000, UTC)


async def changed_since(
    session: AsyncSession, workspace_id: str, since: datetime
) -> list[str] | None:
    """Conversations of the workspace with events since `since`, oldest change first;
    None when there are too many to replay (reload instead)."""
    rows = await session.execute(
        select(DomainEventRow.lane)
        .join(Conversation, Conversation.id == DomainEventRow.lane)
        .where(
            DomainEventRow.workspace_id == workspace_id,
            DomainEventRow.occurred_at >= since - MARGIN,
        )
        .order_by(DomainEventRow.seq)
        .limit(MOST * 20)
    )
    ordered = list(dict.fromkeys(lane for (lane,) in rows))
    return None if len(ordered) > MOST else ordered
