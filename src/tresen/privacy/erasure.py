"""Erasure (Art. 17): remove a contact from every place the data map names."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, select, text, tuple_, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from tresen.db import outbox
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
    DomainEventRow,
    ErasureRequest,
    Job,
    LinkClick,
    Media,
    Message,
    Note,
    Notification,
    PendingStatus,
    Subscription,
    TrackedLink,
    WebchatSession,
)
from tresen.db.types import utcnow
from tresen.domain.events import ContactErased
from tresen.domain.ids import new_id
from tresen.events import REVOCATIONS, WEBCHAT_REVOKED, Event, EventBus
from tresen.media.store import is_media_key
from tresen.privacy import audit, suppression
from tresen.storage import FileStore

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
    "tracked_links",
    "link_clicks",
    "domain_events",
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
    link_clicks: int = 0
    campaign_recipients: int = 0
    consent_events_kept: int = 0
    files: list[str] = field(default_factory=list)
    """Keys in the file store of the contact's files."""
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
            "link_clicks": self.link_clicks,
            "consent_events_kept": self.consent_events_kept,
            "files": len(self.files),
        }


def media_file(payload: dict[str, Any] | None) -> str | None:
    """The store key `media/<name>` a message's payload names, if any (never another key)."""
    media = (payload or {}).get("media")
    if not isinstance(media, dict) or not isinstance(media.get("path"), str):
        return None
    key = media["path"]
    return key if key.count("/") == 1 and is_media_key(key) else None


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
        key = media_file(row.payload)
        if key is not None:
            report.files.append(key)
    for chunk in _chunks(message_ids):
        for stored in await session.scalars(select(Media.path).where(Media.message_id.in_(chunk))):
            if is_media_key(stored):
                report.files.append(stored)

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
        await session.execute(
            delete(WebchatSession).where(
                WebchatSession.channel_id == identity.channel_id,
                WebchatSession.address == identity.address,
            )
        )
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
    report.link_clicks = await forget_link_tracking(session, everyone)
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
    # Events name the person's conversations and contact ids only; gone with them, except
    # the one announcing the erasure.
    for chunk in _chunks([*conv_ids, *everyone]):
        await session.execute(delete(DomainEventRow).where(DomainEventRow.lane.in_(chunk)))
    outbox.record(session, ContactErased(workspace_id, contact.id))
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


async def forget_link_tracking(session: AsyncSession, contact_ids: list[str]) -> int:
    """Delete the contacts' click rows and unlink their per-person links (counters stay)."""
    removed = 0
    for chunk in _chunks(contact_ids):
        removed += _count(
            await session.execute(delete(LinkClick).where(LinkClick.contact_id.in_(chunk)))
        )
        await unlink_links(
            session,
            list(
                await session.scalars(
                    select(TrackedLink.id).where(TrackedLink.contact_id.in_(chunk))
                )
            ),
        )
    return removed


async def unlink_links(session: AsyncSession, link_ids: list[str]) -> None:
    """Make per-person links anonymous: no contact, and a fresh key (the old one hashed the id)."""
    for link_id in link_ids:
        await session.execute(
            update(TrackedLink)
            .where(TrackedLink.id == link_id)
            .values(contact_id=None, key=hashlib.sha256(os.urandom(32)).hexdigest())
        )


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


async def revoke_webchat_sessions(events: EventBus | None) -> None:
    """Tell every web process to forget the web chat sessions it cached (after the commit)."""
    if events is not None:
        await events.publish(Event(REVOCATIONS, WEBCHAT_REVOKED, ""))


async def remove_files(report: ErasureReport, files: FileStore) -> None:
    """Delete the erased contact's files or objects (after the database commit)."""
    for key in report.files:
        if await asyncio.to_thread(files.delete, key):
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


DEADLOCK_RETRIES = 3
RESUME_AFTER = timedelta(seconds=60)
"""An unfinished erasure untouched this long is taken over (its process is presumed dead)."""


@dataclass(frozen=True)
class _Request:
    """The fields of an erasure request a step needs (plain values: a rollback expires rows)."""

    id: str
    workspace_id: str
    contact_id: str
    actor_id: str | None
    via: str
    step: str

    @classmethod
    def of(cls, row: ErasureRequest) -> _Request:
        return cls(row.id, row.workspace_id, row.contact_id, row.actor_id, row.via, row.step)


async def after_step(step: str) -> None:
    """Called after each committed step of an erasure (a seam for crash tests; does nothing)."""


async def contact_files(session: AsyncSession, contact_id: str) -> list[str]:
    """The store keys of a contact's files (payload paths and media rows)."""
    found: list[str] = []
    payloads = await session.stream_scalars(
        select(Message.payload)
        .join(Conversation, Conversation.id == Message.conversation_id)
        .where(Conversation.contact_id == contact_id, Message.content_kind == "media")
    )
    async for payload in payloads:
        key = media_file(payload)
        if key is not None:
            found.append(key)
    stored = await session.scalars(
        select(Media.path)
        .join(Message, Message.id == Media.message_id)
        .join(Conversation, Conversation.id == Message.conversation_id)
        .where(Conversation.contact_id == contact_id, Media.path.is_not(None))
    )
    found += [key for key in stored if is_media_key(key)]
    return found


