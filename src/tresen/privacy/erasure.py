"""Erasure (Art. 17): remove a contact from every place the data map names."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import delete, select, text, tuple_, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from tresen.db.tables import (
    BotConversation,
    BotTurn,
    CampaignRecipient,
    ConsentEvent,
    Contact,
    ContactIdentity,
    ContactMerge,
    Conversation,
    ConversationLabel,
    Job,
    Media,
    Message,
    Note,
    Notification,
    PendingStatus,
    Subscription,
)
from tresen.db.types import utcnow
from tresen.media.store import file_for
from tresen.privacy import audit, suppression

log = logging.getLogger(__name__)
CHUNK = 500
_PG_TABLES = (
    "messages",
    "notes",
    "conversations",
    "contact_identities",
    "contacts",
    "jobs",
    "pending_statuses",
    "media",
    "bot_conversations",
    "bot_turns",
    "contact_merges",
    "conversation_labels",
    "subscriptions",
    "notifications",
)


class ContactNotFound(LookupError):
    """No contact with this id in this workspace."""


@dataclass
class ErasureReport:
    """What an erasure removed (counts only)."""

    contact_id: str
    identities: int = 0
    conversations: int = 0
    messages: int = 0
    notes: int = 0
    jobs: int = 0
    pending_statuses: int = 0
    campaign_recipients: int = 0
    consent_events_kept: int = 0
    files: list[Path] = field(default_factory=list)
    files_removed: int = 0

    def counts(self) -> dict[str, int]:
        """The numbers for the audit log."""
        return {
            "identities": self.identities,
            "conversations": self.conversations,
            "messages": self.messages,
            "notes": self.notes,
            "jobs": self.jobs,
            "pending_statuses": self.pending_statuses,
            "consent_events_kept": self.consent_events_kept,
            "files": len(self.files),
        }


def media_file(data_dir: Path, payload: dict[str, Any] | None) -> Path | None:
    """The file under DATA_DIR/media a message names, if any (never a path outside it)."""
    media = (payload or {}).get("media")
    if not isinstance(media, dict) or not isinstance(media.get("path"), str):
        return None
    root = (data_dir / "media").resolve()
    path = (data_dir / media["path"]).resolve()
    if path.parent != root:
        return None
    return path


def _chunks(items: list[str]) -> Iterable[list[str]]:
    for i in range(0, len(items), CHUNK):
        yield items[i : i + CHUNK]


async def load_contact(session: AsyncSession, workspace_id: str, contact_id: str) -> Contact:
    """The contact of this workspace, or ContactNotFound."""
    contact = await session.scalar(
        select(Contact).where(Contact.id == contact_id, Contact.workspace_id == workspace_id)
    )
    if contact is None:
        raise ContactNotFound(f"no contact {contact_id!r} in this workspace")
    return contact


def _values(node: Any) -> Iterable[str]:
    """Every scalar in a JSON document, as text."""
    if isinstance(node, dict):
        for value in node.values():
            yield from _values(value)
    elif isinstance(node, list):
        for value in node:
            yield from _values(value)
    elif node is not None:
        yield str(node)


def _mentions(payload: dict[str, Any], ids: set[str], addresses: set[str]) -> bool:
    """Whether a job's payload names one of the ids or addresses (whole values only)."""
    return any(v in ids or v in addresses for v in _values(payload))


