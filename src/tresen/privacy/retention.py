"""Retention: delete what is older than each category's period (workspace settings, legal holds)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import delete, exists, func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from tresen.db import outbox
from tresen.db.tables import Contact, Conversation, LinkClick, Message, TrackedLink, Workspace
from tresen.db.types import utcnow
from tresen.domain.errors import DomainError
from tresen.domain.events import ConversationDeleted
from tresen.events import EventBus
from tresen.privacy import audit
from tresen.privacy.erasure import (
    compact,
    erase_contact,
    media_file,
    merge_search_index,
    resume_pending,
    revoke_webchat_sessions,
    unlink_links,
)
from tresen.storage import FileStore, LocalStore

log = logging.getLogger(__name__)

# Days per category; 0 turns a category off. Workspaces override them in settings["retention"].
DEFAULTS: dict[str, int] = {
    "conversations": 730,  # resolved conversations, counted from their last message
    "media": 180,  # files customers sent, counted from their message
    "inactive_contacts": 1095,  # contacts with no message for this long are erased
    "unconfirmed_optins": 30,  # contacts asked for consent who never answered, or said no
    "tracking_events": 180,  # link clicks; per-person links lose their contact after this
    "audit_log": 0,  # the hash chain is kept whole; see docs/privacy.md
}
ORPHAN_GRACE = timedelta(hours=1)  # an upload is written just before its message row


class RetentionError(DomainError):
    """A retention setting is not a whole number of days."""


def periods(workspace: Workspace) -> dict[str, int]:
    """The workspace's retention periods in days, defaults filled in."""
    configured = (workspace.settings or {}).get("retention", {}) or {}
    out = dict(DEFAULTS)
    for key, value in configured.items():
        if key not in DEFAULTS:
            raise RetentionError(
                "unknown_retention_category",
                "unknown retention category {category!r}; known: {known}",
                params={"category": key, "known": ", ".join(DEFAULTS)},
            )
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise RetentionError(
                "retention_days",
                "retention {category} must be a whole number of days >= 0",
                params={"category": key},
            )
        out[key] = value
    return out


async def set_period(session: AsyncSession, workspace_id: str, category: str, days: int) -> None:
    """Change one category's period for a workspace (audited)."""
    workspace = await session.get_one(Workspace, workspace_id)
    settings = dict(workspace.settings or {})
    retention = {**settings.get("retention", {}), category: days}
    periods(Workspace(settings={"retention": retention}))  # validates, raises RetentionError
    workspace.settings = {**settings, "retention": retention}
    await audit.record(
        session,
        workspace_id,
        "settings.retention",
        subject_type="workspace",
        subject_id=workspace_id,
        details={"category": category, "days": days},
    )


async def set_legal_hold(
    session: AsyncSession, conversation_id: str, hold: bool, actor_id: str | None = None
) -> Conversation:
    """Put a conversation on legal hold (retention skips it and its contact) or release it."""
    conv = await session.get(Conversation, conversation_id)
    if conv is None:
        raise LookupError(f"no conversation with the id {conversation_id!r}")
    conv.legal_hold = hold
    await audit.record(
        session,
        conv.workspace_id,
        "conversation.legal_hold" if hold else "conversation.legal_hold_released",
        actor_id=actor_id,
        subject_type="conversation",
        subject_id=conv.id,
    )
    return conv


@dataclass
class RetentionReport:
    """What one run removed, per workspace (counts only)."""

    conversations: int = 0
    media_files: int = 0
    contacts: int = 0
    link_clicks: int = 0
    files: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        """The numbers for logs and the audit log."""
        return {
            "conversations": self.conversations,
            "media_files": self.media_files,
            "contacts": self.contacts,
            "link_clicks": self.link_clicks,
        }


@dataclass
class RetentionResult:
    """One run over all workspaces."""

    workspaces: dict[str, RetentionReport]
    orphan_files: int


def _restricted_contacts() -> Any:
    """Contacts under restriction (Art. 18): their data is only stored, so retention keeps it."""
    return select(Contact.id).where(Contact.restricted_at.is_not(None))


def _held(contact_id: Any) -> Any:
    return exists().where(Conversation.contact_id == contact_id, Conversation.legal_hold.is_(True))


