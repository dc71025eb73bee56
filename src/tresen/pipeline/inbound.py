"""Store what a verified webhook carried: contacts, conversations, messages and statuses."""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Connection, Table, bindparam, case, delete, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from tresen.channels.base import (
    OTHER_APP,
    ChannelRef,
    InboundMessage,
    ParsedWebhook,
    StatusUpdate,
    ThreadOwner,
)
from tresen.db.outbox import record, record_rows, row_values
from tresen.db.tables import (
    Contact,
    ContactIdentity,
    Conversation,
    Message,
    PendingStatus,
)
from tresen.db.types import utcnow
from tresen.db.upsert import rowcount
from tresen.domain.conversation import ConversationStatus
from tresen.domain.events import (
    ConversationCreated,
    ConversationStatusChanged,
    DomainEvent,
    MessageReceived,
    MessageStatusChanged,
)
from tresen.domain.ids import new_id
from tresen.domain.message import (
    ContentKind,
    DeliveryState,
    Direction,
    SenderKind,
    states_below,
)
from tresen.domain.text import strip_control_deep
from tresen.jobs import queue
from tresen.pipeline import media as media_schedule

ACK_JOB = "channel.acknowledge"


@dataclass
class IngestResult:
    """What one webhook changed."""

    new_message_ids: list[str] = field(default_factory=list)
    duplicate_messages: int = 0
    applied_statuses: int = 0
    pending_statuses: int = 0
    pending_ids: list[str] = field(default_factory=list)
    """Provider ids of the statuses kept as pending (looked at again after the commit)."""
    stale_statuses: int = 0
    conversation_ids: set[str] = field(default_factory=set)
    message_conversations: dict[str, str] = field(default_factory=dict)


async def ingest(session: AsyncSession, channel: ChannelRef, parsed: ParsedWebhook) -> IngestResult:
    """Write a parsed webhook in the caller's transaction.

    The hot path of every webhook: each message (and all statuses together) runs as one
    synchronous unit inside the session's greenlet (one hop instead of one per statement) and
    executes prebuilt Core statements on the session's connection (compiled once, no ORM
    bookkeeping). The status path does what `apply_status` does, statement for statement.
    """
    result = IngestResult()
    now = utcnow()
    parsed = storable(parsed)
    for message in parsed.messages:
        stored_before = len(result.new_message_ids)
        await _store_message(session, channel, message, now, result)
        # Everything slower than storing (consent, bot, routing) follows the message's
        # `message.received` event (handlers/events.py, consumer "process").
        stored = len(result.new_message_ids) > stored_before
        if stored and message.content_kind in (ContentKind.MEDIA, ContentKind.TEXT):
            # Files may come with text too (an e-mail with attachments).
            media_schedule.schedule(
                session,
                channel.workspace_id,
                channel.kind,
                result.new_message_ids[-1],
                message.payload,
            )
        if stored and message.acknowledgement is not None:
            queue.enqueue(
                session,
                ACK_JOB,
                {"channel_id": channel.id, "data": message.acknowledgement},
                workspace_id=channel.workspace_id,
                max_attempts=3,
            )
    watermarks = [s for s in parsed.statuses if s.watermark is not None]
    if watermarks:
        parsed = ParsedWebhook(
            parsed.messages,
            [s for s in parsed.statuses if s.watermark is None],
            parsed.errors,
            parsed.threads,
        )
        for status in watermarks:
            await _apply_watermark(session, channel.id, status, result)
    statuses, i = parsed.statuses, 0
    while i < len(statuses):
        i = await session.run_sync(_apply_statuses_sync, channel.id, statuses, i, result)
        if i < len(statuses):  # a status naming our message id (rare): the full path
            await apply_status(session, channel.id, statuses[i], result)
            i += 1
    for thread in parsed.threads:
        await _apply_thread_owner(session, channel.id, thread, result)
    return result


