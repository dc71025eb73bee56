"""What every HTTP provider simulator shares: ledger, stats, /_sim routes, faults, webhooks, serving."""

from __future__ import annotations

import abc
import asyncio
import json
import logging
import random
from collections import Counter
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Coroutine,
    Hashable,
    Iterable,
    Sequence,
)
from contextlib import asynccontextmanager, suppress
from dataclasses import asdict, dataclass
from typing import Any, Protocol, TypeVar

import httpx
from litestar import get
from litestar.handlers import HTTPRouteHandler
from litestar.types import ASGIApp, Receive, Scope, Send

from tresen.sim.common import TokenBucket, WebhookStats
from tresen.sim.server import serve_asgi

__all__ = [
    "RepeatCounter",
    "SimBase",
    "TokenBucket",
    "WebhookStats",
    "bytes_app",
    "dropping_app",
    "empty_app",
    "json_app",
    "serve_simulator",
]

log = logging.getLogger(__name__)

FAULT_KINDS = frozenset({"5xx", "timeout", "drop"})
WEBHOOK_POSTERS = 32
"""Webhooks in flight at once; the rest wait in the outbox (as a provider's delivery queue does)."""
FETCHERS = 16
"""Outbound fetches (media links) in flight at once."""


class SimConfig(Protocol):
    """The settings SimBase reads from every simulator's config."""

    fault_rate: float
    fault_kinds: tuple[str, ...]
    timeout_seconds: float
    duplicate_rate: float
    webhook_retry_delays: tuple[float, ...]
    seed: int | None


class Ledgered(Protocol):
    """A ledger entry: one outbound message the simulator accepted."""

    def to_json(self) -> dict[str, Any]: ...


E = TypeVar("E")


def count_repeats(entries: Iterable[E], key: Callable[[E], Hashable]) -> int:
    """How many entries have a key an earlier entry had (a message accepted twice)."""
    seen: set[Hashable] = set()
    count = 0
    for entry in entries:
        k = key(entry)
        count += k in seen
        seen.add(k)
    return count


class RepeatCounter:
    """count_repeats over an append-only ledger, looking only at entries added since last time."""

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self._seen: set[Hashable] = set()
        self._scanned = 0
        self._count = 0

    def count(self, entries: Sequence[E], key: Callable[[E], Hashable]) -> int:
        """How many entries repeat an earlier key (stats are polled during campaigns)."""
        if len(entries) < self._scanned:
            self._reset()
        for entry in entries[self._scanned :]:
            k = key(entry)
            self._count += k in self._seen
            self._seen.add(k)
        self._scanned = len(entries)
        return self._count


@dataclass
class _Delivery:
    """One webhook on its way: its post, the attempts so far, and who waits for the outcome."""

    post_once: Callable[[], Awaitable[bool]]
    done: asyncio.Future[bool]
    copies: int = 1
    attempt: int = 0
    first_outcome: bool | None = None


