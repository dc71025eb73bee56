"""Live events for the inbox: in-process fan-out, or across processes through Redis pub/sub.

Events carry ids and states only, never message texts, names or phone numbers: they may cross
Redis. They are hints to re-read the database, published after the commit they describe; a
subscriber that missed some (it was slow, or Redis restarted) gets a `bus.resync` event and
should reload what it shows.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import random
import secrets
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol

log = logging.getLogger(__name__)

MESSAGE_NEW = "message.new"
MESSAGE_STATUS = "message.status"
CONVERSATION_UPDATED = "conversation.updated"
NOTE_NEW = "note.new"
TYPING = "conversation.typing"
"""An agent is typing in a conversation (data: {"typing": bool}); for the web chat widget."""
RESYNC = "bus.resync"
"""Delivered locally when events may have been lost (dropped for a slow subscriber, Redis outage)."""
REVOCATIONS = "_revocations"
"""The pseudo-workspace whose channel carries revocations to every process (never a real id)."""
WEBCHAT_REVOKED = "webchat.revoked"
"""Web chat sessions were deleted (erasure): web processes forget the sessions they cached."""

DEFAULT_CHANNEL_PREFIX = "tresen:events:"

OUTBOX_TOPIC = "_outbox"
"""Not a workspace: where a process that committed domain events tells the others' dispatchers."""
OUTBOX_READY = "outbox.ready"


@dataclass(frozen=True)
class Event:
    """Something changed in a workspace's inbox (ids and states only)."""

    workspace_id: str
    kind: str
    conversation_id: str
    data: dict[str, Any] = field(default_factory=dict)


class Subscription:
    """One subscriber's bounded queue; when full, the oldest event is dropped."""

    def __init__(self, workspace_id: str, maxsize: int = 256) -> None:
        self.workspace_id = workspace_id
        self.dropped = 0
        self._items: collections.deque[Event] = collections.deque(maxlen=maxsize)
        self._ready = asyncio.Event()
        self._resync_pending = False

    def put(self, event: Event) -> None:
        """Queue an event without ever blocking the publisher."""
        if len(self._items) == self._items.maxlen:
            self.dropped += 1
            self._resync_pending = True
        self._items.append(event)
        self._ready.set()

    async def get(self) -> Event:
        """The next event, waiting for one; a `bus.resync` first when some were dropped."""
        while not self._items and not self._resync_pending:
            self._ready.clear()
            await self._ready.wait()
        if self._resync_pending:
            self._resync_pending = False
            return Event(self.workspace_id, RESYNC, "", {"dropped": self.dropped})
        return self._items.popleft()

    def pending(self) -> int:
        """Events waiting to be read."""
        return len(self._items)

    def drain(self) -> list[Event]:
        """Every queued event without waiting (a `bus.resync` first when some were dropped)."""
        found = [Event(self.workspace_id, RESYNC, "", {})] if self._resync_pending else []
        self._resync_pending = False
        found += self._items
        self._items.clear()
        return found

    def __aiter__(self) -> AsyncIterator[Event]:
        return self

    async def __anext__(self) -> Event:
        return await self.get()


class EventBus(Protocol):
    """Publish inbox events and subscribe to one workspace's."""

    crosses_processes: bool
    """Whether subscribers in other processes get the events too."""

    async def publish(self, event: Event) -> None:
        """Hand an event to every subscriber of its workspace; never raises, never waits on I/O."""

    def publish_nowait(self, event: Event) -> None:
        """`publish` from synchronous code (a commit hook)."""

    def subscribe(self, workspace_id: str) -> AbstractAsyncContextManager[Subscription]:
        """Receive the workspace's events while the context is open."""

    async def start(self) -> None:
        """Start background tasks (idempotent)."""

    async def close(self) -> None:
        """Stop background tasks and release connections."""


