"""Rate limits: one token bucket per channel, shared by processes through Redis when configured."""

from __future__ import annotations

import asyncio
import secrets

import pytest
import redis.asyncio as aioredis

from tests.conftest import IN_CI
from tresen.jobs.ratelimit import RateLimiters, RedisTokenBucket, RedisWindow, TokenBucket

REDIS_URL = "redis://127.0.0.1:6379/0"


async def _redis_up() -> bool:
    client = aioredis.from_url(REDIS_URL)
    try:
        async with asyncio.timeout(2):
            await client.ping()
        return True
    except Exception:
        return False
    finally:
        await client.aclose()


async def test_in_process_bucket_grants_at_most_its_burst() -> None:
    bucket = TokenBucket(rate=0.001, burst=3)
    assert await bucket.take(10) == 3
    bucket.pause(60)
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.2):
            await bucket.take(1)


async def test_two_processes_share_one_redis_bucket() -> None:
    if not await _redis_up():
        if IN_CI:
            pytest.fail(f"CI=true but Redis at {REDIS_URL} is not reachable")
        pytest.skip(f"no Redis at {REDIS_URL}")
    prefix = f"tresen-test:{secrets.token_hex(4)}:"
    first, second = RateLimiters(REDIS_URL, prefix=prefix), RateLimiters(REDIS_URL, prefix=prefix)
    try:
        a = first.bucket("channel-1", rate=1.0)
        b = second.bucket("channel-1", rate=1.0)
        assert isinstance(a, RedisTokenBucket) and first.shared
        assert await a.take(5) == 1, "a burst of one token at 1/s"
        granted, wait = await b._call(5)
        assert granted == 0 and 0 < wait <= 1.0
        other = second.bucket("channel-2", rate=1.0)
        assert await other.take(1) == 1, "another channel has its own budget"
        a.pause(30)
        await asyncio.sleep(0.05)
        granted, wait = await b._call(1)
        assert granted == 0 and wait > 20, "a 130429 seen by one process pauses all"
    finally:
        await first.close()
        await second.close()


async def test_in_process_window_counts_per_key() -> None:
    window = RateLimiters().window("form", limit=2, seconds=60)
    assert await window.check("203.0.113.9") is None
    assert await window.check("203.0.113.9") is None
    wait = await window.check("203.0.113.9")
    assert wait is not None and 0 < wait <= 60
    assert await window.check("198.51.100.7") is None, "another address has its own count"


async def test_two_processes_share_one_redis_window_without_storing_the_key() -> None:
    if not await _redis_up():
        if IN_CI:
            pytest.fail(f"CI=true but Redis at {REDIS_URL} is not reachable")
        pytest.skip(f"no Redis at {REDIS_URL}")
    prefix = f"tresen-test:{secrets.token_hex(4)}:"
    first, second = RateLimiters(REDIS_URL, prefix=prefix), RateLimiters(REDIS_URL, prefix=prefix)
    try:
        a = first.window("subscribe-form", limit=3, seconds=3600)
        b = second.window("subscribe-form", limit=3, seconds=3600)
        assert isinstance(a, RedisWindow)
        assert [await a.check("203.0.113.9"), await b.check("203.0.113.9")] == [None, None]
        assert await a.check("203.0.113.9") is None
        wait = await b.check("203.0.113.9")
        assert wait is not None and 0 < wait <= 3600, "the fourth, in either process, is refused"
        assert await b.check("198.51.100.7") is None
        keys = [k.decode() async for k in first._redis.scan_iter(f"{prefix}*")]
        assert keys and all("203.0.113.9" not in k and "198.51.100.7" not in k for k in keys), (
            "client addresses never reach Redis"
        )
        ttls = [await first._redis.ttl(k) for k in keys]
        assert all(0 < ttl <= 3601 for ttl in ttls), "windows expire"
    finally:
        await first._redis.delete(*[k async for k in first._redis.scan_iter(f"{prefix}*")])
        await first.close()
        await second.close()
