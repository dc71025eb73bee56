"""One person on two channels in a real browser: merge, the all-channels timeline, a picked channel."""

from __future__ import annotations

import os

import pytest

from tests.pipeline.test_reply_channel_e2e import CHAT, two_channels
from tests.web.test_browser import ARGS, PASSWORD, SCREENSHOTS, _login, chromium_path
from tresen.inbox import accounts
from tresen.runtime import Runtime

playwright_api = pytest.importorskip("playwright.async_api")
__all__ = ["chromium_path"]  # the fixture, used by name


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_merge_timeline_and_reply_channel_in_the_browser(
    runtime: Runtime, chromium_path: str
) -> None:
    async with two_channels(runtime) as (stack, tg, _tg_id):
        async with runtime.sessions() as session, session.begin():
            await accounts.add_user(
                session,
                stack.channel.workspace_id,
                "chefin@laden.example",
                "admin",
                PASSWORD,
                display_name="Chefin",
                language="de",
            )
        await stack.customer_writes("Hallo per WhatsApp")
        await tg.customer_sends(CHAT, first_name="Jana", body="Hallo per Telegram")
        async with playwright_api.async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=chromium_path, args=ARGS)
            page = await (
                await browser.new_context(locale="de-DE", viewport={"width": 1200, "height": 900})
            ).new_page()
            await _login(page, stack.base_url, "chefin@laden.example")
            await page.click("#list > ul >> text=Jana Müller")
            await page.locator(".timeline >> text=Hallo per WhatsApp").wait_for()
            await page.click("text=Zusammenführen mit …")
            await page.fill("#merge-q", str(CHAT))
            await page.click("form[role=search] button[type=submit]")
            await page.click(f".candidates >> text={CHAT}")
            await page.click("button:has-text('Zusammenführen')")
            await page.locator(".contact-panel >> text=telegram").first.wait_for()
            assert await page.locator("text=Zusammenführung rückgängig machen").count() == 1
            await page.click("text=Alle Kanäle")
            await page.locator(".timeline >> text=Hallo per Telegram").wait_for()
            badges = await page.locator(".timeline .channel-badge").all_inner_texts()
            assert badges == ["whatsapp", "telegram"]
            await page.wait_for_timeout(500)  # the page is connected to the live stream
            await tg.customer_sends(CHAT, first_name="Jana", body="Noch eine Frage")
            await page.locator(".timeline >> text=Noch eine Frage").wait_for(timeout=5000)
            selected = await page.eval_on_selector(
                "#reply-identity", "s => s.selectedOptions[0].text"
            )
            assert selected.startswith("telegram"), "the customer wrote on Telegram last"
            await page.fill("#reply-body", "Antwort per Telegram")
            await page.click("form.reply button[type=submit]")
            await page.locator(".timeline >> text=Antwort per Telegram").wait_for()
            stack.runtime.jobs_ready.set()
            for _ in range(100):
                if tg.ledger:
                    break
                await page.wait_for_timeout(50)
            assert [e.payload["text"] for e in tg.ledger] == ["Antwort per Telegram"]
            assert stack.sim.ledger == [], "nothing went out on WhatsApp"
            if os.environ.get("TRESEN_SCREENSHOTS"):
                SCREENSHOTS.mkdir(exist_ok=True)
                await page.goto(page.url.split("?")[0])
                await page.screenshot(path=str(SCREENSHOTS / "inbox-contact-merged-de.png"))
            await browser.close()
