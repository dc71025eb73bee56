"""Pieces every provider simulator uses: a rate-limit bucket and webhook delivery counts."""

from __future__ import annotations

import time
from dataclasses import dataclass


class TokenBucket:
    """A token bucket on the monotonic clock; `take` never waits (a simulator answers 429 instead)."""

    def __init__(self, rate: float, burst: float | None = None) -> None:
        self.rate = rate
        self.burst = burst if burst is not None else max(1.0, rate)
        self.tokens = self.burst
        self.updated = time.monotonic()

    def take(self) -> bool:
        """Take one token if there is one."""
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


@dataclass
class WebhookStats:
    """Counts of webhook deliveries."""

    posted: int = 0
    delivered: int = 0
    retried: int = 0
    failed: int = 0
    duplicated: int = 0
