"""REST API v1: conversations, messages, contacts, channels, dead letters."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec
from litestar import Request, Router, delete, get, post
from litestar.background_tasks import BackgroundTask
from litestar.openapi import ResponseSpec
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter
from litestar.response import File
from sqlalchemy import func, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from tresen.channels.base import ChannelRef
from tresen.channels.manage import list_channels, webhook_url
from tresen.channels.registry import channel_factory
from tresen.db.tables import (
    ChannelRow,
    Contact,
    ContactIdentity,
    Conversation,
    Job,
    Message,
    Workspace,
)
from tresen.db.types import utcnow
from tresen.domain.conversation import window_open
from tresen.domain.message import ContentKind, DeliveryState, SenderKind
from tresen.events import MESSAGE_NEW, Event
from tresen.inbox import canned
from tresen.integrations.tokens import Principal, authenticate
from tresen.jobs import queue
from tresen.logs import WORKSPACE_ID
from tresen.media.sniff import MediaRefused
from tresen.pipeline.inbound import conversation_for
from tresen.pipeline.outbound import OutboundContent, OutboundRefused, queue_message
from tresen.privacy import audit
from tresen.privacy.erasure import ContactNotFound, erase
from tresen.privacy.export import export_to_file
from tresen.privacy.restriction import set_restricted
from tresen.privacy.visibility import withholding
from tresen.runtime import Runtime
from tresen.settings import ensure_secret_key
from tresen.web.bodies import MAX_JSON_DEPTH, too_deep
from tresen.web.errors import ApiError

Id = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
Limit = Annotated[int, QueryParameter(ge=1, le=200)]
SendKind = Literal["text", "template", "interactive", "media"]


class ErrorDetail(msgspec.Struct):
    """What went wrong, for people and for programs."""

    code: str
    message: str


class ErrorBody(msgspec.Struct):
    """Every error response has this shape."""

    error: ErrorDetail


def _error(description: str) -> ResponseSpec:
    return ResponseSpec(data_container=ErrorBody, description=description, generate_examples=False)


ERROR_RESPONSES = {
    400: _error("The request is malformed; the message says which part"),
    401: _error("No bearer token, or an unknown or revoked one"),
    403: _error("The token lacks the scope this operation needs"),
    404: _error("No such object in the token's workspace"),
    422: _error("Well-formed but refused by a rule (window, limits); the code names the rule"),
    503: _error("The database is busy or unreachable; try again"),
}


class MessageOut(msgspec.Struct):
    """A message as the API shows it."""

    id: str
    conversation_id: str
    channel_id: str
    direction: str
    sender_kind: str
    content_kind: str
    body: str | None
    payload: dict[str, Any]
    state: str
    provider_message_id: str | None
    error_code: str | None
    error_reason: str | None
    created_at: datetime
    sent_at: datetime | None
    delivered_at: datetime | None
    read_at: datetime | None
    failed_at: datetime | None
    withheld: str | None = None
    """"consent" or "restricted" when body and payload are withheld (see docs/privacy.md)."""


class ConversationOut(msgspec.Struct):
    """A conversation with its window."""

    id: str
    channel_id: str
    contact_id: str
    status: str
    last_inbound_at: datetime | None
    last_message_at: datetime | None
    window_open: bool
    created_at: datetime


class IdentityOut(msgspec.Struct):
    """A contact's address on one channel."""

    channel_id: str
    address: str
    display_name: str | None
    unreachable: bool


class ContactOut(msgspec.Struct):
    """A contact and their identities."""

    id: str
    display_name: str | None
    attributes: dict[str, Any]
    identities: list[IdentityOut]
    created_at: datetime
    merged_into_id: str | None = None  # set while this contact is merged into another
    restricted_at: datetime | None = None  # set while processing is restricted (Art. 18)


class ChannelOut(msgspec.Struct):
    """A connected channel (secrets left out)."""

    id: str
    kind: str
    name: str
    enabled: bool
    webhook_url: str


class JobOut(msgspec.Struct):
    """A job in the dead letters."""

    id: str
    kind: str
    payload: dict[str, Any]
    attempts: int
    last_error: str | None
    updated_at: datetime


class SendRequest(msgspec.Struct, forbid_unknown_fields=True):
    """A message to send into an existing conversation."""

    kind: SendKind = "text"
    body: Annotated[str, msgspec.Meta(max_length=65536)] | None = None
    payload: dict[str, Any] | None = None
    canned: Annotated[str, msgspec.Meta(max_length=41)] | None = None
    """The shortcut of a workspace canned reply: its text (customer's language, variables filled)
    and its file go out instead of `body`."""


