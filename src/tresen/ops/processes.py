"""Heartbeats of running processes: what each runs with, and that it is alive."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tresen import __version__
from tresen.db.migrate import code_head
from tresen.db.tables import ProcessBeat
from tresen.db.types import utcnow
from tresen.ops.keys import encryption_summary, secret_fingerprint
from tresen.settings import Settings
from tresen.storage import location

log = logging.getLogger(__name__)

BEAT_SECONDS = 10.0
ALIVE_WITHIN = timedelta(seconds=45)
"""A process not seen for this long counts as gone (several missed beats)."""
FORGET_AFTER = timedelta(days=7)

WEB, WORKER, WEB_AND_WORKER = "web", "worker", "web+worker"
RUNS_JOBS = (WORKER, WEB_AND_WORKER)


@dataclass(frozen=True)
class ProcessIdentity:
    """One running process as it reports itself."""

    role: str
    host: str = field(default_factory=socket.gethostname)
    pid: int = field(default_factory=os.getpid)
    token: str = field(default_factory=lambda: secrets.token_hex(4))

    @property
    def id(self) -> str:
        """Unique per process start."""
        return f"{self.host[:100]}:{self.pid}:{self.token}"


def _row(identity: ProcessIdentity, settings: Settings, now: datetime) -> dict[str, object]:
    return {
        "id": identity.id,
        "role": identity.role,
        "host": identity.host[:255],
        "pid": identity.pid,
        "version": __version__,
        "schema_revision": code_head(),
        "secret_fingerprint": secret_fingerprint(settings),
        "encryption_fingerprint": encryption_summary(settings)[:255],
        "data_dir": location(settings),
        "base_url": settings.base_url,
        "started_at": now,
        "seen_at": now,
    }


async def beat(
    sessions: async_sessionmaker[AsyncSession], identity: ProcessIdentity, settings: Settings
) -> None:
    """Report this process alive (insert on the first beat)."""
    now = utcnow()
    async with sessions() as session, session.begin():
        found = await session.execute(
            update(ProcessBeat)
            .where(ProcessBeat.id == identity.id)
            .values(seen_at=now, stopped_at=None)
        )
        if not found.rowcount:  # type: ignore[attr-defined]
            session.add(ProcessBeat(**_row(identity, settings, now)))
            await session.execute(
                delete(ProcessBeat).where(ProcessBeat.seen_at < now - FORGET_AFTER)
            )


async def stopped(sessions: async_sessionmaker[AsyncSession], identity: ProcessIdentity) -> None:
    """Say this process has stopped (so health checks do not wait for it to time out)."""
    async with sessions() as session, session.begin():
        await session.execute(
            update(ProcessBeat).where(ProcessBeat.id == identity.id).values(stopped_at=utcnow())
        )


async def beat_until(
    sessions: async_sessionmaker[AsyncSession],
    identity: ProcessIdentity,
    settings: Settings,
    stop: asyncio.Event,
    every: float = BEAT_SECONDS,
) -> None:
    """Beat every few seconds until `stop` is set; then record the stop."""
    while not stop.is_set():
        try:
            await beat(sessions, identity, settings)
        except Exception:
            log.warning("process heartbeat failed; retrying", exc_info=True)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every)
    with contextlib.suppress(Exception):
        await stopped(sessions, identity)


async def alive(session: AsyncSession, within: timedelta = ALIVE_WITHIN) -> list[ProcessBeat]:
    """Processes seen recently and not stopped, newest first."""
    return list(
        await session.scalars(
            select(ProcessBeat)
            .where(ProcessBeat.seen_at >= utcnow() - within, ProcessBeat.stopped_at.is_(None))
            .order_by(ProcessBeat.seen_at.desc())
        )
    )
