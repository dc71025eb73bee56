"""Store what a verified webhook carried: contacts, conversations, messages and statuses."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import case, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from tresen.channels.base import InboundMessage, ParsedWebhook, StatusUpdate
from tresen.db.tables import (
    Contact,
    ContactIdentity,
    Conversation,
    Message,
    PendingStatus,
)
from tresen.db.types import utcnow
from tresen.db.upsert import insert_ignore
from tresen.domain.conversation import ConversationStatus
from tresen.domain.ids import new_id
from tresen.domain.message import DeliveryState, Direction, SenderKind, states_below


@dataclass(frozen=True)
class ChannelRef:
    """The channel a webhook arrived on."""

    id: str
    workspace_id: str
    kind: str


@dataclass
class IngestResult:
    """What one webhook changed."""

    new_message_ids: list[str] = field(default_factory=list)
    duplicate_messages: int = 0
    applied_statuses: int = 0
    pending_statuses: int = 0
    stale_statuses: int = 0
    conversation_ids: set[str] = field(default_factory=set)


async def ingest(session: AsyncSession, channel: ChannelRef, parsed: ParsedWebhook) -> IngestResult:
    """Write a parsed webhook in the caller's transaction."""
    result = IngestResult()
    now = utcnow()
    for message in parsed.messages:
        await _store_message(session, channel, message, now, result)
    for status in parsed.statuses:
        await apply_status(session, channel.id, status, result)
    return result


async def _identity(session: AsyncSession, channel: ChannelRef, msg: InboundMessage) -> tuple[str, str]:
    """The (identity id, contact id) for a sender, created when new."""
    row = (
        await session.execute(
            select(ContactIdentity.id, ContactIdentity.contact_id, ContactIdentity.display_name).where(
                ContactIdentity.channel_id == channel.id, ContactIdentity.address == msg.sender_address
            )
        )
    ).first()
    if row is not None:
        if msg.sender_name and row.display_name != msg.sender_name:
            await session.execute(
                update(ContactIdentity).where(ContactIdentity.id == row.id).values(display_name=msg.sender_name)
            )
        return row.id, row.contact_id
    now = utcnow()
    contact_id, identity_id = new_id(), new_id()
    await session.execute(
        Contact.__table__.insert().values(
            id=contact_id,
            workspace_id=channel.workspace_id,
            display_name=msg.sender_name,
            attributes={},
            created_at=now,
            updated_at=now,
        )
    )
    inserted = await session.execute(
        insert_ignore(session, ContactIdentity.__table__).values(
            id=identity_id,
            workspace_id=channel.workspace_id,
            contact_id=contact_id,
            channel_id=channel.id,
            address=msg.sender_address,
            display_name=msg.sender_name,
            unreachable=False,
            created_at=now,
        )
    )
    if inserted.rowcount:
        return identity_id, contact_id
    await session.execute(delete(Contact).where(Contact.id == contact_id))
    row = (
        await session.execute(
            select(ContactIdentity.id, ContactIdentity.contact_id).where(
                ContactIdentity.channel_id == channel.id, ContactIdentity.address == msg.sender_address
            )
        )
    ).one()
    return row.id, row.contact_id


async def conversation_for(
    session: AsyncSession, channel: ChannelRef, identity_id: str, contact_id: str
) -> str:
    """The conversation of an identity on a channel, created when new."""
    found = await session.scalar(
        select(Conversation.id).where(
            Conversation.channel_id == channel.id, Conversation.identity_id == identity_id
        )
    )
    if found:
        return found
    await session.execute(
        insert_ignore(session, Conversation.__table__).values(
            id=new_id(),
            workspace_id=channel.workspace_id,
            channel_id=channel.id,
            contact_id=contact_id,
            identity_id=identity_id,
            status=ConversationStatus.OPEN.value,
            created_at=utcnow(),
        )
    )
    return (
        await session.scalar(
            select(Conversation.id).where(
                Conversation.channel_id == channel.id, Conversation.identity_id == identity_id
            )
        )
    ) or ""