class SendToRequest(msgspec.Struct, forbid_unknown_fields=True):
    """A message to an address on a channel (the conversation is found or opened)."""

    channel_id: Id
    to: Annotated[str, msgspec.Meta(min_length=1, max_length=320)]
    kind: SendKind = "text"
    body: Annotated[str, msgspec.Meta(max_length=65536)] | None = None
    payload: dict[str, Any] | None = None


STRICT_REQUEST_BODIES = (SendRequest, SendToRequest)


class Page(msgspec.Struct):
    """A page of results and the cursor for the next one."""

    items: list[Any]
    next_before: str | None


def _runtime(request: Request[Any, Any, Any]) -> Runtime:
    return request.app.state.runtime


async def authenticate_first(request: Request[Any, Any, Any]) -> None:
    """Before parameters and body are looked at: 401 without a valid token, 400 for deep JSON."""
    if request.method == "OPTIONS":
        return
    request.state.principal = await _principal(request)
    if request.method in ("POST", "PUT", "PATCH", "DELETE") and too_deep(await request.body()):
        raise ApiError("too_deep", f"the body nests deeper than {MAX_JSON_DEPTH} levels", 400)


async def require(request: Request[Any, Any, Any], scope: str) -> Principal:
    """The caller's principal, or 401/403."""
    principal = getattr(request.state, "principal", None) or await _principal(request)
    if not principal.allows(scope):
        raise ApiError("forbidden", f"this token lacks the scope {scope!r}", 403)
    return principal


async def _principal(request: Request[Any, Any, Any]) -> Principal:
    """The principal of the request's bearer token, or 401."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(
            "unauthenticated",
            "send 'Authorization: Bearer <token>'; create one with `tresen token create`",
            401,
        )
    async with _runtime(request).sessions() as session:
        principal = await authenticate(session, token.strip())
    if principal is None:
        raise ApiError("unauthenticated", "the bearer token is unknown or revoked", 401)
    WORKSPACE_ID.set(principal.workspace_id)
    audit.ACTOR.set(principal.token_id)
    audit.VIA.set("api")
    return principal


async def _withheld(runtime: Runtime, session: AsyncSession, m: Message) -> str | None:
    """Why this message's content is withheld from API clients, if it is."""

    row = (
        await session.execute(
            select(Contact.consent_state, Contact.restricted_at)
            .join(Conversation, Conversation.contact_id == Contact.id)
            .where(Conversation.id == m.conversation_id)
        )
    ).first()
    if row is None:
        return None
    return withholding(runtime.settings).reason(row[0], row[1] is not None, m.direction)


def _message_out(m: Message, withheld: str | None = None) -> MessageOut:
    if withheld is not None:
        return msgspec.structs.replace(
            _message_out(m), body=None, payload={}, error_reason=None, withheld=withheld
        )
    return MessageOut(
        id=m.id,
        conversation_id=m.conversation_id,
        channel_id=m.channel_id,
        direction=m.direction,
        sender_kind=m.sender_kind,
        content_kind=m.content_kind,
        body=m.body,
        payload=m.payload or {},
        state=m.state,
        provider_message_id=m.provider_message_id,
        error_code=m.error_code,
        error_reason=m.error_reason,
        created_at=m.created_at,
        sent_at=m.sent_at,
        delivered_at=m.delivered_at,
        read_at=m.read_at,
        failed_at=m.failed_at,
    )


def _conversation_out(c: Conversation, channel_kind: str) -> ConversationOut:

    caps = channel_factory(channel_kind).capabilities
    return ConversationOut(
        id=c.id,
        channel_id=c.channel_id,
        contact_id=c.contact_id,
        status=c.status,
        last_inbound_at=c.last_inbound_at,
        last_message_at=c.last_message_at,
        window_open=window_open(c.last_inbound_at, caps.window, utcnow()),
        created_at=c.created_at,
    )


async def _conversation(
    session: AsyncSession, principal: Principal, conversation_id: str
) -> tuple[Conversation, ChannelRow]:
    row = (
        await session.execute(
            select(Conversation, ChannelRow)
            .join(ChannelRow, ChannelRow.id == Conversation.channel_id)
            .where(
                Conversation.id == conversation_id,
                Conversation.workspace_id == principal.workspace_id,
            )
        )
    ).first()
    if row is None:
        raise ApiError("not_found", "no conversation with this id", 404)
    return row[0], row[1]


