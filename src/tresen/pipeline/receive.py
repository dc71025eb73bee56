"""The one way in: everything a channel received reaches the database through `Receiver.receive`.

Provider webhooks, the web chat, polled mailboxes and XMPP links all hand their parsed events
here. One call stores them in one transaction (shared with other webhooks under load: group
commit), looks at statuses that waited for their message again after the commit, announces the
change to live inboxes and wakes the worker.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tresen.channels.base import ChannelRef, ParsedWebhook
from tresen.events import MESSAGE_NEW, MESSAGE_STATUS, Event, EventBus
from tresen.pipeline.inbound import (
    IngestResult,
    apply_pending_statuses,
    ingest,
    keep_own_statuses,
)


@dataclass(frozen=True)
class Delivery:
    """One channel's parsed events, waiting to be stored."""

    channel: ChannelRef
    parsed: ParsedWebhook
    own_statuses_only: bool = False
    """Keep only statuses naming our own messages (receipts anybody can send: XMPP, bounces)."""
    hint: Mapping[str, Any] | None = None
    """More data for the live `message.new` hints (ids only), e.g. the web chat visitor."""


class Receiver:
    """Stores what channels received; each caller gets its answer only after its commit.

    At most `writers` transactions run at once (one on SQLite, which has one writer anyway).
    While they run, new deliveries gather in one open batch, which the next free writer stores
    in a single transaction (at most `max_batch`): under load one commit serves many webhooks,
    at low load a delivery is written alone at once. Each delivery runs through the same
    `ingest` as on its own, in arrival order. When a shared transaction fails, every delivery
    of it is stored again in a transaction of its own, so one bad delivery fails alone.
    """

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        events: EventBus,
        wake: asyncio.Event,
        *,
        writers: int,
        max_batch: int = 64,
    ) -> None:
        self.sessions = sessions
        self.events = events
        self.wake = wake
        self.slots = asyncio.Semaphore(writers)
        self.max_batch = max_batch
        self.open: list[tuple[Delivery, asyncio.Future[Any]]] | None = None
        self.tasks: set[asyncio.Task[None]] = set()

    async def receive(
        self,
        channel: ChannelRef,
        parsed: ParsedWebhook,
        *,
        own_statuses_only: bool = False,
        hint: Mapping[str, Any] | None = None,
    ) -> IngestResult:
        """Store one channel's parsed events durably, announce them; returns what changed."""
        delivery = Delivery(channel, parsed, own_statuses_only, hint)
        result = await self._grouped(delivery)
        await self._after_commit(delivery, result)
        return result

    async def receive_each(self, deliveries: Sequence[Delivery]) -> list[IngestResult | None]:
        """Store several deliveries in one transaction, or each alone when that fails.

        A delivery the database refuses on its own is skipped (None), so the caller can leave
        it where it came from (an unseen mail) and try it again later.
        """
        if not deliveries:
            return []
        results: list[IngestResult | None]
        try:
            async with self.slots:
                results = list(await self._transaction(deliveries))
        except SQLAlchemyError:
            results = []
            for delivery in deliveries:
                try:
                    async with self.slots:
                        results.append((await self._transaction([delivery]))[0])
                except SQLAlchemyError:
                    results.append(None)
        for delivery, result in zip(deliveries, results, strict=True):
            if result is not None:
                await self._after_commit(delivery, result)
        return results

    async def _grouped(self, delivery: Delivery) -> IngestResult:
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if self.open is not None and len(self.open) < self.max_batch:
            self.open.append((delivery, fut))
        else:
            self.open = [(delivery, fut)]
            task = asyncio.create_task(self._lead(self.open))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
        result = await fut
        if result is _ALONE:
            async with self.slots:
                return (await self._transaction([delivery]))[0]
        return result  # type: ignore[no-any-return]

    async def _lead(self, batch: list[tuple[Delivery, asyncio.Future[Any]]]) -> None:
        try:
            async with self.slots:
                if self.open is batch:
                    self.open = None
                results = await self._transaction([delivery for delivery, _ in batch])
        except BaseException as exc:
            if self.open is batch:
                self.open = None
            if len(batch) == 1:
                if not batch[0][1].done():
                    batch[0][1].set_exception(exc)
            else:
                for _, fut in batch:
                    if not fut.done():
                        fut.set_result(_ALONE)
            if not isinstance(exc, Exception):
                raise
            return
        for (_, fut), result in zip(batch, results, strict=True):
            if not fut.done():
                fut.set_result(result)

    async def _transaction(self, deliveries: Sequence[Delivery]) -> list[IngestResult]:
        async with self.sessions() as session, session.begin():
            return [await _ingest_one(session, delivery) for delivery in deliveries]

    async def _after_commit(self, delivery: Delivery, result: IngestResult) -> None:
        if result.pending_ids:
            # The send may have recorded its provider id while this transaction ran; looked at
            # after both commits, one of the two sides always sees the other.
            async with self.sessions() as session, session.begin():
                for provider_message_id in result.pending_ids:
                    await apply_pending_statuses(session, delivery.channel.id, provider_message_id)
        if result.new_message_ids:
            self.wake.set()
        await announce(self.events, delivery.channel.workspace_id, result, delivery.hint)


_ALONE = object()


async def _ingest_one(session: AsyncSession, delivery: Delivery) -> IngestResult:
    parsed = delivery.parsed
    if delivery.own_statuses_only:
        parsed = await keep_own_statuses(session, delivery.channel.id, parsed)
    return await ingest(session, delivery.channel, parsed)


async def announce(
    events: EventBus,
    workspace_id: str,
    result: IngestResult,
    hint: Mapping[str, Any] | None = None,
) -> None:
    """One live event per changed conversation, after the commit (ids only)."""
    new: dict[str, list[str]] = {}
    for message_id, conversation_id in result.message_conversations.items():
        new.setdefault(conversation_id, []).append(message_id)
    for conversation_id, ids in new.items():
        data = {"message_ids": ids, **(hint or {})}
        await events.publish(Event(workspace_id, MESSAGE_NEW, conversation_id, data))
    for conversation_id in result.conversation_ids - new.keys():
        await events.publish(Event(workspace_id, MESSAGE_STATUS, conversation_id, {}))