async def _store_message(
    session: AsyncSession, channel: ChannelRef, msg: InboundMessage, now: datetime, result: IngestResult
) -> None:
    exists = await session.scalar(
        select(Message.id).where(
            Message.channel_id == channel.id, Message.provider_message_id == msg.provider_message_id
        )
    )
    if exists:
        result.duplicate_messages += 1
        return
    identity_id, contact_id = await _identity(session, channel, msg)
    conversation_id = await conversation_for(session, channel, identity_id, contact_id)
    message_id = new_id()
    inserted = await session.execute(
        insert_ignore(session, Message.__table__).values(
            id=message_id,
            workspace_id=channel.workspace_id,
            conversation_id=conversation_id,
            channel_id=channel.id,
            direction=Direction.INBOUND.value,
            sender_kind=SenderKind.CUSTOMER.value,
            content_kind=msg.content_kind.value,
            body=msg.body,
            payload=msg.payload,
            provider_message_id=msg.provider_message_id,
            reply_to_provider_id=msg.reply_to_provider_id,
            state=DeliveryState.RECEIVED.value,
            provider_timestamp=msg.sent_at,
            created_at=now,
            send_attempts=0,
        )
    )
    if not inserted.rowcount:
        result.duplicate_messages += 1
        return
    # The window runs from when the customer wrote; a late retry of an old webhook must not move it back.
    window_start = min(msg.sent_at, now)
    await session.execute(
        update(Conversation)
        .where(Conversation.id == conversation_id)
        .values(
            last_inbound_at=case(
                (Conversation.last_inbound_at.is_(None), window_start),
                (Conversation.last_inbound_at < window_start, window_start),
                else_=Conversation.last_inbound_at,
            ),
            last_message_at=now,
            status=case(
                (Conversation.status == ConversationStatus.RESOLVED.value, ConversationStatus.OPEN.value),
                else_=Conversation.status,
            ),
        )
    )
    result.new_message_ids.append(message_id)
    result.conversation_ids.add(conversation_id)


_TIME_COLUMN = {
    DeliveryState.SENT: "sent_at",
    DeliveryState.DELIVERED: "delivered_at",
    DeliveryState.READ: "read_at",
    DeliveryState.FAILED: "failed_at",
}


def _status_values(status: StatusUpdate) -> dict[str, object]:
    values: dict[str, object] = {"state": status.state.value}
    column = _TIME_COLUMN.get(status.state)
    if column:
        values[column] = status.occurred_at
    if status.state == DeliveryState.FAILED:
        values["error_code"] = status.error_code
        values["error_reason"] = status.error_reason or "the provider reported the message as failed"
    return values


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
    below = [s.value for s in states_below(status.state)]
    applied = await session.execute(
        update(Message)
        .where(
            Message.channel_id == channel_id,
            Message.provider_message_id == status.provider_message_id,
            Message.direction == Direction.OUTBOUND.value,
            Message.state.in_(below),
        )
        .values(**_status_values(status))
        .returning(Message.conversation_id)
    )
    rows = applied.all()
    if rows:
        result.applied_statuses += 1
        result.conversation_ids.update(r[0] for r in rows)
        return
    known = await session.scalar(
        select(func.count()).select_from(Message).where(
            Message.channel_id == channel_id, Message.provider_message_id == status.provider_message_id
        )
    )
    if known:
        result.stale_statuses += 1
        return
    if status.client_reference:
        if await _attach_provider_id(session, channel_id, status):
            await apply_status(session, channel_id, status, result, may_retry=False)
            await apply_pending_statuses(session, channel_id, status.provider_message_id)
            return
        if may_retry:
            # A concurrent webhook may have attached the id while we waited for the row lock;
            # a new statement sees its commit.
            await apply_status(session, channel_id, status, result, may_retry=False)
            return
    await session.execute(
        insert_ignore(session, PendingStatus.__table__).values(
            channel_id=channel_id,
            provider_message_id=status.provider_message_id,
            state=status.state.value,
            error_code=status.error_code,
            error_reason=status.error_reason,
            occurred_at=status.occurred_at,
            received_at=utcnow(),
        )
    )
    result.pending_statuses += 1


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
    return bool(updated.rowcount)


async def apply_pending_statuses(session: AsyncSession, channel_id: str, provider_message_id: str) -> int:
    """Apply statuses that arrived before the send completed; returns how many."""
    rows = (
        await session.execute(
            select(PendingStatus).where(
                PendingStatus.channel_id == channel_id,
                PendingStatus.provider_message_id == provider_message_id,
            )
        )
    ).scalars().all()
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