class SimBase(abc.ABC):
    """The bookkeeping and plumbing of one simulated provider account (mixed into each sim)."""

    config: SimConfig
    ledger: list[Any]
    app: ASGIApp

    def _start(self, config: SimConfig, *, fault_kinds: frozenset[str] = FAULT_KINDS) -> None:
        """Set up the shared state; refuse fault kinds this provider cannot show."""
        unknown = set(config.fault_kinds) - fault_kinds
        if unknown:
            raise ValueError(f"unknown fault kinds: {sorted(unknown)}")
        self.base_url: str | None = None
        self.ledger = []
        self.inbound: list[Any] = []
        self.webhook_stats = WebhookStats()
        self.rejected: Counter[int] = Counter()
        self.faults: Counter[str] = Counter()
        self.faults_after_accept = 0
        self._rng = random.Random(config.seed)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closing = asyncio.Event()
        # The pool never has more requests than connections: a queue inside httpx's pool costs
        # CPU for every queued request on every request (the lock-up of issue 15).
        connections = WEBHOOK_POSTERS + FETCHERS
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(10.0),
            limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
        )
        self._outbox: asyncio.Queue[_Delivery] = asyncio.Queue()
        self._posters: list[asyncio.Task[None]] = []
        self._waiting: set[asyncio.Future[bool]] = set()
        self._timers: set[asyncio.TimerHandle] = set()
        self._fetch_slots = asyncio.Semaphore(FETCHERS)
        self._repeats = RepeatCounter()

    # -- bookkeeping -------------------------------------------------------------------

    @abc.abstractmethod
    def duplicates(self) -> int:
        """Accepted messages that repeat an earlier one (each sim says what a repeat is)."""

    def stats(self) -> dict[str, Any]:
        """Counters as a JSON-ready dict (served at /_sim/stats)."""
        return {
            "accepted": len(self.ledger),
            "rejected": {str(code): n for code, n in sorted(self.rejected.items())},
            "faults": dict(self.faults),
            "webhooks": asdict(self.webhook_stats),
            "inbound": len(self.inbound),
            "duplicates": self.duplicates(),
            "faults_after_accept": self.faults_after_accept,
        }

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        """Run a coroutine in the background, tracked for close()."""
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _call_later(self, delay: float, callback: Callable[[], None]) -> None:
        """Call `callback` after `delay` seconds unless the simulator closes first."""
        if self._closing.is_set():
            return

        def fire() -> None:
            self._timers.discard(handle)
            if not self._closing.is_set():
                callback()

        handle = asyncio.get_running_loop().call_later(delay, fire)
        self._timers.add(handle)

    async def close(self) -> None:
        """Stop background webhook tasks and close the HTTP client."""
        self._closing.set()
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()
        tasks = [*self._tasks, *self._posters]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for waiter in self._waiting:
            if not waiter.done():
                waiter.set_result(False)
        await self._client.aclose()

    async def _fetch(self, url: str) -> httpx.Response:
        """GET a URL with at most FETCHERS fetches in flight."""
        async with self._fetch_slots:
            return await self._client.get(url)

    # -- fault injection ---------------------------------------------------------------

    def _decide_fault(self) -> str | None:
        """The fault to show for this request, if any (config.fault_rate of them)."""
        cfg = self.config
        if cfg.fault_rate <= 0 or not cfg.fault_kinds or self._rng.random() >= cfg.fault_rate:
            return None
        return self._rng.choice(cfg.fault_kinds)

    async def _fault_answer(
        self,
        fault: str,
        body: dict[str, Any],
        *,
        statuses: tuple[int, ...],
        timeout_status: int,
        partial: bytes,
        drop_status: int = 200,
        ensure_ascii: bool = True,
    ) -> ASGIApp:
        """The answer of a faulty request: a 5xx, a timeout (then a 5xx), or a dropped body."""
        if fault == "5xx":
            return json_app(self._rng.choice(statuses), body, ensure_ascii=ensure_ascii)
        if fault == "timeout":
            with suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), self.config.timeout_seconds)
            return json_app(timeout_status, body, ensure_ascii=ensure_ascii)
        return dropping_app(partial, drop_status)

    # -- webhooks ----------------------------------------------------------------------

    def _queue_webhook(self, post_once: Callable[[], Awaitable[bool]]) -> asyncio.Future[bool]:
        """Queue a webhook, sometimes twice (config.duplicate_rate), as providers do.

        The future says whether the first copy was delivered; it resolves once every copy is
        through. Failed posts are retried after config.webhook_retry_delays.
        """
        twice = self.config.duplicate_rate > 0 and self._rng.random() < self.config.duplicate_rate
        done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._waiting.add(done)
        done.add_done_callback(self._waiting.discard)
        if self._closing.is_set():
            done.set_result(False)
            return done
        if not self._posters:
            self._posters = [asyncio.ensure_future(self._poster()) for _ in range(WEBHOOK_POSTERS)]
        self.webhook_stats.posted += 1
        self._outbox.put_nowait(_Delivery(post_once, done, copies=2 if twice else 1))
        return done

    async def _poster(self) -> None:
        """Take webhooks from the outbox and post them, one at a time, forever."""
        while True:
            delivery = await self._outbox.get()
            try:
                ok = await delivery.post_once()
            except Exception:
                # A poster that died would leave its waiter hanging; count a failed attempt.
                log.exception("posting a simulated webhook failed unexpectedly")
                ok = False
            self._after_attempt(delivery, ok)

    def _after_attempt(self, delivery: _Delivery, ok: bool) -> None:
        """Count one attempt; schedule a retry, the duplicate copy, or resolve the waiter."""
        delays = self.config.webhook_retry_delays
        if not ok and delivery.attempt < len(delays) and not self._closing.is_set():
            delay = delays[delivery.attempt]
            delivery.attempt += 1
            self._call_later(delay, lambda: self._retry(delivery))
            return
        if ok:
            self.webhook_stats.delivered += 1
        else:
            self.webhook_stats.failed += 1
        if delivery.first_outcome is None:
            delivery.first_outcome = ok
        delivery.copies -= 1
        if delivery.copies > 0 and not self._closing.is_set():
            self.webhook_stats.duplicated += 1
            self.webhook_stats.posted += 1
            delivery.attempt = 0
            self._outbox.put_nowait(delivery)
            return
        if not delivery.done.done():
            delivery.done.set_result(delivery.first_outcome)

    def _retry(self, delivery: _Delivery) -> None:
        self.webhook_stats.retried += 1
        self._outbox.put_nowait(delivery)

    async def _post_maybe_twice(self, post_once: Callable[[], Awaitable[bool]]) -> bool:
        """Post a webhook through the outbox (sometimes twice); whether the first got through."""
        return await self._queue_webhook(post_once)

    # -- /_sim routes ------------------------------------------------------------------

    def _sim_routes(self) -> list[HTTPRouteHandler]:
        """GET /_sim/ledger (accepted messages) and GET /_sim/stats (counters)."""
        sim = self

        @get("/_sim/ledger", sync_to_thread=False)
        def ledger() -> list[dict[str, Any]]:
            return [e.to_json() for e in sim.ledger]

        @get("/_sim/stats", sync_to_thread=False)
        def stats() -> dict[str, Any]:
            return sim.stats()

        return [ledger, stats]


