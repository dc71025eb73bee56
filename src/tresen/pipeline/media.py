"""Which files an inbound message names: a media row each, and a fetch job unless already stored."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from tresen.channels.base import MediaRef
from tresen.channels.registry import channel_factory
from tresen.db.tables import Media
from tresen.domain.ids import new_id
from tresen.jobs import queue
from tresen.media.store import PENDING, STORED, clean_filename

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
        stored = ref.ref.get("stored")
        if isinstance(stored, dict):
            _already_stored(session, workspace_id, message_id, ref, stored)
            continue
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


def _already_stored(
    session: AsyncSession,
    workspace_id: str,
    message_id: str,
    ref: MediaRef,
    stored: dict[str, Any],
) -> None:
    """A file tresen itself checked and stored on upload (the web chat): its row, no fetch."""
    media_id, path = stored.get("media_id"), stored.get("path")
    if not isinstance(media_id, str) or not isinstance(path, str):
        return
    if not path.startswith(f"media/{workspace_id}/") or ".." in path:
        return  # only a file of this workspace's media folder
    session.add(
        Media(
            id=media_id,
            workspace_id=workspace_id,
            message_id=message_id,
            kind=ref.kind[:16],
            state=STORED,
            content_type=(ref.mime_type or "")[:100] or None,
            size=stored.get("size") if isinstance(stored.get("size"), int) else None,
            sha256=stored.get("sha256") if isinstance(stored.get("sha256"), str) else None,
            filename=clean_filename(ref.filename),
            path=path,
            ref={},
        )
    )
