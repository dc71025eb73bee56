"""The audit log: append-only, hash-chained per workspace; `verify` finds any tampering."""

from __future__ import annotations

import hashlib
import json
import zlib
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from tresen.db.tables import AuditEntry
from tresen.db.types import utcnow

GENESIS = "0" * 64
ACTOR: ContextVar[str | None] = ContextVar("tresen_audit_actor", default=None)
"""The signed-in person acting in this request (set by the web layer); None: CLI or system."""
VIA: ContextVar[str] = ContextVar("tresen_audit_via", default="system")
"""Where an admin action came from: web, api, cli or system."""


def entry_hash(
    prev_hash: str,
    workspace_id: str,
    actor_id: str | None,
    action: str,
    subject_type: str | None,
    subject_id: str | None,
    details: dict[str, Any],
    occurred_at: datetime,
) -> str:
    """The hash of one entry over its content and its predecessor's hash."""
    canonical = json.dumps(
        [
            prev_hash,
            workspace_id,
            actor_id,
            action,
            subject_type,
            subject_id,
            details,
            occurred_at.isoformat(),
        ],
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        default=str,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


async def record(
    session: AsyncSession,
    workspace_id: str,
    action: str,
    *,
    actor_id: str | None = None,
    subject_type: str | None = None,
    subject_id: str | None = None,
    details: dict[str, Any] | None = None,
) -> AuditEntry:
    """Append one entry in the caller's transaction (ids and facts only, no personal data)."""
    if session.get_bind().dialect.name == "postgresql":
        # One writer per workspace chain at a time, so two entries never share a predecessor.
        await session.execute(
            text("SELECT pg_advisory_xact_lock(:k)"), {"k": zlib.crc32(workspace_id.encode())}
        )
    prev = await session.scalar(
        select(AuditEntry.hash)
        .where(AuditEntry.workspace_id == workspace_id)
        .order_by(AuditEntry.id.desc())
        .limit(1)
    )
    occurred_at = utcnow()
    payload = dict(details or {})
    prev_hash = prev or GENESIS
    entry = AuditEntry(
        workspace_id=workspace_id,
        actor_id=actor_id,
        action=action,
        subject_type=subject_type,
        subject_id=subject_id,
        details=payload,
        occurred_at=occurred_at,
        prev_hash=prev_hash,
        hash=entry_hash(
            prev_hash,
            workspace_id,
            actor_id,
            action,
            subject_type,
            subject_id,
            payload,
            occurred_at,
        ),
    )
    session.add(entry)
    await session.flush()
    return entry


@dataclass(frozen=True)
class VerifyResult:
    """What `verify` found for one workspace."""

    workspace_id: str
    entries: int
    first_bad_id: int | None
    reason: str | None

    @property
    def ok(self) -> bool:
        """True when the whole chain is intact."""
        return self.first_bad_id is None


async def verify(session: AsyncSession, workspace_id: str) -> VerifyResult:
    """Recompute the chain; report the first entry that was changed, removed or inserted."""
    prev_hash = GENESIS
    count = 0
    result = await session.stream_scalars(
        select(AuditEntry).where(AuditEntry.workspace_id == workspace_id).order_by(AuditEntry.id)
    )
    async for entry in result:
        count += 1
        if entry.prev_hash != prev_hash:
            return VerifyResult(
                workspace_id, count, entry.id, "an entry before it was removed or altered"
            )
        expected = entry_hash(
            entry.prev_hash,
            entry.workspace_id,
            entry.actor_id,
            entry.action,
            entry.subject_type,
            entry.subject_id,
            entry.details or {},
            entry.occurred_at,
        )
        if expected != entry.hash:
            return VerifyResult(
                workspace_id, count, entry.id, "its content does not match its hash"
            )
        prev_hash = entry.hash
    return VerifyResult(workspace_id, count, None, None)


async def admin_action(
    session: AsyncSession,
    workspace_id: str,
    action: str,
    subject_type: str,
    subject_id: str | None,
    **details: Any,
) -> AuditEntry:
    """Record an admin action by whoever acts in this context (web person, CLI, system)."""
    return await record(
        session,
        workspace_id,
        action,
        actor_id=ACTOR.get(),
        subject_type=subject_type,
        subject_id=subject_id,
        details={"via": VIA.get(), **details},
    )
