"""What a signed-in person did in the browser, into the workspace's audit log."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from tresen.inbox.permissions import Actor
from tresen.privacy import audit


async def record_by(
    session: AsyncSession,
    actor: Actor,
    action: str,
    subject_type: str,
    subject_id: str,
    details: dict[str, Any] | None = None,
) -> None:
    """Append the actor's action on a subject in the caller's transaction (ids only)."""
    await audit.record(
        session,
        actor.user.workspace_id,
        action,
        actor_id=actor.user.id,
        subject_type=subject_type,
        subject_id=subject_id,
        details=details,
    )
