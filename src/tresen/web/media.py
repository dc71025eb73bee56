"""Media over HTTP: files for signed-in agents, uploads from the reply box, signed provider links."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any
from urllib.parse import quote

from litestar import Request, Response, Router, get, post
from litestar.datastructures import UploadFile
from litestar.params import FromPath, FromQuery
from litestar.response import File
from sqlalchemy import select

from tresen.channels.registry import channel_factory
from tresen.db import crypto
from tresen.db.tables import ChannelRow, Contact, Conversation, Media, Message
from tresen.domain.errors import DomainError
from tresen.domain.ids import new_id
from tresen.domain.message import ContentKind, Direction
from tresen.events import MESSAGE_NEW, Event
from tresen.inbox import service
from tresen.inbox.permissions import Action, may
from tresen.media import store
from tresen.media.sniff import INLINE_TYPES, MediaRefused
from tresen.pipeline.outbound import OutboundContent, OutboundRefused, queue_message
from tresen.runtime import Runtime
from tresen.settings import ensure_secret_key
from tresen.storage import FileStore, StorageError
from tresen.web import i18n
from tresen.web.audited import record_by
from tresen.web.inbox import _conversation_page, current_actor

log = logging.getLogger(__name__)

UPLOAD_HARD_LIMIT = 64 * 1024 * 1024
"""The most any upload request may carry; TRESEN_MAX_MEDIA_BYTES is checked below it."""
FILE_HEADERS = {
    "x-content-type-options": "nosniff",
    "content-security-policy": "default-src 'none'; sandbox",
    "cross-origin-resource-policy": "same-origin",
    "cache-control": "private, max-age=300",
}


def _runtime(request: Request[Any, Any, Any]) -> Runtime:
    return request.app.state.runtime


async def stored_file(
    files: FileStore,
    media: Media,
    *,
    extra_headers: dict[str, str] | None = None,
    missing: Exception | None = None,
) -> File | Response[bytes]:
    """A stored file with headers that keep the browser from running or guessing it."""
    key = media.path or ""
    path = files.local_path(key) if store.is_media_key(key) else None
    headers = {**FILE_HEADERS, **(extra_headers or {})}
    inline = media.content_type in INLINE_TYPES
    if path is None or crypto.active() is not None:
        # From object storage, or encrypted at rest: through memory (files are at most
        # TRESEN_MAX_MEDIA_BYTES), after the caller's permission checks.
        try:
            content = await asyncio.to_thread(store.load, files, key)
        except StorageError as exc:
            log.warning("media %s could not be read: %s", media.id, exc)
            raise DomainError(
                "storage_unavailable", "the file store is not reachable; try again", status=503
            ) from exc
        if content is None:
            raise missing or service.NotFound(media.id)
        name = media.filename or f"file-{media.id}"
        disposition = "inline" if inline else "attachment"
        return Response(
            content,
            media_type=media.content_type or "application/octet-stream",
            headers={
                **headers,
                "content-disposition": f"{disposition}; filename*=UTF-8''{quote(name)}",
            },
        )
    return File(
        path,
        filename=media.filename or f"file-{media.id}",
        media_type=media.content_type or "application/octet-stream",
        content_disposition_type="inline" if inline else "attachment",
        headers=headers,
    )


@get("/inbox/media/{media_id:str}", include_in_schema=False)
async def media_file(
    request: Request[Any, Any, Any], media_id: FromPath[str]
) -> File | Response[bytes]:
    """A message's file, for people who may see its conversation."""
    actor = await current_actor(request)
    runtime = _runtime(request)
    async with runtime.sessions() as session, session.begin():
        found = (
            await session.execute(
                select(
                    Media,
                    Conversation,
                    Message.direction,
                    Contact.consent_state,
                    Contact.restricted_at,
                )
                .join(Message, Message.id == Media.message_id)
                .join(Conversation, Conversation.id == Message.conversation_id)
                .join(Contact, Contact.id == Conversation.contact_id)
                .where(Media.id == media_id, Media.workspace_id == actor.user.workspace_id)
            )
        ).first()
        if found is None or found[0].state != store.STORED:
            raise service.NotFound(media_id)
        media, conversation, direction, state, restricted_at = found
        if not may(actor, Action.VIEW, conversation):
            raise service.Forbidden("you may not see this conversation")
        if actor.withholding.reason(state, restricted_at is not None, direction):
            raise service.Forbidden("this file is withheld until the customer consents")
        await record_by(session, actor, "media.viewed", "media", media.id)
    return await stored_file(runtime.files, media)