@get(
    "/conversations", responses=ERROR_RESPONSES, summary="List conversations, newest activity first"
)
async def list_conversations(
    request: Request[Any, Any, Any],
    status: FromQuery[Literal["open", "pending", "snoozed", "resolved"] | None] = None,
    channel_id: FromQuery[str | None] = None,
    contact_id: FromQuery[str | None] = None,
    limit: Limit = 50,
    before: FromQuery[str | None] = None,
) -> Page:
    """Conversations of the caller's workspace, filtered."""
    principal = await require(request, "conversations:read")
    activity = func.coalesce(Conversation.last_message_at, Conversation.created_at)
    stmt = (
        select(Conversation, ChannelRow.kind)
        .join(ChannelRow, ChannelRow.id == Conversation.channel_id)
        .where(Conversation.workspace_id == principal.workspace_id)
        .order_by(activity.desc(), Conversation.id.desc())
        .limit(limit + 1)
    )
    if status:
        stmt = stmt.where(Conversation.status == status)
    if channel_id:
        stmt = stmt.where(Conversation.channel_id == channel_id)
    if contact_id:
        stmt = stmt.where(Conversation.contact_id == contact_id)
    async with _runtime(request).sessions() as session:
        if before:
            cursor = await session.scalar(
                select(activity).where(
                    Conversation.id == before, Conversation.workspace_id == principal.workspace_id
                )
            )
            if cursor is None:
                raise ApiError(
                    "invalid_cursor", "`before` names no conversation of this workspace", 404
                )
            stmt = stmt.where(tuple_(activity, Conversation.id) < tuple_(cursor, before))
        rows = (await session.execute(stmt)).all()
    items = [_conversation_out(c, kind) for c, kind in rows[:limit]]
    return Page(items=items, next_before=items[-1].id if len(rows) > limit else None)


@get(
    "/conversations/{conversation_id:str}", responses=ERROR_RESPONSES, summary="Read a conversation"
)
async def read_conversation(
    request: Request[Any, Any, Any], conversation_id: FromPath[str]
) -> ConversationOut:
    """One conversation."""
    principal = await require(request, "conversations:read")
    async with _runtime(request).sessions() as session:
        conv, channel = await _conversation(session, principal, conversation_id)
    return _conversation_out(conv, channel.kind)


@get(
    "/conversations/{conversation_id:str}/messages",
    responses=ERROR_RESPONSES,
    summary="Read a conversation's messages, newest first",
)
async def list_messages(
    request: Request[Any, Any, Any],
    conversation_id: FromPath[str],
    limit: Limit = 50,
    before: FromQuery[str | None] = None,
) -> Page:
    """Messages of one conversation, newest first, paged by `before`."""
    principal = await require(request, "conversations:read")
    async with _runtime(request).sessions() as session:
        await _conversation(session, principal, conversation_id)
        stmt = (
            select(Message)
            .where(
                Message.conversation_id == conversation_id,
                Message.workspace_id == principal.workspace_id,
            )
            .order_by(Message.id.desc())
            .limit(limit + 1)
        )
        if before:
            stmt = stmt.where(Message.id < before)
        rows = list(await session.scalars(stmt))
        items = [
            _message_out(m, await _withheld(_runtime(request), session, m)) for m in rows[:limit]
        ]
    return Page(items=items, next_before=items[-1].id if len(rows) > limit else None)


async def _message_event(runtime: Runtime, message: Message) -> None:
    """Tell live inboxes about a message the API queued (after the commit)."""
    await runtime.events.publish(
        Event(
            message.workspace_id, MESSAGE_NEW, message.conversation_id, {"message_id": message.id}
        )
    )


def _content(data: SendRequest | SendToRequest) -> OutboundContent:
    return OutboundContent(kind=ContentKind(data.kind), body=data.body, payload=data.payload or {})


