"""A live update that arrives while the open conversation is being re-rendered still shows:
htmx queues it on the section the response replaces (and drops it), so the page fetches once
more after such a swap; and a re-rendered conversation listens for live updates at once."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from tests import helpers
from tests.web.pagekit import PASSWORD, person
from tresen.app import create_app
from tresen.db.tables import Conversation, Job, Message
from tresen.jobs import queue
from tresen.runtime import Runtime
from tresen.sim.server import serve_asgi

playwright_api = pytest.importorskip("playwright.async_api")
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CUSTOMER = "4915100000042"


async def _customer_writes(
    client: httpx.AsyncClient, channel_id: str, wamid: str, text: str
) -> None:
    body = helpers.dumps(
        helpers.wa_envelope(
            messages=[helpers.wa_text(wamid, CUSTOMER, text)],
            contacts=[{"wa_id": CUSTOMER, "profile": {"name": "Jana Müller"}}],
        )
    )
    answer = await client.post(
        f"/webhooks/whatsapp/{channel_id}", content=body, headers=helpers.wa_sign(body)
    )
    assert answer.status_code == 200


async def _handled(runtime: Runtime, inbound: int) -> None:
    """Wait until the worker has stored `inbound` customer messages and has nothing left."""
    for _ in range(400):
        async with runtime.sessions() as session:
            stored = await session.scalar(
                select(func.count()).select_from(Message).where(Message.direction == "inbound")
            )
            busy = await session.scalar(
                select(Job.id).where(Job.state.in_((queue.PENDING, queue.RUNNING))).limit(1)
            )
        if stored == inbound and not busy:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the worker did not handle the customer's messages")


@dataclass
class _Open:
    """An admin's page with the customer's conversation open and its live stream connected."""

    page: Any
    provider: httpx.AsyncClient
    channel_id: str
    conversation_id: str


@asynccontextmanager
async def _conversation_open(runtime: Runtime, page_script: str = "") -> AsyncIterator[_Open]:
    """Serve tresen, let the customer write once, sign in and open that conversation."""
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed")
    ws, channel = await helpers.seed_whatsapp(runtime)
    await person(runtime, ws, "chefin@laden.example", "admin")
    app = create_app(runtime.settings, runtime=runtime, embedded_worker=True, migrate=False)
    async with (
        serve_asgi(app) as base,
        httpx.AsyncClient(base_url=base) as provider,
        playwright_api.async_playwright() as pw,
    ):
        await _customer_writes(provider, channel.id, "wamid.eins", "Habt ihr das Rad?")
        await _handled(runtime, 1)
        async with runtime.sessions() as session:
            conversation_id = await session.scalar(select(Conversation.id))
        assert conversation_id is not None
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = await (await browser.new_context(locale="de-DE")).new_page()
        if page_script:
            await page.add_init_script(page_script)
        await page.goto(f"{base}/inbox/login")
        await page.fill("input[name=email]", "chefin@laden.example")
        await page.fill("input[name=password]", PASSWORD)
        await page.click("main button[type=submit]")
        await page.wait_for_url(f"{base}/inbox")
        live = asyncio.Event()
        page.on("response", lambda r: live.set() if "/inbox/events" in r.url else None)
        await page.goto(f"{base}/inbox/c/{conversation_id}")
        await asyncio.wait_for(live.wait(), 15)
        yield _Open(page, provider, channel.id, conversation_id)
        await browser.close()


@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_an_update_during_a_refresh_is_not_lost(runtime: Runtime) -> None:
    async with _conversation_open(runtime) as opened:
        page, provider, conversation_id = opened.page, opened.provider, opened.conversation_id
        channel_id = opened.channel_id

        # The next refresh is answered with the page as it was when it started, and only after
        # the customer's following message has been stored (and announced) meanwhile.
        started, release = asyncio.Event(), asyncio.Event()

        async def slow_refresh(route: Any) -> None:
            if route.request.headers.get("hx-request") and not started.is_set():
                stale = await route.fetch()
                started.set()
                await release.wait()
                await route.fulfill(response=stale)
                return
            await route.continue_()

        await page.route(f"**/inbox/c/{conversation_id}*", slow_refresh)
        await _customer_writes(provider, channel_id, "wamid.zwei", "Auch in Blau?")
        await asyncio.wait_for(started.wait(), 15)
        await _customer_writes(provider, channel_id, "wamid.drei", "Und in 56 cm?")
        await _handled(runtime, 3)
        release.set()
        await page.locator(".timeline >> text=Und in 56 cm?").wait_for(timeout=15000)


LIVE_IN_TIME = """
window.__swaps = 0;
window.__lateSections = 0;
document.addEventListener("htmx:afterSwap", (event) => {
  if (event.detail.target.id !== "conversation") return;
  const section = event.detail.target.querySelector("section[id^='conv-']");
  if (!section) return;
  let live = false;
  section.addEventListener("htmx:load", () => { live = true; }, { once: true });
  window.__swaps += 1;
  // The next task is where a live message could arrive: by then the section must listen.
  setTimeout(() => { if (!live) window.__lateSections += 1; }, 0);
});
"""


@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_a_rerendered_conversation_listens_before_anything_else_can_happen(
    runtime: Runtime,
) -> None:
    """htmx binds new content when it settles, by default 20 ms after the swap: a live hint in
    that gap reached no listener and was lost. The inbox settles at once."""
    async with _conversation_open(runtime, LIVE_IN_TIME) as opened:
        page, provider, channel_id = opened.page, opened.provider, opened.channel_id
        for n, text in enumerate(("Auch in Blau?", "Und in 56 cm?"), start=2):
            await _customer_writes(provider, channel_id, f"wamid.{n}", text)
            await page.locator(f".timeline >> text={text}").wait_for(timeout=15000)
        assert await page.evaluate("window.__swaps") >= 2, "the live hints re-rendered nothing"
        assert await page.evaluate("window.__lateSections") == 0
