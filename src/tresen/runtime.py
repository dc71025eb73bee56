"""The shared parts one process needs: database, HTTP client, channel cache, rate limits."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
from httpx_aiohttp import HttpxAiohttpClient
from httpx_aiohttp.transport import AiohttpTransport
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from tresen.channels.base import Channel, ChannelRef
from tresen.channels.registry import channel_factory
from tresen.db import crypto, outbox
from tresen.db.engine import make_engine, make_sessionmaker
from tresen.db.tables import ChannelRow
from tresen.events import (
    OUTBOX_READY,
    OUTBOX_TOPIC,
    Event,
    EventBus,
    MemoryEventBus,
    event_bus_for,
)
from tresen.jobs.ratelimit import RateLimiters
from tresen.net.guard import GuardedTransport, OutboundPolicy
from tresen.pipeline.receive import Receiver
from tresen.settings import Settings
from tresen.storage import FileStore, open_store


@dataclass
class LoadedChannel:
    """A channel row and its ready adapter."""

    ref: ChannelRef
    adapter: Channel
    enabled: bool
    loaded_at: float
    config: Mapping[str, Any] = field(default_factory=dict)


def _waker(events_ready: asyncio.Event, events: EventBus) -> Callable[[], None]:
    """What a commit that wrote domain events calls: wake this process's dispatcher, and the
    other processes' through the event bus when it reaches them (Redis)."""
    notice = Event(OUTBOX_TOPIC, OUTBOX_READY, "")

    def wake() -> None:
        events_ready.set()
        if events.crosses_processes:
            events.publish_nowait(notice)

    return wake


@dataclass
class Runtime:
    """Everything a web or worker process shares across requests and jobs."""

    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    http: httpx.AsyncClient
    limiters: RateLimiters = field(default_factory=RateLimiters)
    events: EventBus = field(default_factory=MemoryEventBus)
    jobs_ready: asyncio.Event = field(default_factory=asyncio.Event)
    events_ready: asyncio.Event = field(default_factory=asyncio.Event)
    """Set when a transaction that wrote domain events committed (wakes the dispatcher)."""
    channel_ttl: float = 10.0
    bulk_http: httpx.AsyncClient | None = None
    """The client of campaign sends (cheaper per request); None: `http`."""
    receiver: Receiver = field(init=False)
    files: FileStore = field(init=False)
    """Media and exports: the data dir or the S3 bucket of the settings."""
    """The one way in: stores what channels received (see `tresen.pipeline.receive`)."""
    _channels: dict[str, LoadedChannel] = field(default_factory=dict)
    _bulk: dict[str, LoadedChannel] = field(default_factory=dict)

    def __post_init__(self) -> None:
        writers = 1 if self.engine.dialect.name == "sqlite" else 4
        self.receiver = Receiver(self.sessions, self.events, self.jobs_ready, writers=writers)
        self.files = open_store(self.settings)

    @classmethod
    def create(cls, settings: Settings, http: httpx.AsyncClient | None = None) -> Runtime:
        """Open the engine and the HTTP client the settings describe."""

        crypto.use(crypto.parse_keys(settings.encryption_keys))
        engine = make_engine(settings.effective_database_url, pool_size=settings.database_pool_size)
        events_ready = asyncio.Event()
        events = event_bus_for(settings.redis_url, prefix=f"{settings.redis_prefix}events:")
        timeout = httpx.Timeout(settings.send_timeout_seconds, connect=5.0)
        policy = OutboundPolicy.from_setting(
            settings.outbound_allow_hosts, max_response_bytes=settings.max_media_bytes + 65536
        )
        # trust_env=False: an environment proxy would be a path around the guard.
        client = http or httpx.AsyncClient(
            timeout=timeout,
            trust_env=False,
            transport=GuardedTransport(
                httpx.AsyncHTTPTransport(
                    limits=httpx.Limits(max_connections=200, max_keepalive_connections=50)
                ),
                policy,
            ),
        )
        # httpx's own pool costs ~3 ms of CPU per request under load; aiohttp's ~0.5 ms.
        bulk = (
            None
            if http is not None
            else HttpxAiohttpClient(
                timeout=timeout,
                trust_env=False,
                transport=GuardedTransport(
                    AiohttpTransport(
                        trust_env=False,
                        limits=httpx.Limits(max_connections=64, keepalive_expiry=30.0),
                    ),
                    policy,
                ),
            )
        )
        return cls(
            settings=settings,
            engine=engine,
            sessions=make_sessionmaker(
                engine,
                info={"base_url": settings.base_url, outbox.WAKE: _waker(events_ready, events)},
            ),
            events_ready=events_ready,
            http=client,
            bulk_http=bulk,
            limiters=RateLimiters(settings.redis_url, prefix=f"{settings.redis_prefix}rate:"),
            events=events,
        )

    async def close(self) -> None:
        """Release connections."""
        await self.events.close()
        await self.limiters.close()
        await self.http.aclose()
        if self.bulk_http is not None:
            await self.bulk_http.aclose()
        await self.engine.dispose()

    async def channel(self, channel_id: str) -> LoadedChannel | None:
        """A channel by id, cached for a few seconds; None when unknown."""
        cached = self._channels.get(channel_id)
        if cached is not None and time.monotonic() - cached.loaded_at < self.channel_ttl:
            return cached
        async with self.sessions() as session:
            row = await session.scalar(select(ChannelRow).where(ChannelRow.id == channel_id))
        if row is None:
            self._channels.pop(channel_id, None)
            self._bulk.pop(channel_id, None)
            return None
        return self.remember(row)

    def remember(self, row: ChannelRow) -> LoadedChannel:
        """Build and cache the adapter of a channel row."""
        adapter = channel_factory(row.kind)(row.config, self.http)
        loaded = LoadedChannel(
            ref=ChannelRef(id=row.id, workspace_id=row.workspace_id, kind=row.kind),
            adapter=adapter,
            enabled=row.enabled,
            loaded_at=time.monotonic(),
            config=row.config,
        )
        self._channels[row.id] = loaded
        return loaded

    async def bulk_channel(self, channel_id: str) -> LoadedChannel | None:
        """A channel whose adapter sends through `bulk_http` (campaigns); None when unknown."""
        loaded = await self.channel(channel_id)
        if loaded is None or self.bulk_http is None:
            return loaded
        cached = self._bulk.get(channel_id)
        if cached is not None and cached.loaded_at == loaded.loaded_at:
            return cached
        bulk = LoadedChannel(
            ref=loaded.ref,
            adapter=channel_factory(loaded.ref.kind)(loaded.config, self.bulk_http),
            enabled=loaded.enabled,
            loaded_at=loaded.loaded_at,
            config=loaded.config,
        )
        self._bulk[channel_id] = bulk
        return bulk

    def forget_channel(self, channel_id: str) -> None:
        """Drop a cached channel after its row changed."""
        self._channels.pop(channel_id, None)
        self._bulk.pop(channel_id, None)