async def erase_contact(
    session: AsyncSession,
    *,
    secret_key: str,
    data_dir: Path,
    workspace_id: str,
    contact_id: str,
    actor_id: str | None,
    via: str,
    merge_index: bool = True,
) -> ErasureReport:
    """Erase one contact inside the caller's transaction; files go after the commit."""
    contact = await load_contact(session, workspace_id, contact_id)
    report = ErasureReport(contact.id)
    identities = list(
        await session.scalars(
            select(ContactIdentity).where(ContactIdentity.contact_id == contact.id)
        )
    )
    conv_ids = list(
        await session.scalars(select(Conversation.id).where(Conversation.contact_id == contact.id))
    )
    messages = (
        await session.execute(
            select(Message.id, Message.payload)
            .join(Conversation, Conversation.id == Message.conversation_id)
            .where(Conversation.contact_id == contact.id)
        )
    ).all()
    message_ids = [m.id for m in messages]
    addresses = {i.address for i in identities}
    for row in messages:
        path = media_file(data_dir, row.payload)
        if path is not None:
            report.files.append(path)
    for chunk in _chunks(message_ids):
        for stored in await session.scalars(select(Media.path).where(Media.message_id.in_(chunk))):
            found = file_for(data_dir, stored) if stored else None
            if found is not None:
                report.files.append(found)

    jobs = (
        await session.execute(
            select(Job.id, Job.payload).where(
                (Job.workspace_id == workspace_id) | Job.workspace_id.is_(None)
            )
        )
    ).all()
    referenced = set(message_ids) | set(conv_ids) | {contact.id}
    job_ids = [j.id for j in jobs if _mentions(j.payload or {}, referenced, addresses)]
    for chunk in _chunks(job_ids):
        report.jobs += _count(await session.execute(delete(Job).where(Job.id.in_(chunk))))

    # By subquery, so provider ids never travel as statement parameters (which drivers log).
    theirs = (
        select(Message.channel_id, Message.provider_message_id)
        .join(Conversation, Conversation.id == Message.conversation_id)
        .where(Conversation.contact_id == contact.id, Message.provider_message_id.isnot(None))
    )
    report.pending_statuses = _count(
        await session.execute(
            delete(PendingStatus).where(
                tuple_(PendingStatus.channel_id, PendingStatus.provider_message_id).in_(theirs)
            )
        )
    )

    for chunk in _chunks(message_ids):
        # The shop's notification record stays (its idempotency key), without the message.
        await session.execute(
            update(Notification).where(Notification.message_id.in_(chunk)).values(message_id=None)
        )
        await session.execute(delete(Media).where(Media.message_id.in_(chunk)))
        await session.execute(delete(BotTurn).where(BotTurn.message_id.in_(chunk)))
    for chunk in _chunks(conv_ids):
        await session.execute(delete(BotTurn).where(BotTurn.conversation_id.in_(chunk)))
        await session.execute(
            delete(BotConversation).where(BotConversation.conversation_id.in_(chunk))
        )
        await session.execute(
            delete(ConversationLabel).where(ConversationLabel.conversation_id.in_(chunk))
        )
    for chunk in _chunks(conv_ids):
        report.messages += _count(
            await session.execute(delete(Message).where(Message.conversation_id.in_(chunk)))
        )
        report.notes += _count(
            await session.execute(delete(Note).where(Note.conversation_id.in_(chunk)))
        )
        report.conversations += _count(
            await session.execute(delete(Conversation).where(Conversation.id.in_(chunk)))
        )

    for identity in identities:
        await suppression.suppress(session, secret_key, workspace_id, identity.address, contact.id)
    report.identities = _count(
        await session.execute(
            delete(ContactIdentity).where(ContactIdentity.contact_id == contact.id)
        )
    )
    await session.execute(delete(Subscription).where(Subscription.contact_id == contact.id))
    # Contacts merged into this one are the same person (their rows keep name and attributes),
    # and the merge records hold both sides' attributes from before.
    merged = list(
        await session.scalars(select(Contact.id).where(Contact.merged_into_id == contact.id))
    )
    everyone = [contact.id, *merged]
    await session.execute(
        delete(ContactMerge).where(
            ContactMerge.target_id.in_(everyone) | ContactMerge.source_id.in_(everyone)
        )
    )
    # A campaign still sending skips the erased person: their recipient rows are gone.
    report.campaign_recipients = _count(
        await session.execute(
            delete(CampaignRecipient).where(CampaignRecipient.contact_id.in_(everyone))
        )
    )
    if merged:
        await session.execute(delete(Contact).where(Contact.id.in_(merged)))
    await session.execute(delete(Contact).where(Contact.id == contact.id))
    report.consent_events_kept = await _keep_consent_proof(session, workspace_id, contact.id, via)
    await audit.record(
        session,
        workspace_id,
        "contact.erased",
        actor_id=actor_id,
        subject_type="contact",
        subject_id=contact.id,
        details={"via": via, **report.counts()},
    )
    if merge_index:
        await merge_search_index(session)
    log.info("contact %s erased: %s", contact.id, report.counts())
    return report


async def merge_search_index(session: AsyncSession) -> None:
    """SQLite: merge the FTS5 segments so no old segment still holds deleted words."""
    if session.get_bind().dialect.name == "sqlite":
        await session.execute(text("INSERT INTO messages_fts(messages_fts) VALUES ('optimize')"))
        await session.execute(text("INSERT INTO contacts_fts(contacts_fts) VALUES ('optimize')"))


async def _keep_consent_proof(
    session: AsyncSession, workspace_id: str, contact_id: str, via: str
) -> int:
    """Clear IP and user agent of the proof, and append a withdrawal per purpose."""
    where = (ConsentEvent.workspace_id == workspace_id, ConsentEvent.contact_id == contact_id)
    await session.execute(
        update(ConsentEvent)
        .where(*where, ConsentEvent.ip_address.isnot(None) | ConsentEvent.user_agent.isnot(None))
        .values(ip_address=None, user_agent=None)
    )
    purposes = sorted(set(await session.scalars(select(ConsentEvent.purpose).where(*where))))
    now = utcnow()
    for purpose in purposes or ["service_conversation"]:
        session.add(
            ConsentEvent(
                workspace_id=workspace_id,
                contact_id=contact_id,
                purpose=purpose,
                action="withdrawn",
                channel_id=None,
                source=f"erasure request ({via})",
                occurred_at=now,
            )
        )
    await session.flush()
    return len(list(await session.scalars(select(ConsentEvent.id).where(*where))))


def _count(result: Any) -> int:
    return int(getattr(result, "rowcount", 0) or 0)


def remove_files(report: ErasureReport) -> None:
    """Delete the erased contact's files (after the database commit)."""
    for path in report.files:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
            report.files_removed += 1


async def compact(engine: AsyncEngine) -> None:
    """Push erased bytes out of the database files: checkpoint the WAL / vacuum the tables."""
    if engine.dialect.name == "sqlite":
        async with engine.connect() as conn:
            # Outside any transaction (the engine would open one with BEGIN IMMEDIATE).
            raw: Any = (await conn.get_raw_connection()).driver_connection
            cursor = await raw.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            await cursor.close()
        return
    async with engine.connect() as conn:
        conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
        for table in _PG_TABLES:
            await conn.exec_driver_sql(f"VACUUM {table}")


async def erase(
    engine: AsyncEngine,
    session: AsyncSession,
    *,
    secret_key: str,
    data_dir: Path,
    workspace_id: str,
    contact_id: str,
    actor_id: str | None,
    via: str,
) -> ErasureReport:
    """Erase in one transaction of `session`, then remove the files and compact the database."""
    async with session.begin():
        report = await erase_contact(
            session,
            secret_key=secret_key,
            data_dir=data_dir,
            workspace_id=workspace_id,
            contact_id=contact_id,
            actor_id=actor_id,
            via=via,
        )
    remove_files(report)
    await compact(engine)
    return report