async def _apply_thread_owner(
    session: AsyncSession, channel_id: str, thread: ThreadOwner, result: IngestResult
) -> None:
    """Record who owns a customer's thread, unless a later report said otherwise."""
    identity = (
        select(ContactIdentity.id)
        .where(ContactIdentity.channel_id == channel_id, ContactIdentity.address == thread.address)
        .scalar_subquery()
    )
    stmt = (
        update(Conversation)
        .where(
            Conversation.channel_id == channel_id,
            Conversation.identity_id == identity,
            or_(
                Conversation.thread_changed_at.is_(None),
                Conversation.thread_changed_at <= thread.occurred_at,
            ),
        )
        .values(thread_owner=thread.owner, thread_changed_at=thread.occurred_at)
        .returning(Conversation.id)
    )
    if thread.owner is None:
        # Most messages confirm that tresen owns the thread: only a change is written.
        stmt = stmt.where(Conversation.thread_owner.is_not(None))
    elif thread.owner == OTHER_APP:
        # A message read along: some app owns the thread; an owner named before stays.
        stmt = stmt.where(Conversation.thread_owner.is_(None))
    else:
        stmt = stmt.where(
            or_(Conversation.thread_owner.is_(None), Conversation.thread_owner != thread.owner)
        )
    changed = (await session.execute(stmt)).scalars().all()
    result.conversation_ids.update(changed)


async def keep_own_statuses(
    session: AsyncSession, channel_id: str, parsed: ParsedWebhook
) -> ParsedWebhook:
    """Drop statuses whose client reference names no outbound message of this channel.

    For channels where anybody can send a status-like message (an XMPP receipt, a bounce
    mail): only statuses about our own messages are kept, so nobody fills the table of
    statuses waiting for their message.
    """
    refs = {s.client_reference for s in parsed.statuses if s.client_reference}
    known: set[str] = set()
    if refs:
        known = set(
            await session.scalars(
                select(Message.id).where(
                    Message.id.in_(refs),
                    Message.channel_id == channel_id,
                    Message.direction == Direction.OUTBOUND.value,
                )
            )
        )
    kept = [s for s in parsed.statuses if s.client_reference in known]
    if len(kept) == len(parsed.statuses):
        return parsed
    return ParsedWebhook(parsed.messages, kept, parsed.errors, parsed.threads)


def _storable_event(event: Any) -> Any:
    changes = {
        f.name: strip_control_deep(getattr(event, f.name))
        for f in fields(event)
        if type(getattr(event, f.name)) in (str, dict)  # enums stay as they are
    }
    return replace(event, **changes)


def storable(parsed: ParsedWebhook) -> ParsedWebhook:
    """The webhook's events with control characters removed from every text (all channels)."""
    return ParsedWebhook(
        [_storable_event(m) for m in parsed.messages],
        [_storable_event(s) for s in parsed.statuses],
        parsed.errors,
        parsed.threads,
    )


async def conversation_for(
    session: AsyncSession, channel: ChannelRef, identity_id: str, contact_id: str
) -> str:
    """The conversation of an identity on a channel, created when new."""

    def run(sync_session: Session) -> str:
        conn = _connection(sync_session)
        events: list[DomainEvent] = []
        found, _resolved = _conversation_sync(
            conn, _statements(conn), channel, identity_id, contact_id, events
        )
        _write_events(sync_session, events)
        return found

    return await session.run_sync(run)


async def _store_message(
    session: AsyncSession,
    channel: ChannelRef,
    msg: InboundMessage,
    now: datetime,
    result: IngestResult,
) -> None:
    """Store one inbound message (with its contact and conversation when new), once."""
    await session.run_sync(_store_message_in_session, channel, msg, now, result)


_TIME_COLUMN = {
    DeliveryState.SENT: "sent_at",
    DeliveryState.DELIVERED: "delivered_at",
    DeliveryState.READ: "read_at",
    DeliveryState.FAILED: "failed_at",
}