async def _send_canned(
    runtime: Runtime,
    session: AsyncSession,
    conv: Conversation,
    channel: ChannelRow,
    data: SendRequest,
) -> Message:
    """A workspace canned reply as the inbox sends it: text, use counted, then its file."""
    if data.body is not None or data.payload is not None or data.kind != "text":
        raise ApiError("invalid_request", "send either canned or kind/body/payload, not both", 422)
    reply = await canned.workspace_reply(session, conv.workspace_id, data.canned or "")
    if reply is None:
        raise ApiError("not_found", "no workspace-wide canned reply with this shortcut", 404)
    if reply.attachment and not channel_factory(channel.kind).capabilities.media:
        raise OutboundRefused("no_media", "{kind} cannot send files", params={"kind": channel.kind})
    contact = await session.get_one(Contact, conv.contact_id)
    workspace = await session.get_one(Workspace, conv.workspace_id)
    name = contact.display_name or ""
    values = {"first_name": name.split(" ")[0], "name": name, "agent_name": "",
              "business": workspace.name}  # fmt: skip
    language = str((contact.attributes or {}).get("language") or "") or str(
        (workspace.settings or {}).get("language") or ""
    )
    message = await queue_message(
        session,
        conv,
        channel,
        OutboundContent(ContentKind.TEXT, canned.fill(reply, language, values)),
        sender_kind=SenderKind.AGENT,
        max_attempts=runtime.settings.max_send_attempts,
    )
    await canned.count_use(session, reply.id)
    if reply.attachment:
        settings = runtime.settings
        files = canned.Files(
            runtime.files,
            settings.base_url,
            ensure_secret_key(settings).secret_key,
            settings.max_media_bytes,
        )
        try:
            await canned.send_attachment(session, conv, channel, reply, files)
        except (canned.CannedError, MediaRefused) as exc:
            raise ApiError("canned_file", str(exc), 422) from None
    return message


@post(
    "/conversations/{conversation_id:str}/messages",
    responses=ERROR_RESPONSES,
    status_code=202,
    summary="Send a message into a conversation",
)
async def send_message(
    request: Request[Any, Any, Any], conversation_id: FromPath[str], data: JSONBody[SendRequest]
) -> MessageOut:
    """Queue a message; it is sent by a worker and its state moves as the provider reports."""
    principal = await require(request, "messages:send")
    runtime = _runtime(request)
    async with runtime.sessions() as session, session.begin():
        conv, channel = await _conversation(session, principal, conversation_id)
        if data.canned is not None:
            message = await _send_canned(runtime, session, conv, channel, data)
        else:
            message = await queue_message(
                session,
                conv,
                channel,
                _content(data),
                sender_kind=SenderKind.AGENT,
                max_attempts=runtime.settings.max_send_attempts,
            )
    runtime.jobs_ready.set()
    await _message_event(runtime, message)
    return _message_out(message)


@post(
    "/messages",
    responses=ERROR_RESPONSES,
    status_code=202,
    summary="Send a message to an address on a channel",
)
async def send_to(request: Request[Any, Any, Any], data: JSONBody[SendToRequest]) -> MessageOut:
    """Queue a message to a channel address; outside the window only templates are allowed."""
    principal = await require(request, "messages:send")
    runtime = _runtime(request)
    async with runtime.sessions() as session, session.begin():
        channel = await session.scalar(
            select(ChannelRow).where(
                ChannelRow.id == data.channel_id, ChannelRow.workspace_id == principal.workspace_id
            )
        )
        if channel is None:
            raise ApiError("not_found", "no channel with this id", 404)
        identity = await session.scalar(
            select(ContactIdentity).where(
                ContactIdentity.channel_id == channel.id, ContactIdentity.address == data.to
            )
        )
        if identity is None:
            if data.kind != "template":
                raise OutboundRefused(
                    "window_closed",
                    f"{data.to!r} has never written to this {channel.kind} channel; the first message "
                    "must be an approved template",
                )
            raise ApiError(
                "unknown_recipient",
                "no contact with this address on this channel yet",
                404,
            )
        conv_id = await conversation_for(
            session,
            ChannelRef(channel.id, channel.workspace_id, channel.kind),
            identity.id,
            identity.contact_id,
        )
        conv = await session.get_one(Conversation, conv_id)
        message = await queue_message(
            session,
            conv,
            channel,
            _content(data),
            sender_kind=SenderKind.SYSTEM,
            max_attempts=runtime.settings.max_send_attempts,
        )
    runtime.jobs_ready.set()
    await _message_event(runtime, message)
    return _message_out(message)


