"""Readiness: can this install do its work right now? Each check gives a reason."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import redis.asyncio as redis
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from tresen.db.migrate import code_head, current_revision
from tresen.db.outbox import consumer_trouble
from tresen.db.tables import ProcessBeat
from tresen.db.types import utcnow
from tresen.ops.processes import ALIVE_WITHIN, RUNS_JOBS, alive

CHECK_SECONDS = 2.0


def as_utc(moment: datetime) -> datetime:
    """SQLite gives naive UTC times back; PostgreSQL aware ones."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


async def _database(engine: AsyncEngine) -> tuple[str, str]:
    """(`ok` or the problem, schema state)."""
    try:
        async with asyncio.timeout(CHECK_SECONDS), engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
            revision = await current_revision(connection)
    except Exception as exc:  # noqa: BLE001 - any failure means not ready; the type names it
        return f"unreachable ({type(exc).__name__})", "unknown"
    head = code_head()
    schema = "ok" if revision == head else f"at {revision or 'nothing'}, code needs {head}"
    return "ok", schema


async def _redis(url: str) -> str:
    if not url:
        return "not configured"
    client = redis.Redis.from_url(url, socket_connect_timeout=CHECK_SECONDS)
    try:
        async with asyncio.timeout(CHECK_SECONDS):
            await client.ping()
    except Exception as exc:  # noqa: BLE001 - any failure means not ready
        return f"unreachable ({type(exc).__name__})"
    finally:
        await client.aclose()
    return "ok"


async def _workers(sessions: async_sessionmaker[AsyncSession], within: timedelta) -> str:
    try:
        async with asyncio.timeout(CHECK_SECONDS), sessions() as session:
            running = [p for p in await alive(session, within) if p.role in RUNS_JOBS]
            last = await session.scalar(
                select(func.max(ProcessBeat.seen_at)).where(ProcessBeat.role.in_(RUNS_JOBS))
            )
    except Exception as exc:  # noqa: BLE001
        return f"unknown ({type(exc).__name__})"
    if running:
        return "ok"
    limit = f"no worker seen in the last {within.total_seconds():g} s"
    if last is None:
        return f"{limit}: no worker has reported yet (start `tresen worker`)"
    age = (utcnow() - as_utc(last)).total_seconds()
    return (
        f"{limit}: the last worker heartbeat is {age:.0f} s old "
        "(TRESEN_WORKER_HEARTBEAT_SECONDS; workers beat every 10 s)"
    )


async def _event_consumers(sessions: async_sessionmaker[AsyncSession]) -> str:
    """`ok`, or which domain-event consumers keep failing."""
    try:
        async with asyncio.timeout(CHECK_SECONDS), sessions() as session:
            trouble = await consumer_trouble(session)
    except Exception as exc:  # noqa: BLE001
        return f"unknown ({type(exc).__name__})"
    return "; ".join(t.reason() for t in trouble) or "ok"


async def readiness(
    engine: AsyncEngine,
    sessions: async_sessionmaker[AsyncSession],
    redis_url: str,
    heartbeat_seconds: float = ALIVE_WITHIN.total_seconds(),
) -> tuple[bool, dict[str, str]]:
    """Whether everything needed answers, and each check's result.

    A failing event consumer is named (`events`) but leaves the process ready: the web process
    still takes messages, and taking it out of the load balancer would not mend the consumer.
    """
    (database, schema), redis_state = await asyncio.gather(_database(engine), _redis(redis_url))
    checks = {"database": database, "schema": schema, "redis": redis_state}
    within = timedelta(seconds=heartbeat_seconds)
    checks["workers"] = await _workers(sessions, within) if database == "ok" else "unknown"
    ready = all(v in ("ok", "not configured") for v in checks.values())
    if database == "ok":
        events = await _event_consumers(sessions)
        if events != "ok":
            checks["events"] = events
    return ready, checks
