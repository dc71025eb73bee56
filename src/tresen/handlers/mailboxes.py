"""Poll the IMAP mailboxes of e-mail channels while a worker runs (duplicates are absorbed by Message-ID)."""

from __future__ import annotations

import asyncio
import contextlib
import imaplib
import logging
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy import select

from tresen.channels.base import ChannelError, ChannelRef, TransientError
from tresen.channels.email import EmailChannel, parse_fetched, stage_attachments
from tresen.channels.registry import kinds_where
from tresen.db.tables import ChannelRow
from tresen.pipeline.receive import Delivery, Receiver
from tresen.runtime import Runtime

log = logging.getLogger(__name__)

POLLER = "mailbox"
"""The name a channel kind gives as its `poller` to have its mailboxes polled here."""


async def poll_mailboxes(runtime: Runtime, stopping: asyncio.Event) -> None:
    """Every TRESEN_MAILBOX_POLL_SECONDS, fetch new mail of every enabled e-mail channel (0: off)."""
    interval = runtime.settings.mailbox_poll_seconds
    if interval <= 0:
        return
    kinds = kinds_where(lambda f: f.poller == POLLER)
    while not stopping.is_set():
        try:
            async with runtime.sessions() as session:
                ids = list(
                    await session.scalars(
                        select(ChannelRow.id).where(
                            ChannelRow.kind.in_(kinds),
                            ChannelRow.enabled.is_(True),
                        )
                    )
                )
            for channel_id in ids:
                try:
                    await poll_mailbox(runtime, channel_id)
                except ChannelError as exc:
                    log.warning("mailbox of channel %s: %s (%s)", channel_id, exc.kind, exc.code)
        except Exception:
            log.exception("polling mailboxes failed; trying again later")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), interval)


class _RuntimeLike(Protocol):
    async def channel(self, channel_id: str) -> Any: ...

    @property
    def sessions(self) -> Any: ...

    @property
    def receiver(self) -> Receiver: ...


@dataclass
class MailboxRound:
    """What one read of a mailbox did."""

    fetched: int = 0
    stored: int = 0
    errors: list[str] = field(default_factory=list)
    """Why mails were not stored as messages (automatic mail, no sender, ...)."""


async def poll_mailbox(runtime_like: _RuntimeLike, channel_id: str) -> int:
    """Read unseen mail of one email channel, store it, then mark it seen; returns new messages."""
    return (await read_mailbox(runtime_like, channel_id)).stored


async def read_mailbox(runtime_like: _RuntimeLike, channel_id: str) -> MailboxRound:
    """Read unseen mail of one email channel, store it, then mark it seen."""
    loaded = await runtime_like.channel(channel_id)
    if loaded is None or loaded.adapter.poller != POLLER or not loaded.enabled:
        return MailboxRound()
    adapter: EmailChannel = loaded.adapter
    ref: ChannelRef = loaded.ref
    try:
        fetched = await asyncio.to_thread(adapter.fetch_unseen)
    except (imaplib.IMAP4.error, OSError, TimeoutError) as exc:
        raise TransientError(f"IMAP not reachable ({type(exc).__name__})") from exc
    if not fetched:
        return MailboxRound()
    batch = [(mail.uid, parse_fetched(mail, adapter.config.address)) for mail in fetched]
    settings = getattr(runtime_like, "settings", None)
    files = getattr(runtime_like, "files", None)
    if settings is not None and files is not None:
        for (_, parsed), mail in zip(batch, fetched, strict=True):
            await asyncio.to_thread(
                stage_attachments, mail.raw, parsed, files, settings.max_media_bytes
            )
    # One mail the database refuses must not hold back the others: it stays unseen and is
    # tried again next round. Bounces count only when they name our own messages.
    results = await runtime_like.receiver.receive_each(
        [Delivery(ref, parsed, own_statuses_only=True) for _, parsed in batch]
    )
    done = [uid for (uid, _), result in zip(batch, results, strict=True) if result is not None]
    if len(done) < len(batch):
        log.warning(
            "email channel %s: %d mails could not be stored", ref.id, len(batch) - len(done)
        )
    # Only after the commit: a crash before this line re-reads the mails, dedupe absorbs them.
    try:
        await asyncio.to_thread(adapter.mark_seen, done)
    except (imaplib.IMAP4.error, OSError, TimeoutError) as exc:
        raise TransientError(f"IMAP not reachable ({type(exc).__name__})") from exc
    stored = sum(len(r.new_message_ids) for r in results if r is not None)
    errors = [e for _, parsed in batch for e in parsed.errors]
    return MailboxRound(fetched=len(fetched), stored=stored, errors=errors)