async def apply_status(
    session: AsyncSession,
    channel_id: str,
    status: StatusUpdate,
    result: IngestResult | None = None,
    *,
    may_retry: bool = True,
) -> None:
    """Move an outbound message forward, or keep the status until its send is recorded."""
    result = result if result is not None else IngestResult()
    if await session.run_sync(_apply_statuses_sync, channel_id, [status], 0, result):
        return
    # The status names our message id and no message has its provider id yet.
    if await _attach_provider_id(session, channel_id, status):
        await apply_status(session, channel_id, status, result, may_retry=False)
        await apply_pending_statuses(session, channel_id, status.provider_message_id)
        return
    if may_retry:
        # A concurrent webhook may have attached the id while we waited for the row lock;
        # a new statement sees its commit.
        await apply_status(session, channel_id, status, result, may_retry=False)
        return
    await session.run_sync(_keep_pending_in_session, channel_id, status, result)


_KEPT_WATERMARK = {DeliveryState.DELIVERED: "delivered_until", DeliveryState.READ: "read_until"}
"""The conversation column that keeps a watermark of this state for sends recorded later."""


def _watermark_values(state: DeliveryState, at: datetime) -> dict[str, object]:
    """The message columns a watermark of `state`, reported at `at`, sets."""
    values: dict[str, object] = {"state": state.value}
    if state in _TIME_COLUMN:
        values[_TIME_COLUMN[state]] = at
    if state == DeliveryState.READ:  # read implies delivered (a stale delivered comes later)
        values["delivered_at"] = func.coalesce(Message.delivered_at, at)
    return values


async def _keep_watermark(
    session: AsyncSession, channel_id: str, status: StatusUpdate
) -> tuple[str, str] | None:
    """Find the recipient's conversation, keeping a plain watermark on it; (id, workspace)."""
    assert status.watermark is not None
    identity = (
        select(ContactIdentity.id)
        .where(
            ContactIdentity.channel_id == channel_id,
            ContactIdentity.address == status.recipient_address,
        )
        .scalar_subquery()
    )
    mine = (Conversation.channel_id == channel_id, Conversation.identity_id == identity)
    column = _KEPT_WATERMARK.get(status.state)
    if column is None or status.provider_message_id:
        # A mark at one message id (Instagram) is kept as that message's own pending status.
        found = await session.execute(
            select(Conversation.id, Conversation.workspace_id).where(*mine)
        )
    else:
        # Moving the mark takes the conversation's row lock before any message is looked at;
        # `apply_kept_watermarks` takes it too, so a send recorded meanwhile is seen by one side.
        kept = getattr(Conversation, column)
        found = await session.execute(
            update(Conversation)
            .where(*mine)
            .values(
                {
                    column: case(
                        (or_(kept.is_(None), kept < status.watermark), status.watermark),
                        else_=kept,
                    )
                }
            )
            .returning(Conversation.id, Conversation.workspace_id)
        )
    row = found.first()
    return (row[0], row[1]) if row is not None else None


async def _apply_watermark(
    session: AsyncSession, channel_id: str, status: StatusUpdate, result: IngestResult
) -> None:
    """Move every outbound message to one recipient, sent up to the watermark, forward."""
    assert status.watermark is not None
    conversation = await _keep_watermark(session, channel_id, status)
    if conversation is None:
        return
    conversation_id, workspace_id = conversation
    bound: list[Any] = [Message.sent_at <= status.watermark]
    if status.provider_message_id:
        # "Up to this message" (Instagram's read of one message): its send time is the mark;
        # an unknown id marks nothing (its own status waits for the send record).
        named = (
            select(Message.sent_at)
            .where(
                Message.channel_id == channel_id,
                Message.provider_message_id == status.provider_message_id,
            )
            .limit(1)
            .scalar_subquery()
        )
        bound.append(Message.sent_at <= named)
    updated = await session.execute(
        update(Message)
        .where(
            Message.conversation_id == conversation_id,
            Message.direction == Direction.OUTBOUND.value,
            Message.provider_message_id.is_not(None),
            *bound,
            Message.state.in_([s.value for s in states_below(status.state)]),
        )
        .values(**_watermark_values(status.state, status.occurred_at))
    )
    moved = rowcount(updated)
    result.applied_statuses += moved
    if moved:
        result.conversation_ids.add(conversation_id)
        record(session, MessageStatusChanged(workspace_id, conversation_id, status.state.value))


