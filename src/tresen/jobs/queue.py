"""The job table: enqueue, claim with a lease, heartbeat, finish, retry, dead-letter."""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from tresen import metrics
from tresen.db.tables import Job
from tresen.db.types import utcnow
from tresen.db.upsert import rowcount
from tresen.domain.ids import new_id

PENDING, RUNNING, DEAD = "pending", "running", "dead"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ClaimedJob:
    """A job this worker holds a lease on."""

    id: str
    kind: str
    payload: dict[str, Any]
    attempts: int
    max_attempts: int
    workspace_id: str | None


def enqueue(
    session: AsyncSession,
    kind: str,
    payload: dict[str, Any],
    *,
    workspace_id: str | None = None,
    run_at: datetime | None = None,
    max_attempts: int = 8,
) -> str:
    """Add a job to the caller's transaction; it is visible to workers once that commits."""
    job_id = new_id()
    now = utcnow()
    session.add(
        Job(
            id=job_id,
            kind=kind,
            payload=payload,
            workspace_id=workspace_id,
            state=PENDING,
            run_at=run_at or now,
            attempts=0,
            max_attempts=max_attempts,
            created_at=now,
            updated_at=now,
        )
    )
    return job_id


async def claim(
    engine: AsyncEngine,
    worker_id: str,
    limit: int,
    lease: timedelta,
    kinds: list[str] | None = None,
    holding: list[str] | None = None,
) -> list[ClaimedJob]:
    """Lease up to `limit` due jobs: pending ones, and running ones whose lease expired.

    `holding` names jobs the caller still runs: a lapsed lease (a late heartbeat) must not
    let the same worker start them a second time.
    """
    now = utcnow()
    due = or_(
        and_(Job.state == PENDING, Job.run_at <= now),
        and_(Job.state == RUNNING, Job.lease_until < now),
    )
    pick = select(Job.id).where(due).order_by(Job.run_at).limit(limit)
    if kinds:
        pick = pick.where(Job.kind.in_(kinds))
    if holding:
        pick = pick.where(Job.id.not_in(holding))
    if engine.dialect.name == "postgresql":
        pick = pick.with_for_update(skip_locked=True)
    stmt = (
        update(Job)
        .where(Job.id.in_(pick.scalar_subquery()))
        .values(
            state=RUNNING,
            lease_until=now + lease,
            locked_by=worker_id,
            attempts=Job.attempts + 1,
            updated_at=now,
        )
        .returning(Job.id, Job.kind, Job.payload, Job.attempts, Job.max_attempts, Job.workspace_id)
        .execution_options(synchronize_session=False)
    )
    async with engine.begin() as conn:
        rows = (await conn.execute(stmt)).all()
    return [ClaimedJob(*row) for row in rows]


async def heartbeat(
    engine: AsyncEngine, worker_id: str, job_ids: list[str], lease: timedelta
) -> int:
    """Extend the lease of jobs this worker still holds; returns how many it still holds."""
    if not job_ids:
        return 0
    async with engine.begin() as conn:
        result = await conn.execute(
            update(Job)
            .where(Job.id.in_(job_ids), Job.locked_by == worker_id, Job.state == RUNNING)
            .values(lease_until=utcnow() + lease)
        )
    return rowcount(result)


async def release(engine: AsyncEngine, worker_id: str, job_ids: list[str]) -> int:
    """Hand jobs this worker stopped running back to the queue at once (the try is not counted)."""
    if not job_ids:
        return 0
    async with engine.begin() as conn:
        result = await conn.execute(
            update(Job)
            .where(Job.id.in_(job_ids), Job.locked_by == worker_id, Job.state == RUNNING)
            .values(
                state=PENDING,
                run_at=utcnow(),
                lease_until=None,
                locked_by=None,
                attempts=Job.attempts - 1,
            )
        )
    return rowcount(result)


async def finish(session: AsyncSession, job_id: str, worker_id: str) -> bool:
    """Remove a completed job inside the caller's transaction; False if the lease was lost."""
    result = await session.execute(
        delete(Job).where(Job.id == job_id, Job.locked_by == worker_id, Job.state == RUNNING)
    )
    return bool(rowcount(result))


def backoff_seconds(attempt: int, *, base: float = 1.0, cap: float = 300.0) -> float:
    """Exponential backoff with full jitter in its upper half."""
    ceiling = min(cap, base * (2 ** max(0, attempt - 1)))
    return ceiling * random.uniform(0.5, 1.0)


async def retry_later(
    session: AsyncSession,
    job: ClaimedJob,
    worker_id: str,
    error: str,
    delay: float,
    *,
    count_attempt: bool = True,
) -> bool:
    """Release the lease and schedule the job again after `delay` seconds."""
    values: dict[str, Any] = {
        "state": PENDING,
        "run_at": utcnow() + timedelta(seconds=delay),
        "lease_until": None,
        "locked_by": None,
        "last_error": error[:2000],
    }
    if not count_attempt:
        values["attempts"] = Job.attempts - 1
    result = await session.execute(
        update(Job)
        .where(Job.id == job.id, Job.locked_by == worker_id, Job.state == RUNNING)
        .values(**values)
    )
    return bool(rowcount(result))


async def bury(session: AsyncSession, job_id: str, error: str) -> None:
    """Move a job to the dead letters, keeping its last error."""
    await session.execute(
        update(Job)
        .where(Job.id == job_id)
        .values(state=DEAD, lease_until=None, locked_by=None, last_error=error[:2000])
    )


async def revive(session: AsyncSession, job_id: str) -> bool:
    """Give a dead job a fresh set of attempts."""
    result = await session.execute(
        update(Job)
        .where(Job.id == job_id, Job.state == DEAD)
        .values(state=PENDING, attempts=0, run_at=utcnow(), last_error=None)
    )
    return bool(rowcount(result))


async def dead_jobs(session: AsyncSession, workspace_id: str, limit: int = 100) -> list[Job]:
    """The dead letters of one workspace, newest first."""
    rows = await session.scalars(
        select(Job)
        .where(Job.workspace_id == workspace_id, Job.state == DEAD)
        .order_by(Job.updated_at.desc())
        .limit(limit)
    )
    return list(rows)


def dead_letter(job: ClaimedJob) -> None:
    """Log and count a job given up on (the error text stays in the row: it may name people)."""
    metrics.DEAD_LETTERS.labels(kind=job.kind).inc()
    log.error(
        "job %s (%s) is a dead letter after %d attempts; see GET /api/v1/jobs/dead",
        job.id,
        job.kind,
        job.attempts,
    )
