"""The transactional outbox: a domain event is written in the transaction of the change it announces.

`record` notes events in the caller's session; right before that transaction commits they are
written with one multi-row INSERT (a group-committed batch of webhooks writes all its events
with one statement), in the order they were recorded. A rolled-back transaction writes none.
After the commit, the session's `events_ready` (an `asyncio.Event` in `session.info`, set by
the runtime) wakes the dispatcher of this process; other processes' dispatchers find the rows
when they poll.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import event, insert, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from tresen.db.tables import ConsentEvent, DomainEventRow, Job, Note
from tresen.db.types import utcnow
from tresen.domain.events import ConsentChanged, DomainEvent, NoteAdded
from tresen.domain.ids import new_id

WAKE = "events_ready"
"""The key of `session.info` naming what to call (or the `asyncio.Event` to set) after a commit
that wrote events."""
_PENDING = "tresen.outbox.pending"
_WRITTEN = "tresen.outbox.written"

_INSERT = insert(DomainEventRow)

DELIVER_JOB = "events.deliver"
"""The job that hands one lane's events to one consumer (see tresen.handlers.events)."""


@dataclass(frozen=True)
class ConsumerTrouble:
    """A consumer whose deliveries fail: how many lanes wait, how many were given up on."""

    consumer: str
    lanes: int
    dead: int
    attempts: int
    """The most attempts of one of its waiting deliveries."""
    since: datetime

    def reason(self) -> str:
        """One line for `tresen doctor` and `/readyz` (names and counts only)."""
        dead = f", {self.dead} given up (dead letters)" if self.dead else ""
        return (
            f"consumer {self.consumer!r} keeps failing: {self.lanes} lane(s) waiting{dead}, "
            f"up to {self.attempts} attempts, since {self.since:%Y-%m-%d %H:%M} UTC"
        )


async def consumer_trouble(session: AsyncSession) -> list[ConsumerTrouble]:
    """The consumers with failed deliveries still waiting (retrying or dead), by name."""
    rows = (
        await session.execute(
            select(Job.payload, Job.state, Job.attempts, Job.created_at)
            .where(Job.kind == DELIVER_JOB, or_(Job.state == "dead", Job.last_error.is_not(None)))
            .limit(10_000)
        )
    ).all()
    found: dict[str, tuple[set[str], int, int, datetime]] = {}
    for payload, state, attempts, created_at in rows:
        name = str((payload or {}).get("consumer"))
        lanes, dead, most, since = found.get(name, (set(), 0, 0, created_at))
        lanes.add(str((payload or {}).get("lane")))
        found[name] = (
            lanes,
            dead + (state == "dead"),
            max(most, attempts or 0),
            min(since, created_at),
        )
    return [
        ConsumerTrouble(name, len(lanes), dead, most, since)
        for name, (lanes, dead, most, since) in sorted(found.items())
    ]


def row_values(event: DomainEvent, now: datetime | None = None) -> dict[str, Any]:
    """The column values of one event's row."""
    return {
        "id": new_id(),
        "workspace_id": event.workspace_id,
        "type": event.TYPE,
        "version": event.VERSION,
        "lane": event.lane,
        "payload": event.payload(),
        "occurred_at": now or utcnow(),
    }


def record(session: AsyncSession | Session, *events: DomainEvent) -> None:
    """Write events in the session's transaction (when it commits)."""
    if events:
        now = utcnow()
        record_rows(session, [row_values(e, now) for e in events])


def record_rows(session: AsyncSession | Session, rows: list[dict[str, Any]]) -> None:
    """Write prepared rows (`row_values`) in the session's transaction (when it commits)."""
    if rows:
        session.info.setdefault(_PENDING, []).extend(rows)


@event.listens_for(Session, "before_flush")
def _announce_new_rows(session: Session, _context: Any, _instances: Any) -> None:
    # Every consent record (the proof of Art. 7) is a consent change and every note a note
    # added, wherever they are written (both are only ever written as ORM objects).
    changes: list[DomainEvent] = []
    for o in session.new:
        if isinstance(o, ConsentEvent) and o.contact_id:
            changes.append(ConsentChanged(o.workspace_id, o.contact_id, o.purpose, o.action))
        elif isinstance(o, Note):
            kind = "agent" if o.author_id else "system"
            changes.append(NoteAdded(o.workspace_id, o.conversation_id, o.id, kind))
    record(session, *changes)


@event.listens_for(Session, "before_commit")
def _write_before_commit(session: Session) -> None:
    # The changes first: flushing a consent record adds its event (nothing to do on the Core
    # hot path, where nothing waits in the session).
    session.flush()
    rows = session.info.pop(_PENDING, None)
    if rows:
        session.connection().execute(_INSERT, rows)
        session.info[_WRITTEN] = True


@event.listens_for(Session, "after_commit")
def _wake_after_commit(session: Session) -> None:
    if session.info.pop(_WRITTEN, False):
        wake = session.info.get(WAKE)
        if isinstance(wake, asyncio.Event):
            wake.set()
        elif callable(wake):
            wake()


@event.listens_for(Session, "after_rollback")
def _forget_after_rollback(session: Session) -> None:
    session.info.pop(_PENDING, None)
    session.info.pop(_WRITTEN, None)