async def apply_kept_watermarks(
    session: AsyncSession, conversation_id: str, message_id: str
) -> DeliveryState | None:
    """Move a just-sent message forward by the watermarks its conversation kept; the new state.

    Takes the conversation's row lock (PostgreSQL): a watermark webhook either committed before
    (its mark is read here) or waits and then sees the message sent (`_keep_watermark`)."""
    kept = (
        await session.execute(
            select(Conversation.read_until, Conversation.delivered_until)
            .where(Conversation.id == conversation_id)
            .with_for_update()
        )
    ).first()
    if kept is None:
        return None
    for state, until in zip((DeliveryState.READ, DeliveryState.DELIVERED), kept, strict=True):
        if until is None:
            continue
        moved = await session.execute(
            update(Message)
            .where(
                Message.id == message_id,
                Message.sent_at <= until,
                Message.state.in_([s.value for s in states_below(state)]),
            )
            .values(**_watermark_values(state, until))
        )
        if rowcount(moved):
            return state
    return None


async def _attach_provider_id(session: AsyncSession, channel_id: str, status: StatusUpdate) -> bool:
    """Attach a provider id to our message whose send outcome we never learned (timeout, crash)."""
    updated = await session.execute(
        update(Message)
        .where(
            Message.id == status.client_reference,
            Message.channel_id == channel_id,
            Message.direction == Direction.OUTBOUND.value,
            Message.provider_message_id.is_(None),
        )
        .values(provider_message_id=status.provider_message_id)
    )
    return rowcount(updated) > 0


async def apply_pending_statuses(
    session: AsyncSession, channel_id: str, provider_message_id: str
) -> int:
    """Apply statuses that arrived before the send completed; returns how many."""
    known = await session.scalar(
        select(Message.id).where(
            Message.channel_id == channel_id, Message.provider_message_id == provider_message_id
        )
    )
    if known is None:
        return 0  # still no message with this provider id: the statuses stay pending
    rows = (
        (
            await session.execute(
                select(PendingStatus).where(
                    PendingStatus.channel_id == channel_id,
                    PendingStatus.provider_message_id == provider_message_id,
                )
            )
        )
        .scalars()
        .all()
    )
    for row in rows:
        await apply_status(
            session,
            channel_id,
            StatusUpdate(
                provider_message_id=provider_message_id,
                state=DeliveryState(row.state),
                occurred_at=row.occurred_at or row.received_at,
                error_code=row.error_code,
                error_reason=row.error_reason,
            ),
        )
    if rows:
        await session.execute(
            delete(PendingStatus).where(
                PendingStatus.channel_id == channel_id,
                PendingStatus.provider_message_id == provider_message_id,
            )
        )
    return len(rows)


# ---------------------------------------------------------------------------------------------
# The webhook hot path: the same steps as `_store_message` / `apply_status`, as prebuilt Core
# statements executed on the transaction's connection.