async def _advance(session: AsyncSession, request_id: str, step: str, **values: Any) -> None:
    async with session.begin():
        await session.execute(
            update(ErasureRequest)
            .where(ErasureRequest.id == request_id)
            .values(step=step, updated_at=utcnow(), **values)
        )


async def _rows_step(
    session: AsyncSession,
    request: _Request,
    report: ErasureReport,
    *,
    secret_key: str,
) -> ErasureReport:
    """Delete the rows in one transaction and move the request on to compacting."""
    async with session.begin():
        try:
            erased = await erase_contact(
                session,
                secret_key=secret_key,
                workspace_id=request.workspace_id,
                contact_id=request.contact_id,
                actor_id=request.actor_id,
                via=request.via,
            )
        except ContactNotFound:
            erased = None  # an earlier attempt committed this step
        if erased is not None:
            erased.files_removed = report.files_removed
            erased.files = list(dict.fromkeys([*report.files, *erased.files]))
            report = erased
        await session.execute(
            update(ErasureRequest)
            .where(ErasureRequest.id == request.id)
            .values(step="compact", updated_at=utcnow(), counts=report.counts())
        )
    return report


async def _continue(
    engine: AsyncEngine,
    session: AsyncSession,
    request: _Request,
    *,
    secret_key: str,
    files: FileStore,
    events: EventBus | None = None,
) -> ErasureReport:
    """Run the remaining steps of one erasure request; every step can run again safely.

    files: delete the contact's files (before the rows that name them go)
    rows: one transaction deletes the rows, keeps the proof, records the audit entry
    compact: push the erased bytes out of the database files
    """
    report = ErasureReport(request.contact_id)
    step = request.step
    if step == "files":
        async with session.begin():
            report.files = await contact_files(session, request.contact_id)
        await remove_files(report, files)
        await _advance(session, request.id, "rows")
        await after_step("files")
        step = "rows"
    if step == "rows":
        for attempt in range(DEADLOCK_RETRIES):
            try:
                report = await _rows_step(session, request, report, secret_key=secret_key)
                break
            except DBAPIError as exc:
                # PostgreSQL may pick this transaction as a deadlock victim against a worker
                # touching the same conversation; the step is one transaction, so run it again.
                if attempt + 1 == DEADLOCK_RETRIES or "deadlock" not in str(exc.orig).lower():
                    raise
                await asyncio.sleep(0.1 * (attempt + 1))
        await remove_files(report, files)  # files that arrived while the first step ran
        await revoke_webchat_sessions(events)
        await after_step("rows")
        step = "compact"
    if step == "compact":
        await compact(engine)
        await _advance(session, request.id, "done", state="done", finished_at=utcnow())
        await after_step("compact")
    return report


async def erase(
    engine: AsyncEngine,
    session: AsyncSession,
    *,
    secret_key: str,
    files: FileStore,
    workspace_id: str,
    contact_id: str,
    actor_id: str | None,
    via: str,
    events: EventBus | None = None,
) -> ErasureReport:
    """Record an erasure request, then run it step by step (resumable after a crash)."""
    async with session.begin():
        await load_contact(session, workspace_id, contact_id)
        request = await session.scalar(
            select(ErasureRequest).where(
                ErasureRequest.workspace_id == workspace_id,
                ErasureRequest.contact_id == contact_id,
                ErasureRequest.state == "running",
            )
        )
        if request is None:
            request = ErasureRequest(
                id=new_id(),
                workspace_id=workspace_id,
                contact_id=contact_id,
                actor_id=actor_id,
                via=via[:64],
                state="running",
                step="files",
                attempts=1,
                counts={},
            )
            session.add(request)
        plain = _Request.of(request)
    return await _continue(
        engine, session, plain, secret_key=secret_key, files=files, events=events
    )


async def resume_pending(
    engine: AsyncEngine,
    sessions: async_sessionmaker[AsyncSession],
    *,
    secret_key: str,
    files: FileStore,
    idle: timedelta = RESUME_AFTER,
    events: EventBus | None = None,
) -> int:
    """Complete every erasure left unfinished (untouched for `idle`); returns how many."""
    cutoff = utcnow() - idle
    async with sessions() as session:
        waiting = list(
            await session.scalars(
                select(ErasureRequest.id).where(
                    ErasureRequest.state == "running", ErasureRequest.updated_at <= cutoff
                )
            )
        )
    done = 0
    for request_id in waiting:
        async with sessions() as session:
            async with session.begin():
                claimed = await session.execute(
                    update(ErasureRequest)
                    .where(
                        ErasureRequest.id == request_id,
                        ErasureRequest.state == "running",
                        ErasureRequest.updated_at <= cutoff,
                    )
                    .values(attempts=ErasureRequest.attempts + 1, updated_at=utcnow())
                )
                if not _count(claimed):
                    continue  # another process took it over first
                request = _Request.of(await session.get_one(ErasureRequest, request_id))
            log.info("resuming erasure request %s at step %s", request.id, request.step)
            await _continue(
                engine, session, request, secret_key=secret_key, files=files, events=events
            )
            done += 1
    return done
