"""Sign-in limits that cannot lock the rightful user out, trusted proxies, /metrics access."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from tests import helpers
from tests.inbox.test_pages import PASSWORD, _login, _user
from tresen.domain.ids import new_id
from tresen.inbox import signin_limits
from tresen.jobs.ratelimit import RateLimiters
from tresen.runtime import Runtime
from tresen.web.clientip import proxy_options

WRONG = "ganz-falsches-passwort"


@asynccontextmanager
async def browser(runtime: Runtime, address: str) -> AsyncIterator[httpx.AsyncClient]:
    """An in-process client coming from this address."""
    async with helpers._app_for(runtime) as app:
        transport = httpx.ASGITransport(app=app, client=(address, 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            yield c


async def test_wrong_passwords_lock_out_only_that_client(runtime: Runtime) -> None:
    _, channel = await helpers.seed_whatsapp(runtime)
    await _user(runtime, channel, "kim@laden.example", "agent")
    async with (
        browser(runtime, "198.51.100.7") as own,
        browser(runtime, "198.51.100.7") as attacker,
        browser(runtime, "203.0.113.20") as elsewhere,
    ):
        assert (await _login(own, "kim@laden.example")).status_code == 303  # a known device now
        for _ in range(signin_limits.FAILURES_PER_ACCOUNT_AND_CLIENT):
            assert (await _login(attacker, "kim@laden.example", WRONG)).status_code == 401
        refused = await _login(attacker, "kim@laden.example", PASSWORD)
        assert refused.status_code == 401, "the right password from that client waits"
        assert (await _login(own, "kim@laden.example")).status_code == 303, "known device"
        assert (await _login(elsewhere, "kim@laden.example")).status_code == 303, "not locked"


async def test_spraying_from_one_address_is_throttled(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(signin_limits, "ATTEMPTS_PER_CLIENT", 4)
    _, channel = await helpers.seed_whatsapp(runtime)
    await _user(runtime, channel, "kim@laden.example", "agent")
    async with browser(runtime, "192.0.2.50") as sprayer, browser(runtime, "192.0.2.51") as other:
        codes = [
            (await _login(sprayer, f"person{i}@laden.example", WRONG)).status_code for i in range(5)
        ]
        assert codes == [401, 401, 401, 401, 429]
        assert (await _login(other, "kim@laden.example")).status_code == 303


def test_soft_delay_grows_and_is_capped() -> None:
    delays = [signin_limits.soft_delay(n) for n in range(12)]
    assert delays[:3] == [0.0, 0.0, 0.0] and delays[3] > 0
    assert delays == sorted(delays) and max(delays) == signin_limits.MAX_DELAY_SECONDS


async def test_metrics_need_a_token_or_loopback(runtime: Runtime) -> None:
    async with browser(runtime, "127.0.0.1") as local, browser(runtime, "203.0.113.9") as remote:
        assert (await local.get("/metrics")).status_code == 200
        assert (await remote.get("/metrics")).status_code == 401
    runtime.settings = runtime.settings.with_overrides(metrics_token="prom-secret-1")
    async with browser(runtime, "203.0.113.9") as remote:
        assert (await remote.get("/metrics")).status_code == 401
        r = await remote.get("/metrics", headers={"Authorization": "Bearer prom-secret-1"})
        assert r.status_code == 200 and "tresen_webhooks_total" in r.text


@pytest.mark.parametrize(("trusted", "seen_as_remote"), [("", False), ("127.0.0.1", True)])
async def test_forwarded_for_only_from_trusted_proxies(
    runtime: Runtime, trusted: str, seen_as_remote: bool
) -> None:
    options = proxy_options(trusted)
    async with helpers._app_for(runtime) as app:
        asgi = (
            ProxyHeadersMiddleware(app, trusted_hosts=options["forwarded_allow_ips"])
            if options["proxy_headers"]
            else app
        )
        transport = httpx.ASGITransport(app=asgi, client=("127.0.0.1", 40000))  # type: ignore[arg-type]
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            r = await c.get("/metrics", headers={"X-Forwarded-For": "203.0.113.77"})
    assert r.status_code == (401 if seen_as_remote else 200)


@pytest.mark.parametrize("redis", [False, True])
async def test_windows_peek_without_counting(redis: bool) -> None:
    url = "redis://127.0.0.1:6379/0" if redis else ""
    limiters = RateLimiters(url, prefix=f"tresen-test-{new_id()}:")
    try:
        window = limiters.window("peek", 2, 60.0)
        assert await window.peek("k") is None
        assert await window.peek("k") is None, "peeking counts nothing"
        assert await window.check("k") is None and await window.check("k") is None
        assert (await window.peek("k") or 0) > 0
        assert await window.peek("other") is None
    finally:
        await limiters.close()
