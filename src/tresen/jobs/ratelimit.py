"""Token-bucket rate limits per channel account (in-process)."""

from __future__ import annotations

import asyncio
import time


class TokenBucket:
    """Allows `rate` acquisitions per second with bursts up to `burst`."""

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
        async with self._lock:
            while True:
                now = time.monotonic()
                if now < self._blocked_until:
                    await asyncio.sleep(self._blocked_until - now)
                    continue
                self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
                self._stamp = now
                if self._tokens >= 1.0:
                    self._tokens -= 1.0
                    return
                await asyncio.sleep((1.0 - self._tokens) / self.rate)


class RateLimiters:
    """One bucket per key (a channel account), created on first use."""

    def __init__(self) -> None:
        self._buckets: dict[str, TokenBucket] = {}

    def bucket(self, key: str, rate: float) -> TokenBucket:
        """The bucket for `key`, re-created when its rate changes."""
        bucket = self._buckets.get(key)
        if bucket is None or bucket.rate != rate:
            bucket = self._buckets[key] = TokenBucket(rate)
        return bucket