class _Statements:
    """The statements of the ingest path for one SQL dialect, built once."""

    def __init__(self, dialect: str) -> None:
        dialect_insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        m = cast(Table, Message.__table__)
        ci = cast(Table, ContactIdentity.__table__)
        cv = cast(Table, Conversation.__table__)
        ps = cast(Table, PendingStatus.__table__)
        contacts = cast(Table, Contact.__table__)
        self.find_message = select(m.c.id).where(
            m.c.channel_id == bindparam("b_channel"), m.c.provider_message_id == bindparam("b_pmid")
        )
        self.count_message = (
            select(func.count())
            .select_from(m)
            .where(
                m.c.channel_id == bindparam("b_channel"),
                m.c.provider_message_id == bindparam("b_pmid"),
            )
        )
        self.find_identity = select(
            ci.c.id, ci.c.contact_id, ci.c.display_name, ci.c.unreachable
        ).where(ci.c.channel_id == bindparam("b_channel"), ci.c.address == bindparam("b_address"))
        self.reachable_again = (
            update(ci).where(ci.c.id == bindparam("b_id")).values(unreachable=False)
        )
        self.rename_identity = (
            update(ci).where(ci.c.id == bindparam("b_id")).values(display_name=bindparam("b_name"))
        )
        self.insert_contact = contacts.insert()
        self.insert_identity = dialect_insert(ci).on_conflict_do_nothing()
        self.delete_contact = delete(contacts).where(contacts.c.id == bindparam("b_id"))
        self.find_conversation = select(cv.c.id, cv.c.status).where(
            cv.c.channel_id == bindparam("b_channel"), cv.c.identity_id == bindparam("b_identity")
        )
        self.insert_conversation = dialect_insert(cv).on_conflict_do_nothing()
        self.insert_message = dialect_insert(m).on_conflict_do_nothing()
        window_start = bindparam("b_window", type_=cv.c.last_inbound_at.type)
        self.touch_conversation = (
            update(cv)
            .where(cv.c.id == bindparam("b_id"))
            .values(
                last_inbound_at=case(
                    (cv.c.last_inbound_at.is_(None), window_start),
                    (cv.c.last_inbound_at < window_start, window_start),
                    else_=cv.c.last_inbound_at,
                ),
                last_message_at=bindparam("b_now", type_=cv.c.last_message_at.type),
                status=case(
                    (
                        cv.c.status == ConversationStatus.RESOLVED.value,
                        ConversationStatus.OPEN.value,
                    ),
                    else_=cv.c.status,
                ),
            )
        )
        self.advance: dict[DeliveryState, Any] = {}
        for state in DeliveryState:
            values: dict[str, object] = {"state": bindparam("b_state")}
            column = _TIME_COLUMN.get(state)
            if column:
                values[column] = bindparam("b_at", type_=m.c[column].type)
            # Read implies delivered and delivered implies sent: when statuses are stored out of
            # order the skipped step (now stale) still gets a time, at the latest this one.
            implied = {
                DeliveryState.DELIVERED: ("sent_at",),
                DeliveryState.READ: ("sent_at", "delivered_at"),
            }.get(state, ())
            for earlier in implied:
                values[earlier] = func.coalesce(
                    m.c[earlier], bindparam("b_at", type_=m.c[earlier].type)
                )
            if state == DeliveryState.FAILED:
                values["error_code"] = bindparam("b_error_code", type_=m.c.error_code.type)
                values["error_reason"] = bindparam("b_error_reason", type_=m.c.error_reason.type)
            self.advance[state] = (
                update(m)
                .where(
                    m.c.channel_id == bindparam("b_channel"),
                    m.c.provider_message_id == bindparam("b_pmid"),
                    m.c.direction == Direction.OUTBOUND.value,
                    m.c.state.in_([s.value for s in states_below(state)]),
                )
                .values(**values)
                .returning(m.c.conversation_id, m.c.id, m.c.workspace_id)
            )
        self.insert_pending = dialect_insert(ps).on_conflict_do_nothing()


_STATEMENTS: dict[str, _Statements] = {}


def _statements(conn: Connection) -> _Statements:
    name = conn.dialect.name
    found = _STATEMENTS.get(name)
    if found is None:
        found = _STATEMENTS[name] = _Statements(name)
    return found


def _connection(session: Session) -> Connection:
    session.flush()  # what an ORM execute would autoflush first (nothing, on a fresh session)
    return session.connection()


def _write_events(session: Session, events: list[DomainEvent]) -> None:
    if events:
        now = utcnow()
        record_rows(session, [row_values(e, now) for e in events])