@get("/media/public/{media_id:str}", include_in_schema=False)
async def public_file(
    request: Request[Any, Any, Any],
    media_id: FromPath[str],
    exp: FromQuery[str] = "",
    sig: FromQuery[str] = "",
) -> File | Response[bytes]:
    """An agent's file for the provider to fetch, by a signed link that expires (outbound only)."""
    runtime = _runtime(request)
    secret = ensure_secret_key(runtime.settings).secret_key
    if not store.link_valid(secret, media_id, exp, sig):
        raise service.Forbidden("the link is invalid or has expired")
    async with runtime.sessions() as session:
        media = await session.scalar(
            select(Media)
            .join(Message, Message.id == Media.message_id)
            .where(
                Media.id == media_id,
                Media.state == store.STORED,
                Message.direction == Direction.OUTBOUND.value,
            )
        )
    if media is None:
        raise service.NotFound(media_id)
    return await stored_file(runtime.files, media)


def _kind(content_type: str) -> str:
    if content_type in INLINE_TYPES:
        return "image"
    top = content_type.split("/", 1)[0]
    return top if top in ("audio", "video") else "document"


@post(
    "/inbox/c/{conversation_id:str}/media",
    include_in_schema=False,
    status_code=303,
    request_max_body_size=UPLOAD_HARD_LIMIT,
)
async def upload(request: Request[Any, Any, Any], conversation_id: FromPath[str]) -> Response[Any]:
    """Send a file (multipart form: file, optional caption) to the customer."""
    actor = await current_actor(request)
    runtime = _runtime(request)
    settings = runtime.settings
    form = await request.form()
    upload_file = form.get("file")
    caption = str(form.get("caption") or "").strip() or None
    media_id = new_id()
    saved: store.Saved | None = None
    try:
        if not isinstance(upload_file, UploadFile) or not upload_file.filename:
            raise MediaRefused("no_file", "Choose a file to send.")
        content = await upload_file.read(settings.max_media_bytes + 1)
        async with runtime.sessions() as session, session.begin():
            conv = await service.load_conversation(session, actor, conversation_id)
            if not may(actor, Action.REPLY, conv):
                raise service.Forbidden("you may not reply in this conversation")
            channel = await session.get_one(ChannelRow, conv.channel_id)
            if not channel_factory(channel.kind).capabilities.media:
                raise OutboundRefused(
                    "no_media", "{kind} cannot send files", params={"kind": channel.kind}
                )
            saved = await asyncio.to_thread(
                store.save,
                runtime.files,
                actor.user.workspace_id,
                media_id,
                content,
                upload_file.content_type,
                settings.max_media_bytes,
            )
            filename = store.stored_filename(upload_file.filename, saved.content_type)
            link = store.public_link(
                settings.base_url, ensure_secret_key(settings).secret_key, media_id
            )
            payload = {"media_type": _kind(saved.content_type), "link": link, "media_id": media_id}
            if filename:
                payload["filename"] = filename
            message = await queue_message(
                session, conv, channel, OutboundContent(ContentKind.MEDIA, caption, payload)
            )
            session.add(
                Media(
                    id=media_id,
                    workspace_id=conv.workspace_id,
                    message_id=message.id,
                    kind=payload["media_type"],
                    state=store.STORED,
                    content_type=saved.content_type,
                    size=saved.size,
                    sha256=saved.sha256,
                    filename=filename,
                    path=saved.path,
                    ref={},
                )
            )
    except (MediaRefused, OutboundRefused) as refused:
        if saved is not None:
            with contextlib.suppress(OSError, StorageError):
                await asyncio.to_thread(runtime.files.delete, saved.path)
        status = 413 if refused.code == "too_large" else 422
        return await _conversation_page(
            request,
            actor,
            conversation_id,
            "all",
            error=i18n.error_text(refused),
            status_code=status,
        )
    runtime.jobs_ready.set()
    await runtime.events.publish(Event(actor.user.workspace_id, MESSAGE_NEW, conversation_id, {}))
    return Response(
        content=None,
        status_code=303,
        headers={"location": f"/inbox/c/{conversation_id}"},
    )


media_router = Router(path="/", route_handlers=[media_file, public_file, upload])
