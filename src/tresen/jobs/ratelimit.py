"""Rate limits: token buckets per channel account and request windows per client key,
in-process, or shared by all processes through Redis."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import hashlib
import logging
import time
from typing import Any, Protocol

log = logging.getLogger(__name__)


class Bucket(Protocol):
    """What senders need from a rate limit."""

    rate: float

    async def acquire(self) -> None:
        """Wait for one send slot."""
        ...

    async def take(self, wanted: int) -> int:
        """Wait for at least one slot; take up to `wanted` of those available; how many."""
        ...

    def pause(self, seconds: float) -> None:
        """Hand out nothing for a while (the provider said slow down)."""
        ...


class TokenBucket:
    """Allows `rate` acquisitions per second with bursts up to `burst` (one process)."""

    def __init__(self, rate: float, burst: float | None = None):
        self.rate = rate
        self.burst = burst if burst is not None else max(1.0, rate)
        self._tokens = self.burst
        self._stamp = time.monotonic()
        self._lock = asyncio.Lock()
        self._blocked_until = 0.0

    def pause(self, seconds: float) -> None:
        """Stop handing out tokens for a while (the provider said slow down)."""
        self._blocked_until = max(self._blocked_until, time.monotonic() + seconds)
        self._tokens = 0.0

    async def acquire(self) -> None:
        """Wait until a token is available and take it."""
        await self.take(1)

    async def take(self, wanted: int) -> int:
        """Wait until at least one token is available; take up to `wanted`."""
        async with self._lock:
            while True:
                now = time.monotonic()
                if now < self._blocked_until:
                    await asyncio.sleep(self._blocked_until - now)
                    continue
                self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
                self._stamp = now
                if self._tokens >= 1.0:
                    granted = min(max(1, wanted), int(self._tokens))
                    self._tokens -= granted
                    return granted
                await asyncio.sleep((1.0 - self._tokens) / self.rate)


# KEYS[1] bucket; ARGV rate, burst, wanted, pause seconds (0: take). Returns {granted, wait}.
# Redis' own clock is the one clock every process agrees on.
_SCRIPT = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local wanted = tonumber(ARGV[3])
local pause = tonumber(ARGV[4])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'stamp', 'blocked')
local tokens = tonumber(state[1]) or burst
local stamp = tonumber(state[2]) or now
local blocked = tonumber(state[3]) or 0
if pause > 0 then
  blocked = math.max(blocked, now + pause)
  redis.call('HSET', KEYS[1], 'tokens', '0', 'stamp', tostring(now), 'blocked', tostring(blocked))
  redis.call('EXPIRE', KEYS[1], 3600)
  return {0, tostring(pause)}
end
if now < blocked then
  return {0, tostring(blocked - now)}
end
tokens = math.min(burst, tokens + math.max(0, now - stamp) * rate)
local granted = math.min(wanted, math.floor(tokens))
tokens = tokens - granted
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'stamp', tostring(now), 'blocked', '0')
redis.call('EXPIRE', KEYS[1], 3600)
local wait = 0
if granted < 1 then
  wait = (1 - tokens) / rate
end
return {granted, tostring(wait)}
"""


class RedisTokenBucket:
    """One token bucket in Redis that every web and worker process shares."""

    def __init__(self, client: Any, key: str, rate: float, burst: float | None = None):
        self.client = client
        self.key = key
        self.rate = rate
        # A fifth of a second of sends: full use of the rate, small bursts at the provider.
        self.burst = burst if burst is not None else max(1.0, rate / 5)
        self._script = client.register_script(_SCRIPT)
        self._lock = asyncio.Lock()
        self._local_block = 0.0
        self._pending: set[asyncio.Task[Any]] = set()

    async def _call(self, wanted: int, pause: float = 0.0) -> tuple[int, float]:
        granted, wait = await self._script(
            keys=[self.key], args=[self.rate, self.burst, wanted, pause]
        )
        return int(granted), float(wait)

    async def acquire(self) -> None:
        """Wait for one shared token."""
        await self.take(1)

    async def take(self, wanted: int) -> int:
        """Wait for at least one shared token; take up to `wanted` of the available ones."""
        async with self._lock:
            while True:
                now = time.monotonic()
                if now < self._local_block:
                    await asyncio.sleep(self._local_block - now)
                granted, wait = await self._call(max(1, min(wanted, int(self.burst) or 1)))
                if granted:
                    return granted
                await asyncio.sleep(max(wait, 0.001))

    def pause(self, seconds: float) -> None:
        """Block every process sharing this bucket for `seconds`."""
        self._local_block = max(self._local_block, time.monotonic() + seconds)
        task = asyncio.ensure_future(self._call(0, max(seconds, 0.001)))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)


