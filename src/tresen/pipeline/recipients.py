"""Find who an API call means: a contact id, or an address on a channel, and their conversation."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from tresen.channels.base import ChannelRef
from tresen.channels.registry import channel_factory
from tresen.db.tables import ChannelRow, Contact, ContactIdentity, Conversation
from tresen.db.types import utcnow
from tresen.db.upsert import insert_ignore, rowcount
from tresen.domain.errors import DomainError
from tresen.domain.ids import new_id
from tresen.pipeline.inbound import conversation_for


class RecipientError(DomainError):
    """The recipient cannot be found or used, with a stable code and an HTTP status."""


@dataclass(frozen=True)
class Recipient:
    """A contact, their identity on one channel, the channel and the conversation there."""

    contact: Contact
    identity: ContactIdentity
    channel: ChannelRow
    conversation: Conversation


async def _channel(session: AsyncSession, workspace_id: str, channel_id: str) -> ChannelRow:
    channel = await session.scalar(
        select(ChannelRow).where(
            ChannelRow.id == channel_id, ChannelRow.workspace_id == workspace_id
        )
    )
    if channel is None:
        raise RecipientError("not_found", "no channel with this id", 404)
    return channel


async def _new_identity(
    session: AsyncSession, channel: ChannelRow, address: str
) -> ContactIdentity:
    """Create a contact for an address that has not written yet (kept if another request won)."""
    now = utcnow()
    contact = Contact(
        id=new_id(),
        workspace_id=channel.workspace_id,
        attributes={},
        consent_state="unknown",
        created_at=now,
        updated_at=now,
    )
    session.add(contact)
    await session.flush()
    inserted = await session.execute(
        insert_ignore(session, ContactIdentity.__table__).values(
            id=new_id(),
            workspace_id=channel.workspace_id,
            contact_id=contact.id,
            channel_id=channel.id,
            address=address,
            unreachable=False,
            created_at=now,
        )
    )
    if not rowcount(inserted):
        await session.execute(delete(Contact).where(Contact.id == contact.id))
    found = await session.scalar(
        select(ContactIdentity).where(
            ContactIdentity.channel_id == channel.id, ContactIdentity.address == address
        )
    )
    assert found is not None
    return found


async def resolve(
    session: AsyncSession,
    workspace_id: str,
    *,
    contact_id: str | None,
    channel_id: str | None,
    address: str | None,
    create: bool = False,
) -> Recipient:
    """The recipient named by a contact id (and channel) or by a channel and address.

    With `create`, an address that never wrote gets a contact, on channels whose kind is
    `write_first` (a phone number, an e-mail address); messengers only reach people who wrote
    to the business account before.
    """
    if contact_id is None and (channel_id is None or address is None):
        raise RecipientError(
            "missing_recipient", "give contact_id, or channel_id and to (the address)", 400
        )
    identity: ContactIdentity | None
    if contact_id is not None:
        contact = await session.scalar(
            select(Contact).where(Contact.id == contact_id, Contact.workspace_id == workspace_id)
        )
        if contact is None:
            raise RecipientError("not_found", "no contact with this id", 404)
        identities = list(
            await session.scalars(
                select(ContactIdentity)
                .where(ContactIdentity.contact_id == contact.id)
                .order_by(ContactIdentity.created_at)
            )
        )
        if channel_id is not None:
            identities = [i for i in identities if i.channel_id == channel_id]
        if address is not None:
            identities = [i for i in identities if i.address == address]
        if not identities:
            raise RecipientError(
                "unknown_recipient", "the contact has no identity on this channel", 404
            )
        if len(identities) > 1:
            raise RecipientError(
                "ambiguous_channel",
                "the contact is reachable on several channels; give channel_id",
            )
        identity = identities[0]
        channel = await _channel(session, workspace_id, identity.channel_id)
    else:
        assert channel_id is not None and address is not None
        channel = await _channel(session, workspace_id, channel_id)
        identity = await session.scalar(
            select(ContactIdentity).where(
                ContactIdentity.channel_id == channel.id, ContactIdentity.address == address
            )
        )
        if identity is None:
            if not create or not channel_factory(channel.kind).write_first:
                raise RecipientError(
                    "unknown_recipient",
                    f"this address has never written to this {channel.kind} channel",
                    404,
                )
            identity = await _new_identity(session, channel, address)
        contact = await session.get_one(Contact, identity.contact_id)
    conv_id = await conversation_for(
        session, ChannelRef(channel.id, channel.workspace_id, channel.kind), identity.id, contact.id
    )
    conversation = await session.get_one(Conversation, conv_id)
    return Recipient(contact, identity, channel, conversation)