@get(
    "/messages/{message_id:str}",
    responses=ERROR_RESPONSES,
    summary="Read one message and its delivery state",
)
async def read_message(request: Request[Any, Any, Any], message_id: FromPath[str]) -> MessageOut:
    """One message."""
    principal = await require(request, "conversations:read")
    async with _runtime(request).sessions() as session:
        m = await session.scalar(
            select(Message).where(
                Message.id == message_id, Message.workspace_id == principal.workspace_id
            )
        )
        if m is None:
            raise ApiError("not_found", "no message with this id", 404)
        return _message_out(m, await _withheld(_runtime(request), session, m))


@get(
    "/contacts/{contact_id:str}",
    responses=ERROR_RESPONSES,
    summary="Read a contact and their channel identities",
)
async def read_contact(request: Request[Any, Any, Any], contact_id: FromPath[str]) -> ContactOut:
    """One contact."""
    principal = await require(request, "contacts:read")
    async with _runtime(request).sessions() as session:
        contact = await session.scalar(
            select(Contact).where(
                Contact.id == contact_id, Contact.workspace_id == principal.workspace_id
            )
        )
        if contact is None:
            raise ApiError("not_found", "no contact with this id", 404)
        identities = list(
            await session.scalars(
                select(ContactIdentity).where(ContactIdentity.contact_id == contact.id)
            )
        )
    return ContactOut(
        id=contact.id,
        display_name=contact.display_name,
        attributes=contact.attributes or {},
        identities=[
            IdentityOut(i.channel_id, i.address, i.display_name, i.unreachable) for i in identities
        ],
        created_at=contact.created_at,
        merged_into_id=contact.merged_into_id,
        restricted_at=contact.restricted_at,
    )


class ErasureOut(msgspec.Struct):
    """What an erasure removed, and what it kept as proof (counts only)."""

    contact_id: str
    identities: int
    conversations: int
    messages: int
    notes: int
    jobs: int
    pending_statuses: int
    files: int
    consent_events_kept: int
    link_clicks: int = 0


@get(
    "/contacts/{contact_id:str}/export",
    responses={
        **ERROR_RESPONSES,
        200: ResponseSpec(
            data_container=bytes,
            media_type="application/zip",
            description="A ZIP: README.txt, data.json, messages.jsonl, index.html, media/",
        ),
    },
    summary="Export everything stored about a contact (Art. 15/20 GDPR) as a ZIP",
)
async def export_contact(request: Request[Any, Any, Any], contact_id: FromPath[str]) -> File:
    """The contact's data as a ZIP of documented JSON and a readable page; the export is audited."""
    principal = await require(request, "privacy:export")
    runtime = _runtime(request)
    path = await _export_file(
        runtime, principal.workspace_id, contact_id, None, f"api token {principal.token_id}"
    )
    return File(
        path,
        filename=f"contact-{contact_id}.zip",
        media_type="application/zip",
        background=unlink_later(path),
    )


async def _export_file(
    runtime: Runtime, workspace_id: str, contact_id: str, actor_id: str | None, via: str
) -> Path:
    """An audited export in a temporary file; 404 when there is no such contact."""

    try:
        return await export_to_file(
            runtime.sessions,
            workspace_id=workspace_id,
            contact_id=contact_id,
            data_dir=runtime.settings.data_dir,
            files=runtime.files,
            actor_id=actor_id,
            via=via,
        )
    except ContactNotFound as exc:
        raise ApiError("not_found", "no contact with this id", 404) from exc


def unlink_later(path: Path) -> BackgroundTask:
    """A task that deletes a sent file."""
    return BackgroundTask(_unlink, path)


def _unlink(path: Path) -> None:
    path.unlink(missing_ok=True)


@delete(
    "/contacts/{contact_id:str}",
    responses=ERROR_RESPONSES,
    status_code=200,
    summary="Erase a contact everywhere (Art. 17 GDPR); keeps only the proof",
)
async def erase_contact(request: Request[Any, Any, Any], contact_id: FromPath[str]) -> ErasureOut:
    """Erase the contact, their messages, notes, files and queued sends; audited."""

    principal = await require(request, "privacy:erase")
    runtime = _runtime(request)
    try:
        async with runtime.sessions() as session:
            report = await erase(
                runtime.engine,
                session,
                secret_key=runtime.settings.secret_key,
                files=runtime.files,
                events=runtime.events,
                workspace_id=principal.workspace_id,
                contact_id=contact_id,
                actor_id=None,
                via=f"api token {principal.token_id}",
            )
    except ContactNotFound as exc:
        raise ApiError("not_found", "no contact with this id", 404) from exc
    return ErasureOut(contact_id=contact_id, **report.counts())