class Window(Protocol):
    """At most `limit` events per `seconds` per key."""

    limit: int
    seconds: float

    async def check(self, key: str) -> float | None:
        """None when allowed (and counted), else the seconds until one is allowed again."""
        ...

    async def peek(self, key: str) -> float | None:
        """Like check, without counting: None while the key is under its limit."""
        ...


class RateWindow:
    """A sliding window in this process."""

    def __init__(self, limit: int, seconds: float) -> None:
        self.limit = limit
        self.seconds = seconds
        self._hits: dict[str, collections.deque[float]] = {}

    async def check(self, key: str) -> float | None:
        """None when allowed (and counted), else the seconds until one is allowed again."""
        now = time.monotonic()
        hits = self._hits.setdefault(key, collections.deque())
        while hits and now - hits[0] > self.seconds:
            hits.popleft()
        if len(hits) >= self.limit:
            return self.seconds - (now - hits[0])
        hits.append(now)
        if len(self._hits) > 50_000:
            self._hits = {k: v for k, v in self._hits.items() if v and now - v[-1] < self.seconds}
        return None

    async def peek(self, key: str) -> float | None:
        """None while the key is under its limit (nothing is counted)."""
        now = time.monotonic()
        hits = [t for t in self._hits.get(key, ()) if now - t <= self.seconds]
        return self.seconds - (now - hits[0]) if len(hits) >= self.limit else None


class RedisWindow:
    """A fixed window counted in Redis, shared by every process (at most twice the limit
    across a window boundary). Keys are hashed: client addresses never reach Redis."""

    def __init__(self, client: Any, prefix: str, limit: int, seconds: float) -> None:
        self._client = client
        self.prefix = prefix
        self.limit = limit
        self.seconds = seconds

    async def check(self, key: str) -> float | None:
        """None when allowed (and counted), else the seconds until one is allowed again."""
        now = time.time()
        slot = int(now // self.seconds)
        digest = hashlib.sha256(key.encode()).hexdigest()[:32]
        name = f"{self.prefix}{digest}:{slot}"
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.incr(name)
            pipe.expire(name, int(self.seconds) + 1)
            count, _ = await pipe.execute()
        if int(count) > self.limit:
            return (slot + 1) * self.seconds - now
        return None

    async def peek(self, key: str) -> float | None:
        """None while the key is under its limit (nothing is counted)."""
        now = time.time()
        slot = int(now // self.seconds)
        digest = hashlib.sha256(key.encode()).hexdigest()[:32]
        count = await self._client.get(f"{self.prefix}{digest}:{slot}")
        if count is not None and int(count) >= self.limit:
            return (slot + 1) * self.seconds - now
        return None


class RateLimiters:
    """One bucket per key (a channel account): in-process, or in Redis when a URL is given."""

    def __init__(self, redis_url: str = "", prefix: str = "tresen:rate:") -> None:
        self._buckets: dict[str, Bucket] = {}
        self._windows: dict[str, Window] = {}
        self._redis: Any = None
        self.prefix = prefix
        if redis_url:
            import redis.asyncio as aioredis

            self._redis = aioredis.from_url(redis_url)

    @property
    def shared(self) -> bool:
        """Whether the buckets are shared with other processes."""
        return self._redis is not None

    def bucket(self, key: str, rate: float) -> Bucket:
        """The bucket for `key`, re-created when its rate changes."""
        bucket = self._buckets.get(key)
        if bucket is None or bucket.rate != rate:
            if self._redis is not None:
                bucket = RedisTokenBucket(self._redis, f"{self.prefix}{key}", rate)
            else:
                bucket = TokenBucket(rate)
            self._buckets[key] = bucket
        return bucket

    def window(self, name: str, limit: int, seconds: float) -> Window:
        """The request window called `name` (e.g. web chat sessions per client address)."""
        window = self._windows.get(name)
        if window is None or (window.limit, window.seconds) != (limit, seconds):
            if self._redis is not None:
                window = RedisWindow(self._redis, f"{self.prefix}window:{name}:", limit, seconds)
            else:
                window = RateWindow(limit, seconds)
            self._windows[name] = window
        return window

    async def close(self) -> None:
        """Close the Redis connection, if any."""
        if self._redis is not None:
            with contextlib.suppress(Exception):
                await self._redis.aclose()