class MemoryEventBus:
    """Fan-out inside one process."""

    crosses_processes = False

    def __init__(self, queue_size: int = 256) -> None:
        self.queue_size = queue_size
        self._subs: dict[str, set[Subscription]] = {}

    async def publish(self, event: Event) -> None:
        """Hand an event to the local subscribers of its workspace."""
        self.publish_nowait(event)

    def publish_nowait(self, event: Event) -> None:
        """Hand an event to the local subscribers of its workspace."""
        self._deliver(event)

    def _deliver(self, event: Event) -> None:
        for sub in tuple(self._subs.get(event.workspace_id, ())):
            sub.put(event)

    def _resync_all(self) -> None:
        for subs in tuple(self._subs.values()):
            for sub in tuple(subs):
                sub._resync_pending = True
                sub._ready.set()

    @contextlib.asynccontextmanager
    async def subscribe(self, workspace_id: str) -> AsyncIterator[Subscription]:
        """Receive the workspace's events while the context is open."""
        sub = Subscription(workspace_id, self.queue_size)
        self._subs.setdefault(workspace_id, set()).add(sub)
        try:
            yield sub
        finally:
            subs = self._subs.get(workspace_id)
            if subs is not None:
                subs.discard(sub)
                if not subs:
                    del self._subs[workspace_id]

    def subscriber_count(self, workspace_id: str | None = None) -> int:
        """Local subscribers (of one workspace, or all)."""
        if workspace_id is not None:
            return len(self._subs.get(workspace_id, ()))
        return sum(len(s) for s in self._subs.values())

    async def start(self) -> None:
        """Nothing to start in-process."""

    async def close(self) -> None:
        """Nothing to release in-process."""