class RestrictionOut(msgspec.Struct):
    """Whether processing of a contact's data is restricted (Art. 18 GDPR), and since when."""

    contact_id: str
    restricted: bool
    restricted_at: datetime | None


async def _restrict(request: Request[Any, Any, Any], contact_id: str, on: bool) -> RestrictionOut:

    principal = await require(request, "privacy:restrict")
    try:
        async with _runtime(request).sessions() as session, session.begin():
            contact = await set_restricted(
                session,
                principal.workspace_id,
                contact_id,
                on,
                actor_id=None,
                via=f"api token {principal.token_id}",
            )
    except ContactNotFound as exc:
        raise ApiError("not_found", "no contact with this id", 404) from exc
    return RestrictionOut(contact.id, contact.restricted_at is not None, contact.restricted_at)


@post(
    "/contacts/{contact_id:str}/restriction",
    responses=ERROR_RESPONSES,
    status_code=200,
    summary="Restrict processing of a contact's data (Art. 18 GDPR): kept, not processed",
)
async def restrict_contact(
    request: Request[Any, Any, Any], contact_id: FromPath[str]
) -> RestrictionOut:
    """No bot, replies, broadcasts or routing for the contact; their data is kept; audited."""
    return await _restrict(request, contact_id, True)


@delete(
    "/contacts/{contact_id:str}/restriction",
    responses=ERROR_RESPONSES,
    status_code=200,
    summary="Lift the restriction of a contact (Art. 18 GDPR)",
)
async def unrestrict_contact(
    request: Request[Any, Any, Any], contact_id: FromPath[str]
) -> RestrictionOut:
    """Processing may resume; audited."""
    return await _restrict(request, contact_id, False)


@get("/channels", responses=ERROR_RESPONSES, summary="List connected channels")
async def channels(request: Request[Any, Any, Any]) -> list[ChannelOut]:
    """Channels of the caller's workspace, without secrets."""
    principal = await require(request, "channels:read")
    runtime = _runtime(request)
    async with runtime.sessions() as session:
        rows = await list_channels(session, principal.workspace_id)
    return [
        ChannelOut(r.id, r.kind, r.name, r.enabled, webhook_url(runtime.settings.base_url, r))
        for r in rows
    ]


@get("/jobs/dead", responses=ERROR_RESPONSES, summary="List jobs that exhausted their retries")
async def dead_letters(request: Request[Any, Any, Any], limit: Limit = 100) -> list[JobOut]:
    """The dead letters."""
    principal = await require(request, "jobs:manage")
    async with _runtime(request).sessions() as session:
        jobs = await queue.dead_jobs(session, principal.workspace_id, limit)
    return [JobOut(j.id, j.kind, j.payload, j.attempts, j.last_error, j.updated_at) for j in jobs]


@post(
    "/jobs/{job_id:str}/retry",
    responses=ERROR_RESPONSES,
    status_code=202,
    summary="Retry a dead job",
)
async def retry_job(request: Request[Any, Any, Any], job_id: FromPath[str]) -> JobOut:
    """Give a dead job a fresh set of attempts; its message goes back to queued."""
    principal = await require(request, "jobs:manage")
    runtime = _runtime(request)
    async with runtime.sessions() as session, session.begin():
        job = await session.scalar(
            select(Job).where(
                Job.id == job_id, Job.workspace_id == principal.workspace_id, Job.state == "dead"
            )
        )
        if job is None:
            raise ApiError("not_found", "no dead job with this id", 404)
        await queue.revive(session, job.id)
        message_id = job.payload.get("message_id")
        if message_id:
            m = await session.get(Message, message_id)
            if m is not None and m.state == DeliveryState.DEAD.value:
                m.state, m.error_code, m.error_reason, m.failed_at = (
                    DeliveryState.QUEUED.value,
                    None,
                    None,
                    None,
                )
        await session.refresh(job)
    runtime.jobs_ready.set()
    return JobOut(job.id, job.kind, job.payload, job.attempts, job.last_error, job.updated_at)


api_router = Router(
    path="/api/v1",
    route_handlers=[
        list_conversations,
        read_conversation,
        list_messages,
        send_message,
        send_to,
        read_message,
        read_contact,
        export_contact,
        erase_contact,
        restrict_contact,
        unrestrict_contact,
        channels,
        dead_letters,
        retry_job,
    ],
    security=[{"BearerToken": []}],
    before_request=authenticate_first,
)
