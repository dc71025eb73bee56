"""Poll the IMAP mailboxes of e-mail channels while a worker runs (duplicates are absorbed by Message-ID)."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from sqlalchemy import select

from tresen.channels.base import ChannelError
from tresen.db.tables import ChannelRow
from tresen.runtime import Runtime

log = logging.getLogger(__name__)


async def poll_mailboxes(runtime: Runtime, stopping: asyncio.Event) -> None:
    """Every TRESEN_MAILBOX_POLL_SECONDS, fetch new mail of every enabled e-mail channel (0: off)."""
    from tresen.channels.email import poll_mailbox

    interval = runtime.settings.mailbox_poll_seconds
    if interval <= 0:
        return
    while not stopping.is_set():
        try:
            async with runtime.sessions() as session:
                ids = list(
                    await session.scalars(
                        select(ChannelRow.id).where(
                            ChannelRow.kind == "email", ChannelRow.enabled.is_(True)
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
