"""The inbox in a real browser (Playwright driving Debian's Chromium): live updates, replies, notes, XSS."""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path

import pytest
from sqlalchemy import select

from tests.pipeline.stack import running_stack
from tests.web import live_trace
from tresen.db.tables import CannedReply, Message
from tresen.db.types import utcnow
from tresen.domain.ids import new_id
from tresen.inbox import accounts
from tresen.runtime import Runtime

playwright_api = pytest.importorskip("playwright.async_api")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or "/usr/bin/chromium"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
PASSWORD = "richtig-langes-passwort"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]


@pytest.fixture
def chromium_path() -> str:
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("CI=true but Chromium is missing; .ci/run installs Debian's chromium")
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    return CHROMIUM


async def _login(page, base: str, email: str) -> None:  # type: ignore[no-untyped-def]
    await page.goto(f"{base}/inbox/login")
    await page.fill("input[name=email]", email)
    await page.fill("input[name=password]", PASSWORD)
    await page.click("button[type=submit]")
    await page.wait_for_url(f"{base}/inbox")


async def _stored(runtime: Runtime, body: str) -> bool:
    async with runtime.sessions() as session:
        found = await session.scalar(select(Message.id).where(Message.body == body).limit(1))
    return found is not None


async def _send_reply(page, runtime: Runtime, typed: str, expected: str) -> None:  # type: ignore[no-untyped-def]
    """Type and send a reply; once more only if the server never stored it.

    A live update can re-render the reply form between typing and the click on a loaded
    machine, so the click then sends an empty form that the server refuses: nothing is sent.
    """
    for _ in range(2):
        await page.fill("#reply-body", typed)
        await page.click("form.reply button[type=submit]")
        for _ in range(40):
            if await _stored(runtime, expected):
                return
            await asyncio.sleep(0.25)
    raise AssertionError(f"the reply {expected!r} was never stored")


async def test_two_agents_live_inbox(runtime: Runtime, chromium_path: str) -> None:
    async with running_stack(runtime) as stack:
        async with runtime.sessions() as session, session.begin():
            ws = stack.channel.workspace_id
            await accounts.add_user(
                session,
                ws,
                "kim@laden.example",
                "agent",
                PASSWORD,
                display_name="Kim",
                language="de",
            )
            await accounts.add_user(
                session,
                ws,
                "lea@laden.example",
                "agent",
                PASSWORD,
                display_name="Lea",
                language="en",
            )
            session.add(
                CannedReply(
                    id=new_id(),
                    workspace_id=ws,
                    shortcut="gruss",
                    title="Gruß",
                    body="Hallo {first_name}, hier ist {agent_name}!",
                    created_at=utcnow(),
                )
            )
        async with (
            live_trace.server_hints(runtime, ws) as hints,
            playwright_api.async_playwright() as pw,
        ):
            browser = await pw.chromium.launch(executable_path=chromium_path, args=ARGS)
            kim = await (
                await browser.new_context(locale="de-DE", viewport={"width": 1200, "height": 800})
            ).new_page()
            await kim.add_init_script(live_trace.PAGE_SCRIPT)
            lea = await (
                await browser.new_context(locale="en-GB", viewport={"width": 1200, "height": 800})
            ).new_page()
            await lea.add_init_script(live_trace.PAGE_SCRIPT)
            await _login(kim, stack.base_url, "kim@laden.example")
            await _login(lea, stack.base_url, "lea@laden.example")
            assert await kim.locator("text=Abmelden").count() == 1, "Kim reads German"
            assert await lea.locator("text=Sign out").count() == 1, "Lea reads English"
            # Kim starts her shift (agents start offline; an offline assignee's chats go back to the queue).
            async with kim.expect_navigation():
                await kim.select_option("select[name=availability]", "available")
            await asyncio.sleep(0.5)  # both pages are connected to the live stream

            xss = '<img src=x onerror="window.__xss=1">Hallo, ist das Rad da?'
            await stack.sim.customer_sends("4915112345678", name="Jana Müller", body=xss)
            # The list's rows (its waiting-queue section may name her too while she waits).
            for page in (kim, lea):
                await page.locator("#list > ul >> text=Jana Müller").wait_for(timeout=5000)

            await kim.click("#list > ul >> text=Jana Müller")
            await kim.locator(".timeline >> text=Hallo, ist das Rad da?").wait_for()
            assert await kim.evaluate("window.__xss") is None, "customer text must never run"
            await kim.click("button:has-text('Übernehmen')")
            await kim.fill("#reply-body", "Ja, ist da!")
            await kim.click("form.reply button[type=submit]")
            await kim.locator(".timeline >> text=Ja, ist da!").wait_for()
            await kim.fill("#note-body", "Stammkundin, Rabatt anbieten")
            # A live refresh while Kim types (the customer writes again) must keep her draft.
            await stack.sim.customer_sends("4915112345678", name="Jana Müller", body="Größe 42?")
            try:
                await kim.locator(".timeline >> text=Größe 42?").wait_for()
            except playwright_api.TimeoutError:
                missing = "Kim's open conversation never showed the customer's 'Größe 42?'"
                raise AssertionError(await live_trace.explain(kim, hints, missing)) from None
            assert await kim.input_value("#note-body") == "Stammkundin, Rabatt anbieten"
            await kim.click("form.note-form button[type=submit]")
            await kim.locator(".timeline .note >> text=Stammkundin").wait_for()
            await _send_reply(kim, runtime, "/gruss", "Hallo Jana, hier ist Kim!")
            await kim.locator(".timeline >> text=Hallo Jana, hier ist Kim!").wait_for()
            await kim.locator(".tick-read").first.wait_for(timeout=10000)

            for _ in range(80):  # the second reply's send job may still be on its way
                if len(stack.sim.ledger) >= 2:
                    break
                await asyncio.sleep(0.25)
            bodies = [e.payload.get("text", {}).get("body") for e in stack.sim.ledger]
            # Two quick replies go out through concurrent send jobs; their order is not guaranteed.
            assert sorted(bodies) == ["Hallo Jana, hier ist Kim!", "Ja, ist da!"], (
                "the note never reached the customer"
            )
            # Kim took it: an agent sees only her own and unassigned conversations, so it leaves Lea's list live.
            # The list and its waiting-queue section refresh separately, so for a moment both may name her.
            try:
                await playwright_api.expect(lea.locator("#list >> text=Jana Müller")).to_have_count(
                    0, timeout=5000
                )
            except AssertionError as failed:
                missing = f"Lea's list still names Jana after Kim took her: {failed}"
                story = await live_trace.assignments(runtime, ws)
                raise AssertionError(
                    await live_trace.explain(lea, hints, missing) + "\n" + story
                ) from None
            if os.environ.get("TRESEN_SCREENSHOTS"):
                SCREENSHOTS.mkdir(exist_ok=True)
                await kim.screenshot(path=str(SCREENSHOTS / "inbox-conversation-de.png"))
                await lea.screenshot(path=str(SCREENSHOTS / "inbox-list-en.png"))
                login = await (
                    await browser.new_context(
                        locale="de-DE", viewport={"width": 900, "height": 600}
                    )
                ).new_page()
                await login.goto(f"{stack.base_url}/inbox/login")
                await login.screenshot(path=str(SCREENSHOTS / "inbox-login-de.png"))
            await browser.close()