def _store_message_in_session(
    session: Session, channel: ChannelRef, msg: InboundMessage, now: datetime, result: IngestResult
) -> None:
    conn = _connection(session)
    events: list[DomainEvent] = []
    _store_message_sync(conn, _statements(conn), channel, msg, now, result, events)
    _write_events(session, events)


def _apply_statuses_sync(
    session: Session,
    channel_id: str,
    statuses: list[StatusUpdate],
    start: int,
    result: IngestResult,
) -> int:
    """Apply statuses from `start` on; returns the index of one that needs `apply_status`, or the end."""
    conn = _connection(session)
    q = _statements(conn)
    events: list[DomainEvent] = []
    try:
        for i in range(start, len(statuses)):
            if not _apply_status_sync(conn, q, channel_id, statuses[i], result, events):
                return i
        return len(statuses)
    finally:
        _write_events(session, events)


def _identity_sync(
    conn: Connection, q: _Statements, channel: ChannelRef, msg: InboundMessage
) -> tuple[str, str]:
    key = {"b_channel": channel.id, "b_address": msg.sender_address}
    row = conn.execute(q.find_identity, key).first()
    if row is not None:
        if row.unreachable:
            # The customer wrote again (unblocked the bot, texted START): they can be reached.
            conn.execute(q.reachable_again, {"b_id": row.id})
        if msg.sender_name and row.display_name != msg.sender_name:
            conn.execute(q.rename_identity, {"b_id": row.id, "b_name": msg.sender_name})
        return row.id, row.contact_id
    now = utcnow()
    contact_id, identity_id = new_id(), new_id()
    conn.execute(
        q.insert_contact,
        {
            "id": contact_id,
            "workspace_id": channel.workspace_id,
            "display_name": msg.sender_name,
            "attributes": {},
            "created_at": now,
            "updated_at": now,
        },
    )
    inserted = conn.execute(
        q.insert_identity,
        {
            "id": identity_id,
            "workspace_id": channel.workspace_id,
            "contact_id": contact_id,
            "channel_id": channel.id,
            "address": msg.sender_address,
            "display_name": msg.sender_name,
            "unreachable": False,
            "created_at": now,
        },
    )
    if rowcount(inserted):
        return identity_id, contact_id
    conn.execute(q.delete_contact, {"b_id": contact_id})
    row = conn.execute(q.find_identity, key).one()
    return row.id, row.contact_id


def _conversation_sync(
    conn: Connection,
    q: _Statements,
    channel: ChannelRef,
    identity_id: str,
    contact_id: str,
    events: list[DomainEvent],
) -> tuple[str, bool]:
    """The conversation's id, and whether it was resolved (a new message reopens it)."""
    key = {"b_channel": channel.id, "b_identity": identity_id}
    found = conn.execute(q.find_conversation, key).first()
    if found is not None:
        return str(found.id), found.status == ConversationStatus.RESOLVED.value
    conversation_id = new_id()
    inserted = conn.execute(
        q.insert_conversation,
        {
            "id": conversation_id,
            "workspace_id": channel.workspace_id,
            "channel_id": channel.id,
            "contact_id": contact_id,
            "identity_id": identity_id,
            "status": ConversationStatus.OPEN.value,
            "created_at": utcnow(),
        },
    )
    if rowcount(inserted):
        events.append(
            ConversationCreated(channel.workspace_id, conversation_id, contact_id, channel.id)
        )
        return conversation_id, False
    found = conn.execute(q.find_conversation, key).first()
    if found is None:
        return "", False
    return str(found.id), found.status == ConversationStatus.RESOLVED.value


