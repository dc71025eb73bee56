"""Keep every enabled XMPP channel connected while a worker runs; store what its link receives."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import msgspec
from sqlalchemy import func, select

from tresen.channels.base import ChannelRef, ParsedWebhook
from tresen.channels.registry import kinds_where
from tresen.channels.xmpp import XmppConfig, XmppLink, bare_jid
from tresen.db.tables import ChannelRow, Message
from tresen.domain.message import Direction
from tresen.runtime import Runtime

log = logging.getLogger(__name__)

POLLER = "xmpp"
"""The name a channel kind gives as its `poller` to be kept connected by an XMPP link here."""


@dataclass
class _Running:
    config: dict[str, Any]
    stop: asyncio.Event
    task: asyncio.Task[None]
    link: Any


def make_sink(runtime: Runtime, ref: ChannelRef) -> Any:
    """Store a batch of parsed stanzas in one transaction, then tell live inboxes and the worker."""

    async def sink(parsed: ParsedWebhook) -> None:
        # Customers can send receipts for any id: only those naming our messages count.
        result = await runtime.receiver.receive(ref, parsed, own_statuses_only=True)
        if result.new_message_ids:
            log.info("xmpp channel %s: %d new messages", ref.id, len(result.new_message_ids))

    return sink


def make_since(runtime: Runtime, channel_id: str) -> Any:
    """When the newest inbound message of a channel was stored (where the archive is read from)."""

    async def since() -> datetime | None:
        async with runtime.sessions() as session:
            newest = await session.scalar(
                select(func.max(Message.created_at)).where(
                    Message.channel_id == channel_id,
                    Message.direction == Direction.INBOUND.value,
                )
            )
        if newest is None:
            return None
        return newest if newest.tzinfo else newest.replace(tzinfo=UTC)

    return since


async def poll_xmpp(
    runtime: Runtime,
    stopping: asyncio.Event,
    *,
    scan_seconds: float = 10.0,
    reconnect_min: float = 1.0,
    reconnect_max: float = 60.0,
) -> None:
    """Run one link per enabled XMPP channel; start, restart and stop them as channels change."""
    running: dict[str, _Running] = {}
    kinds = kinds_where(lambda f: f.poller == POLLER)

    async def stop(channel_id: str) -> None:
        entry = running.pop(channel_id)
        entry.stop.set()
        with contextlib.suppress(Exception):
            await entry.task

    try:
        while not stopping.is_set():
            try:
                async with runtime.sessions() as session:
                    rows = list(
                        await session.scalars(
                            select(ChannelRow)
                            .where(ChannelRow.kind.in_(kinds), ChannelRow.enabled.is_(True))
                            .order_by(ChannelRow.created_at)
                        )
                    )
                wanted = {row.id: row for row in rows}
                for channel_id in [c for c in running if c not in wanted]:
                    await stop(channel_id)
                for channel_id, entry in list(running.items()):
                    if entry.config != wanted[channel_id].config or entry.task.done():
                        await stop(channel_id)
                if not rows and not running:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stopping.wait(), scan_seconds)
                    continue
                accounts = {bare_jid(str(e.config.get("jid", ""))) for e in running.values()}
                for row in rows:
                    if row.id in running:
                        continue
                    config = msgspec.convert(dict(row.config), XmppConfig)
                    account = bare_jid(config.jid)
                    if account in accounts:
                        log.warning(
                            "xmpp channel %s: its account is used by another channel", row.id
                        )
                        continue
                    accounts.add(account)
                    ref = ChannelRef(id=row.id, workspace_id=row.workspace_id, kind=row.kind)
                    link = XmppLink(
                        config,
                        make_sink(runtime, ref),
                        reconnect_min=reconnect_min,
                        reconnect_max=reconnect_max,
                        since=make_since(runtime, row.id),
                    )
                    link_stop = asyncio.Event()
                    running[row.id] = _Running(
                        dict(row.config), link_stop, asyncio.create_task(link.run(link_stop)), link
                    )
            except Exception:
                log.exception("starting XMPP links failed; trying again later")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), scan_seconds)
    finally:
        for channel_id in list(running):
            await stop(channel_id)
