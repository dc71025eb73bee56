"""Outbound media: the stored file of a message an agent uploaded, for channels that upload it."""

from __future__ import annotations

import asyncio
import dataclasses

from sqlalchemy import select

from tresen.channels.base import Attachment, OutboundMessage
from tresen.db.tables import Media
from tresen.media.store import STORED, load
from tresen.runtime import Runtime


async def with_attachment(runtime: Runtime, message: OutboundMessage) -> OutboundMessage:
    """The message with its stored file attached (unchanged when it names none)."""
    media_id = message.payload.get("media_id")
    if not isinstance(media_id, str):
        return message
    async with runtime.sessions() as session:
        media = await session.scalar(
            # Only the file uploaded for this very message: a payload cannot borrow another one.
            select(Media).where(
                Media.id == media_id,
                Media.message_id == message.client_reference,
                Media.state == STORED,
            )
        )
    content = await asyncio.to_thread(load, runtime.files, media.path) if media else None
    if media is None or content is None:
        return message
    attachment = Attachment(
        None,
        media.filename or f"file-{media.id}",
        media.content_type or "application/octet-stream",
        content,
    )
    return dataclasses.replace(message, attachment=attachment)
