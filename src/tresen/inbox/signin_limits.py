"""Sign-in limits that cannot lock the rightful user out.

Wrong passwords are counted per account AND client address: after a few, that pair is refused
for a while, while the same account from another address (or from a browser that signed in
before, a known device) still signs in. Every address has a budget of attempts across all
accounts (password spraying). Failures on an account from anywhere add a short, growing
delay instead of a lock. Counted in Redis when configured, else in this process.
"""

from __future__ import annotations

import hashlib
import hmac

from tresen.jobs.ratelimit import RateLimiters

ATTEMPTS_PER_CLIENT = 30
CLIENT_WINDOW_SECONDS = 600.0
FAILURES_PER_ACCOUNT_AND_CLIENT = 5
FAILURE_WINDOW_SECONDS = 900.0
DELAY_AFTER_FAILURES = 3
MAX_DELAY_SECONDS = 8.0


class SignInLimits:
    """The windows of sign-in attempts."""

    def __init__(self, limiters: RateLimiters) -> None:
        self.per_client = limiters.window(
            "signin-client", ATTEMPTS_PER_CLIENT, CLIENT_WINDOW_SECONDS
        )
        self.failures = limiters.window(
            "signin-failures", FAILURES_PER_ACCOUNT_AND_CLIENT, FAILURE_WINDOW_SECONDS
        )

    async def admit(self, client: str) -> float | None:
        """Count an attempt from this address; seconds to wait when over its budget."""
        return await self.per_client.check(client)

    async def blocked(self, email: str, client: str) -> bool:
        """Whether this account is refused from this address for now."""
        return await self.failures.peek(_pair(email, client)) is not None

    async def failed(self, email: str, client: str) -> None:
        """Count a wrong password for this account from this address."""
        await self.failures.check(_pair(email, client))


def soft_delay(failed_logins: int) -> float:
    """Seconds to wait before checking a password, after this many failures in a row."""
    if failed_logins < DELAY_AFTER_FAILURES:
        return 0.0
    return min(0.5 * 2 ** (failed_logins - DELAY_AFTER_FAILURES), MAX_DELAY_SECONDS)


def device_mark(secret: str, email: str) -> str:
    """The value of the cookie that marks a browser where this account signed in."""
    key = hashlib.sha256(f"tresen-device:{secret}".encode()).digest()
    return hmac.new(key, email.strip().lower().encode(), hashlib.sha256).hexdigest()


def known_device(secret: str, email: str, mark: str | None) -> bool:
    """Whether the browser's cookie says this account signed in there before."""
    return bool(mark) and hmac.compare_digest(device_mark(secret, email), mark or "")


def _pair(email: str, client: str) -> str:
    return f"{email.strip().lower()}|{client}"