def _store_message_sync(
    conn: Connection,
    q: _Statements,
    channel: ChannelRef,
    msg: InboundMessage,
    now: datetime,
    result: IngestResult,
    events: list[DomainEvent],
) -> None:
    exists = conn.execute(
        q.find_message, {"b_channel": channel.id, "b_pmid": msg.provider_message_id}
    ).scalar()
    if exists:
        result.duplicate_messages += 1
        return
    identity_id, contact_id = _identity_sync(conn, q, channel, msg)
    conversation_id, reopens = _conversation_sync(conn, q, channel, identity_id, contact_id, events)
    message_id = new_id()
    inserted = conn.execute(
        q.insert_message,
        {
            "id": message_id,
            "workspace_id": channel.workspace_id,
            "conversation_id": conversation_id,
            "channel_id": channel.id,
            "direction": Direction.INBOUND.value,
            "sender_kind": SenderKind.CUSTOMER.value,
            "content_kind": msg.content_kind.value,
            "body": msg.body,
            "payload": msg.payload,
            "provider_message_id": msg.provider_message_id,
            "reply_to_provider_id": msg.reply_to_provider_id,
            "state": DeliveryState.RECEIVED.value,
            "provider_timestamp": msg.sent_at,
            "created_at": now,
            "send_attempts": 0,
        },
    )
    if not rowcount(inserted):
        result.duplicate_messages += 1
        return
    # The window runs from when the customer wrote; a late retry of an old webhook must not move it back.
    conn.execute(
        q.touch_conversation,
        {"b_id": conversation_id, "b_window": min(msg.sent_at, now), "b_now": now},
    )
    result.new_message_ids.append(message_id)
    result.conversation_ids.add(conversation_id)
    result.message_conversations[message_id] = conversation_id
    events.append(
        MessageReceived(
            channel.workspace_id,
            message_id,
            conversation_id,
            contact_id,
            channel.id,
            msg.content_kind.value,
        )
    )
    if reopens:
        events.append(
            ConversationStatusChanged(
                channel.workspace_id, conversation_id, ConversationStatus.OPEN.value, "message"
            )
        )


def _apply_status_sync(
    conn: Connection,
    q: _Statements,
    channel_id: str,
    status: StatusUpdate,
    result: IngestResult,
    events: list[DomainEvent],
) -> bool:
    """`apply_status` for the common cases; False (nothing written) when the status carries our
    message id and no message has its provider id yet: that case goes through `apply_status`."""
    key = {"b_channel": channel_id, "b_pmid": status.provider_message_id}
    params: dict[str, object] = {**key, "b_state": status.state.value}
    if status.state in _TIME_COLUMN:
        params["b_at"] = status.occurred_at
    if status.state == DeliveryState.FAILED:
        params["b_error_code"] = status.error_code
        params["b_error_reason"] = (
            status.error_reason or "the provider reported the message as failed"
        )
    rows = conn.execute(q.advance[status.state], params).all()
    if not rows and conn.execute(q.count_message, key).scalar():
        # The message may have got its provider id (a concurrent commit) between the two
        # statements; a third, with a newer snapshot, tells "stale" from "just arrived".
        rows = conn.execute(q.advance[status.state], params).all()
        if not rows:
            result.stale_statuses += 1
            return True
    if rows:
        result.applied_statuses += 1
        result.conversation_ids.update(r[0] for r in rows)
        events.extend(
            MessageStatusChanged(r.workspace_id, r.conversation_id, status.state.value, r.id)
            for r in rows
        )
        return True
    if status.client_reference:
        return False
    _keep_pending_sync(conn, q, channel_id, status, result)
    return True


def _keep_pending_in_session(
    session: Session, channel_id: str, status: StatusUpdate, result: IngestResult
) -> None:
    conn = _connection(session)
    _keep_pending_sync(conn, _statements(conn), channel_id, status, result)


def _keep_pending_sync(
    conn: Connection, q: _Statements, channel_id: str, status: StatusUpdate, result: IngestResult
) -> None:
    """Keep a status for a provider id no message has yet."""
    conn.execute(
        q.insert_pending,
        {
            "channel_id": channel_id,
            "provider_message_id": status.provider_message_id,
            "state": status.state.value,
            "error_code": status.error_code,
            "error_reason": status.error_reason,
            "occurred_at": status.occurred_at,
            "received_at": utcnow(),
        },
    )
    result.pending_statuses += 1
    result.pending_ids.append(status.provider_message_id)
