"""Inbound media: rows scheduled when a message arrives, fetched by the `media.fetch` job."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from sqlalchemy import select, update

from tresen.channels.base import (
    ChannelError,
    FetchedMedia,
    MediaRef,
    MediaTooLarge,
    PermanentError,
)
from tresen.db.tables import Media, Message
from tresen.domain.errors import DomainError, as_record
from tresen.events import MESSAGE_STATUS, Event
from tresen.jobs import queue
from tresen.jobs.queue import ClaimedJob
from tresen.media import store
from tresen.media.sniff import MediaRefused
from tresen.media.store import STAGING
from tresen.pipeline.media import FETCH_JOB
from tresen.runtime import Runtime
from tresen.storage import FileStore, StorageError

log = logging.getLogger(__name__)


def _read_local(files: FileStore, relative: str, max_bytes: int) -> FetchedMedia:
    """A file the web chat or a mailbox poll already put in the file store."""
    content = store.load(files, relative)
    if content is None:
        raise PermanentError("the uploaded file is missing", code="missing")
    if len(content) > max_bytes:
        raise MediaTooLarge(f"the file is larger than {max_bytes} bytes", code="too_large")
    return FetchedMedia(content, None)


async def fetch_job(runtime: Runtime, job: ClaimedJob, worker_id: str) -> None:
    """Download one file through its channel, check it, store it; or say why it is unavailable."""
    media_id = str(job.payload.get("media_id", ""))
    async with runtime.sessions() as session:
        found = (
            await session.execute(
                select(Media, Message.channel_id, Message.conversation_id)
                .join(Message, Message.id == Media.message_id)
                .where(Media.id == media_id)
            )
        ).first()
    if found is None or found[0].state != store.PENDING:
        async with runtime.sessions() as session, session.begin():
            await queue.finish(session, job.id, worker_id)
        return
    media, channel_id, conversation_id = found
    settings = runtime.settings
    ref_data = dict(media.ref)
    mime, name = ref_data.pop("mime_type", None), ref_data.pop("filename", None)
    ref = MediaRef(media.kind, ref_data, mime, name)
    values: dict[str, Any]
    try:
        if isinstance(ref.ref.get("local"), str):
            fetched = await asyncio.to_thread(
                _read_local, runtime.files, ref.ref["local"], settings.max_media_bytes
            )
            fetched = FetchedMedia(fetched.content, mime, name)
        else:
            loaded = await runtime.channel(channel_id)
            if loaded is None:
                raise PermanentError("the channel no longer exists", code="no_channel")
            fetched = await loaded.adapter.fetch_media(ref, settings.max_media_bytes)
        saved = await asyncio.to_thread(
            store.save,
            runtime.files,
            media.workspace_id,
            media.id,
            fetched.content,
            fetched.content_type or mime,
            settings.max_media_bytes,
        )
        values = {
            "state": store.STORED,
            "reason": None,
            "path": saved.path,
            "content_type": saved.content_type,
            "size": saved.size,
            "sha256": saved.sha256,
            "filename": store.stored_filename(
                fetched.filename or name or media.filename, saved.content_type
            ),
        }
    except MediaRefused as refused:
        values = {"state": store.UNAVAILABLE, "reason": as_record(refused)}
    except PermanentError as error:
        values = {"state": store.UNAVAILABLE, "reason": error.reason}
    except ChannelError as error:
        if job.attempts >= job.max_attempts:
            failed = DomainError(
                "fetch_failed", "could not be fetched: {reason}", params={"reason": error.reason}
            )
            values = {"state": store.UNAVAILABLE, "reason": as_record(failed)}
        else:
            delay = error.retry_after or queue.backoff_seconds(job.attempts, base=2.0)
            async with runtime.sessions() as session, session.begin():
                await queue.retry_later(session, job, worker_id, error.reason, delay)
            return
    async with runtime.sessions() as session, session.begin():
        await session.execute(update(Media).where(Media.id == media.id).values(**values))
        await queue.finish(session, job.id, worker_id)
    staged = ref.ref.get("local")
    if isinstance(staged, str) and staged.startswith(STAGING + "/"):
        with contextlib.suppress(OSError, StorageError):
            await asyncio.to_thread(runtime.files.delete, staged)
    log.info("media %s of message %s: %s", media.id, media.message_id, values["state"])
    await runtime.events.publish(
        Event(media.workspace_id, MESSAGE_STATUS, conversation_id, {"media": media.id})
    )


async def on_fetch_dead(runtime: Runtime, job: ClaimedJob, error: str) -> None:
    """A fetch that crashed too often: the agent sees the file as unavailable."""
    async with runtime.sessions() as session, session.begin():
        await session.execute(
            update(Media)
            .where(Media.id == str(job.payload.get("media_id", "")), Media.state == store.PENDING)
            .values(
                state=store.UNAVAILABLE,
                reason=as_record(DomainError("fetch_failed", "could not be fetched")),
            )
        )


HANDLERS = {FETCH_JOB: fetch_job}
DEAD_HOOKS = {FETCH_JOB: on_fetch_dead}