class RedisEventBus(MemoryEventBus):
    """Fan-out across processes: one Redis pub/sub channel per workspace.

    `publish` delivers to local subscribers at once and queues the event for Redis; one sender
    task per process publishes the queue in order (pipelined), so a request never waits on Redis.
    One listener task per process receives every workspace's channel and fans out to local
    subscribers, skipping the events this process sent itself. Both tasks reconnect with backoff.
    """

    crosses_processes = True

    def __init__(
        self,
        url: str,
        *,
        channel_prefix: str = DEFAULT_CHANNEL_PREFIX,
        queue_size: int = 256,
        outbox_size: int = 10_000,
        max_backoff: float = 5.0,
    ) -> None:
        super().__init__(queue_size)
        self.url = url
        self.prefix = channel_prefix
        self.origin = secrets.token_hex(8)
        self.max_backoff = max_backoff
        self.dropped_outbound = 0
        self.connected = asyncio.Event()
        self._outbox: collections.deque[Event] = collections.deque(maxlen=outbox_size)
        self._outbox_ready = asyncio.Event()
        self._client: Any = None
        self._sender: asyncio.Task[None] | None = None
        self._listener: asyncio.Task[None] | None = None
        self._closed = False

    def channel(self, workspace_id: str) -> str:
        """The Redis channel of a workspace."""
        return f"{self.prefix}{workspace_id}"

    async def publish(self, event: Event) -> None:
        """Deliver locally now; queue for Redis (oldest dropped when Redis lags far behind)."""
        self.publish_nowait(event)

    def publish_nowait(self, event: Event) -> None:
        """Deliver locally now; queue for Redis (oldest dropped when Redis lags far behind)."""
        try:
            self._deliver(event)
            if self._closed:
                return
            if len(self._outbox) == self._outbox.maxlen:
                self.dropped_outbound += 1
                if self.dropped_outbound % 1000 == 1:
                    log.warning("event bus: Redis lags, %d events dropped", self.dropped_outbound)
            self._outbox.append(event)
            self._outbox_ready.set()
            self._ensure_tasks(listen=False)
        except Exception:
            log.exception("event bus: could not publish a %s event", event.kind)

    @contextlib.asynccontextmanager
    async def subscribe(self, workspace_id: str) -> AsyncIterator[Subscription]:
        """Receive the workspace's events (from every process) while the context is open."""
        self._ensure_tasks(listen=True)
        async with super().subscribe(workspace_id) as sub:
            yield sub

    async def start(self) -> None:
        """Connect and start the sender and the listener; waits briefly for the subscription."""
        self._ensure_tasks(listen=True)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.connected.wait(), 2.0)

    async def close(self) -> None:
        """Send what is queued (briefly), stop the tasks and close the connection."""
        if self._closed:
            return
        self._closed = True
        if self._sender is not None and self._outbox:
            for _ in range(20):
                if not self._outbox:
                    break
                await asyncio.sleep(0.05)
        for task in (self._sender, self._listener):
            if task is not None:
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
        if self._client is not None:
            with contextlib.suppress(Exception):
                await self._client.aclose()

    def _ensure_tasks(self, *, listen: bool) -> None:
        if self._closed:
            return
        if self._client is None:
            import redis.asyncio as redis

            self._client = redis.Redis.from_url(
                self.url,
                client_name=f"tresen-events-{self.origin}",
                health_check_interval=15,
                socket_connect_timeout=2.0,
                socket_keepalive=True,
            )
        if self._sender is None or self._sender.done():
            self._sender = asyncio.create_task(self._send_loop(), name="tresen-events-send")
        if listen and (self._listener is None or self._listener.done()):
            self._listener = asyncio.create_task(self._listen_loop(), name="tresen-events-listen")

    def _backoff(self, attempt: int) -> float:
        return float(min(self.max_backoff, 0.1 * 2**attempt) * random.uniform(0.5, 1.0))

    async def _send_loop(self) -> None:
        failures = 0
        while True:
            while not self._outbox:
                self._outbox_ready.clear()
                await self._outbox_ready.wait()
            batch = [self._outbox.popleft() for _ in range(min(500, len(self._outbox)))]
            try:
                async with self._client.pipeline(transaction=False) as pipe:
                    for event in batch:
                        pipe.publish(self.channel(event.workspace_id), self._encode(event))
                    await pipe.execute()
                failures = 0
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the sender task must outlive any Redis failure
                # Live events are hints: a lost batch is not retried; listeners resync on reconnect.
                log.warning(
                    "event bus: %d events not sent to Redis (%s: %s)",
                    len(batch),
                    type(exc).__name__,
                    exc,
                )
                await asyncio.sleep(self._backoff(failures))
                failures += 1

    async def _listen_loop(self) -> None:
        failures = 0
        had_connection = False
        while True:
            pubsub = self._client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.psubscribe(f"{self.prefix}*")
                self.connected.set()
                if had_connection:
                    log.info("event bus: reconnected to Redis")
                    self._resync_all()
                had_connection = True
                failures = 0
                while True:
                    message = await pubsub.get_message(timeout=5.0)
                    if message is not None and message.get("type") == "pmessage":
                        self._receive(message.get("data"))
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the listener must outlive any Redis failure
                self.connected.clear()
                log.warning(
                    "event bus: Redis subscription lost (%s: %s); retrying",
                    type(exc).__name__,
                    exc,
                )
                await asyncio.sleep(self._backoff(failures))
                failures += 1
            finally:
                with contextlib.suppress(Exception):
                    await asyncio.shield(pubsub.aclose())

    def _encode(self, event: Event) -> str:
        return json.dumps(
            {
                "o": self.origin,
                "w": event.workspace_id,
                "k": event.kind,
                "c": event.conversation_id,
                "d": event.data,
            },
            separators=(",", ":"),
        )

    def _receive(self, raw: object) -> None:
        try:
            doc = json.loads(raw)  # type: ignore[arg-type]
            if doc.get("o") == self.origin:
                return
            event = Event(str(doc["w"]), str(doc["k"]), str(doc["c"]), dict(doc.get("d") or {}))
        except (ValueError, KeyError, TypeError, AttributeError):
            log.warning("event bus: ignored a malformed event from Redis")
            return
        self._deliver(event)


def event_bus_for(redis_url: str, prefix: str = DEFAULT_CHANNEL_PREFIX) -> EventBus:
    """Redis fan-out (on channels starting with `prefix`) when a Redis URL is configured."""
    return RedisEventBus(redis_url, channel_prefix=prefix) if redis_url else MemoryEventBus()
