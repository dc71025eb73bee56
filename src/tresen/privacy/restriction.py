"""Restriction of processing (Art. 18): the contact's data is kept, and only kept."""

from __future__ import annotations

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from tresen.db import outbox
from tresen.db.tables import Contact, Conversation
from tresen.db.types import utcnow
from tresen.domain.events import ContactChanged
from tresen.privacy import audit
from tresen.privacy.erasure import load_contact

REFUSED_CODE = "restricted"
REFUSED_TEXT = "processing of this contact's data is restricted (Art. 18 GDPR); nothing is sent"


async def set_restricted(
    session: AsyncSession,
    workspace_id: str,
    contact_id: str,
    restricted: bool,
    *,
    actor_id: str | None,
    via: str,
) -> Contact:
    """Restrict a contact (or lift it); audited. Restricting takes it out of the agents' queue."""
    contact = await load_contact(session, workspace_id, contact_id)
    if (contact.restricted_at is not None) == restricted:
        return contact
    contact.restricted_at = utcnow() if restricted else None
    outbox.record(session, ContactChanged(contact.workspace_id, contact.id, ("restricted_at",)))
    if restricted:
        await session.execute(
            update(Conversation).where(Conversation.contact_id == contact.id).values(queued_at=None)
        )
    await audit.record(
        session,
        workspace_id,
        "contact.restricted" if restricted else "contact.unrestricted",
        actor_id=actor_id,
        subject_type="contact",
        subject_id=contact.id,
        details={"via": via},
    )
    return contact
