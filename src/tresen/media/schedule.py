"""Which files an inbound message names: a pending media row and a fetch job for each."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from tresen.channels.base import channel_factory
from tresen.db.tables import Media
from tresen.domain.ids import new_id
from tresen.jobs import queue
from tresen.media.store import PENDING, clean_filename

FETCH_JOB = "media.fetch"
MAX_ATTEMPTS = 6
MAX_FILES_PER_MESSAGE = 10


def schedule(
    session: AsyncSession,
    workspace_id: str,
    channel_kind: str,
    message_id: str,
    payload: dict[str, Any],
) -> int:
    """Add a pending media row and its fetch job per file the message names (caller's transaction)."""
    refs = channel_factory(channel_kind).media_refs(payload)[:MAX_FILES_PER_MESSAGE]
    for ref in refs:
        media_id = new_id()
        session.add(
            Media(
                id=media_id,
                workspace_id=workspace_id,
                message_id=message_id,
                kind=ref.kind[:16],
                state=PENDING,
                content_type=(ref.mime_type or "")[:100] or None,
                filename=clean_filename(ref.filename),
                ref={**ref.ref, "mime_type": ref.mime_type, "filename": ref.filename},
            )
        )
        queue.enqueue(
            session,
            FETCH_JOB,
            {"media_id": media_id},
            workspace_id=workspace_id,
            max_attempts=MAX_ATTEMPTS,
        )
    return len(refs)