async def _expired_conversations(
    session: AsyncSession, workspace_id: str, cutoff: datetime
) -> list[str]:
    return list(
        await session.scalars(
            select(Conversation.id).where(
                Conversation.workspace_id == workspace_id,
                Conversation.legal_hold.is_(False),
                Conversation.contact_id.not_in(_restricted_contacts()),
                Conversation.status == "resolved",
                func.coalesce(Conversation.last_message_at, Conversation.created_at) < cutoff,
            )
        )
    )


async def run_workspace(
    session: AsyncSession, secret_key: str, workspace: Workspace, now: datetime
) -> RetentionReport:
    """Apply one workspace's periods at time `now` (in the caller's transaction)."""
    days = periods(workspace)
    report = RetentionReport()
    ws = workspace.id
    if days["conversations"]:
        cutoff = now - timedelta(days=days["conversations"])
        for conv_id in await _expired_conversations(session, ws, cutoff):
            payloads = await session.scalars(
                select(Message.payload).where(Message.conversation_id == conv_id)
            )
            report.files += [k for payload in payloads if (k := media_file(payload))]
            await session.execute(delete(Message).where(Message.conversation_id == conv_id))
            await session.execute(delete(Conversation).where(Conversation.id == conv_id))
            outbox.record(session, ConversationDeleted(ws, conv_id, "retention"))
            report.conversations += 1
    if days["media"]:
        cutoff = now - timedelta(days=days["media"])
        media_rows = (
            await session.execute(
                select(Message.id, Message.payload)
                .join(Conversation, Conversation.id == Message.conversation_id)
                .where(
                    Message.workspace_id == ws,
                    Message.content_kind == "media",
                    Message.created_at < cutoff,
                    Conversation.legal_hold.is_(False),
                    Conversation.contact_id.not_in(_restricted_contacts()),
                )
            )
        ).all()
        for message_id, payload in media_rows:
            key = media_file(payload)
            if key is None:
                continue
            report.files.append(key)
            media = dict((payload or {}).get("media") or {})
            media.pop("path", None)
            media["removed"] = "retention"
            await session.execute(
                update(Message)
                .where(Message.id == message_id)
                .values(payload={**(payload or {}), "media": media})
            )
            report.media_files += 1
    if days["tracking_events"]:
        report.link_clicks = await expire_tracking(
            session, ws, now - timedelta(days=days["tracking_events"])
        )
    stale: set[str] = set()
    if days["inactive_contacts"]:
        cutoff = now - timedelta(days=days["inactive_contacts"])
        last = (
            select(func.max(func.coalesce(Conversation.last_message_at, Conversation.created_at)))
            .where(Conversation.contact_id == Contact.id)
            .scalar_subquery()
        )
        stale |= set(
            await session.scalars(
                select(Contact.id).where(
                    Contact.workspace_id == ws,
                    func.coalesce(last, Contact.created_at) < cutoff,
                    Contact.restricted_at.is_(None),
                    ~_held(Contact.id),
                )
            )
        )
    if days["unconfirmed_optins"]:
        cutoff = now - timedelta(days=days["unconfirmed_optins"])
        stale |= set(
            await session.scalars(
                select(Contact.id).where(
                    Contact.workspace_id == ws,
                    Contact.consent_state.in_(("asked", "refused")),
                    Contact.updated_at < cutoff,
                    Contact.restricted_at.is_(None),
                    ~_held(Contact.id),
                )
            )
        )
    for contact_id in sorted(stale):
        erased = await erase_contact(
            session,
            secret_key=secret_key,
            workspace_id=ws,
            contact_id=contact_id,
            actor_id=None,
            via="retention",
            merge_index=False,
        )
        report.files += erased.files
        report.contacts += 1
    if any(report.counts().values()):
        await merge_search_index(session)
        await audit.record(session, ws, "retention.run", details=report.counts())
    return report