def json_app(status: int, body: Any, *, ensure_ascii: bool = True) -> ASGIApp:
    """An ASGI app that answers with a JSON body (bypassing the framework: bulk sends)."""
    return bytes_app(status, json.dumps(body, ensure_ascii=ensure_ascii).encode())


def bytes_app(status: int, data: bytes, content_type: str = "application/json") -> ASGIApp:
    """An ASGI app that answers with a body of the given type."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", content_type.encode("latin-1")),
                    (b"content-length", str(len(data)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": data, "more_body": False})

    return app


def empty_app(status: int) -> ASGIApp:
    """An ASGI app that answers with a status and no body (204 after a DELETE)."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    return app


def dropping_app(partial: bytes, status: int = 200) -> ASGIApp:
    """An ASGI app that starts a successful answer and breaks off in the middle of its body."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(partial) + 64).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": partial, "more_body": True})
        # Returning before the declared Content-Length is sent makes uvicorn close the socket.

    return app


S = TypeVar("S", bound=SimBase)


@asynccontextmanager
async def serve_simulator(sim: S, host: str = "127.0.0.1", port: int = 0) -> AsyncIterator[S]:
    """Serve a simulator over HTTP and yield it with base_url set; close it on the way out."""
    try:
        async with serve_asgi(sim.app, host, port) as base_url:
            sim.base_url = base_url
            try:
                yield sim
            finally:
                await sim.close()
    finally:
        if not sim._closing.is_set():
            await sim.close()