async def expire_tracking(session: AsyncSession, workspace_id: str, cutoff: datetime) -> int:
    """Delete clicks older than `cutoff` and unlink older per-person links (counters stay)."""
    removed = await session.execute(
        delete(LinkClick).where(
            LinkClick.workspace_id == workspace_id, LinkClick.clicked_at < cutoff
        )
    )
    old = await session.scalars(
        select(TrackedLink.id).where(
            TrackedLink.workspace_id == workspace_id,
            TrackedLink.contact_id.is_not(None),
            TrackedLink.created_at < cutoff,
        )
    )
    await unlink_links(session, list(old))
    return int(getattr(removed, "rowcount", 0) or 0)


async def orphan_media(session: AsyncSession, files: FileStore, now: datetime) -> list[str]:
    """Files directly under media/ that no message names (e.g. left by an interrupted erasure)."""
    named: set[str] = set()
    rows = await session.stream(select(Message.payload).where(Message.content_kind == "media"))
    async for (payload,) in rows:
        key = media_file(payload)
        if key is not None:
            named.add(key)
    limit = now.timestamp() - ORPHAN_GRACE.total_seconds()
    listed = await asyncio.to_thread(lambda: list(files.listing("media/")))
    return [
        o.key for o in listed if o.key.count("/") == 1 and o.key not in named and o.modified < limit
    ]


async def run(
    sessions: Any,
    secret_key: str,
    files: FileStore,
    now: datetime | None = None,
    engine: AsyncEngine | None = None,
    events: EventBus | None = None,
    data_dir: Path | None = None,
) -> RetentionResult:
    """Finish interrupted erasures; apply retention in every workspace, each in its own
    transaction; then remove files (and export ZIPs a crash left in `data_dir`/exports)."""
    if engine is not None:
        await resume_pending(engine, sessions, secret_key=secret_key, files=files, events=events)
    now = now or utcnow()
    async with sessions() as session:
        workspaces = list(await session.scalars(select(Workspace)))
    reports: dict[str, RetentionReport] = {}
    for workspace in workspaces:
        async with sessions() as session, session.begin():
            report = await run_workspace(session, secret_key, workspace, now)
        await _remove(files, report.files)
        if report.contacts:
            await revoke_webchat_sessions(events)
        reports[workspace.id] = report
        log.info("retention in workspace %s: %s", workspace.id, report.counts())
    async with sessions() as session:
        orphans = await orphan_media(session, files, now)
    await _remove(files, orphans)
    # Export ZIPs are built on local disk by the process that sends them (never in a bucket).
    exports = LocalStore(data_dir) if data_dir is not None else files
    stale = await _stale_exports(exports, now)
    await _remove(exports, stale)
    orphans += stale
    if engine is not None and any(any(r.counts().values()) for r in reports.values()):
        await compact(engine)
    return RetentionResult(reports, len(orphans))


async def _stale_exports(files: FileStore, now: datetime) -> list[str]:
    """Export ZIPs a crash left behind (they are deleted once downloaded)."""
    limit = now.timestamp() - ORPHAN_GRACE.total_seconds()
    listed = await asyncio.to_thread(lambda: list(files.listing("exports/")))
    return [o.key for o in listed if o.modified < limit]


async def _remove(files: FileStore, keys: list[str]) -> None:
    for key in keys:
        await asyncio.to_thread(files.delete, key)


async def poll_retention(runtime: Any, stopping: asyncio.Event) -> None:
    """On start, finish interrupted erasures; then run retention every TRESEN_RETENTION_HOURS
    while a worker runs (0: off; erasures are still finished at start)."""
    try:
        await resume_pending(
            runtime.engine,
            runtime.sessions,
            secret_key=runtime.settings.secret_key,
            files=runtime.files,
            events=runtime.events,
        )
    except Exception:
        log.exception("resuming unfinished erasures failed; the next retention run tries again")
    interval = runtime.settings.retention_hours * 3600
    if interval <= 0:
        return
    wait = min(interval, 60.0)  # not at the very start: let the process settle first
    while True:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), wait)
        if stopping.is_set():
            return
        started = time.monotonic()
        try:
            await run(
                runtime.sessions,
                runtime.settings.secret_key,
                runtime.files,
                engine=runtime.engine,
                events=runtime.events,
                data_dir=runtime.settings.data_dir,
            )
        except Exception:
            log.exception("retention run failed; trying again later")
        wait = max(1.0, interval - (time.monotonic() - started))
