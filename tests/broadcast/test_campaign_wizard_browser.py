"""The campaign wizard in Chromium, like an owner would use it: a saved segment, the preview, a
test to their own WhatsApp number (the simulator receives it), schedule, pause, resume, start
and the report; every wizard page passes axe-core and shows words of one language only.
TRESEN_SCREENSHOTS=1 saves each step to docs/screenshots."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import insert, select

from tests.pipeline.stack import Stack, running_stack
from tests.web.pagekit import PASSWORD
from tests.web.test_every_page_browser import CONTENT, ENGLISH, GERMAN
from tresen.benchmarks.broadcast import TEMPLATE_BODY, seed_audience
from tresen.broadcast import topics
from tresen.db.tables import Campaign, MessageTemplate, Segment
from tresen.domain.ids import new_id
from tresen.inbox import accounts
from tresen.runtime import Runtime

axe_api = pytest.importorskip("axe_playwright_python.async_playwright")
playwright_api = pytest.importorskip("playwright.async_api")
expect = playwright_api.expect
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
OWNER_NUMBER = "4917000000001"
CAMPAIGN_CONTENT = f"{CONTENT}, .previews, q"
"""What the campaign's own text shows (the business's language), not the UI's words."""
PHONE = {"1-audience", "2-message"}
"""Steps also photographed on a 390 px wide phone."""


async def _shop(stack: Stack) -> str:
    """A topic with three subscribers (two wrote today), an approved template; the topic keyword."""
    ws = stack.channel.workspace_id
    async with stack.runtime.sessions() as session, session.begin():
        topic = await topics.create_topic(session, ws, "neuigkeiten", "Neuigkeiten")
        await session.execute(
            insert(MessageTemplate).values(
                id=new_id(), workspace_id=ws, channel_id=stack.channel.id, name="news_update",
                language="de", category="marketing", body=TEMPLATE_BODY, status="approved",
                updated_at=datetime.now(UTC),
            )
        )  # fmt: skip
    for i in range(2):
        stack.sim.open_window(f"4915{i:09d}")
    now = datetime.now(UTC)
    for start, n, wrote in ((0, 2, now - timedelta(hours=1)), (2, 1, now - timedelta(days=3))):
        await seed_audience(
            stack.runtime.engine, workspace_id=ws, channel_id=stack.channel.id,
            topic_id=topic.id, n=n, start=start, last_inbound_at=wrote,
        )  # fmt: skip
    return topic.keyword


class Checks:
    """axe-core, the console and the language of each page; screenshots on demand."""

    def __init__(self, page: Any, language: str) -> None:
        self.page, self.language = page, language
        self.axe = axe_api.Axe()
        self.problems: list[str] = []
        self.console: list[str] = []
        page.on(
            "console",
            lambda m: self.console.append(m.text) if m.type in ("error", "warning") else None,
        )

    async def look(self, name: str) -> None:
        await self.page.wait_for_load_state("networkidle")
        results = await self.axe.run(self.page)
        for v in results.response["violations"]:
            if v["impact"] in ("serious", "critical"):
                targets = [n["target"] for n in v["nodes"]][:3]
                self.problems.append(f"{name}: axe {v['id']} ({v['impact']}) at {targets}")
        self.problems += [f"{name}: console {c}" for c in self.console]
        self.console.clear()
        text = await self.page.evaluate(
            """(content) => {
                const clone = document.body.cloneNode(true);
                clone.querySelectorAll(content).forEach((el) => el.remove());
                return clone.innerText;
            }""",
            CAMPAIGN_CONTENT,
        )
        wrong = (ENGLISH if self.language == "de" else GERMAN).findall(str(text))
        if wrong:
            self.problems.append(f"{name}: words of the other language {sorted(set(wrong))}")
        if os.environ.get("TRESEN_SCREENSHOTS"):
            SCREENSHOTS.mkdir(exist_ok=True)
            path = SCREENSHOTS / f"campaign-wizard-{name}-{self.language}.png"
            await self.page.screenshot(path=str(path), full_page=True)
            if name in PHONE:
                await self.page.set_viewport_size({"width": 390, "height": 844})
                phone = SCREENSHOTS / f"campaign-wizard-{name}-phone-{self.language}.png"
                await self.page.screenshot(path=str(phone), full_page=True)
                await self.page.set_viewport_size({"width": 1280, "height": 900})


async def _until(check: Any, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, "the wait timed out"
        await asyncio.sleep(0.1)


@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("language", ["de", "en"])
async def test_an_owner_builds_tests_schedules_and_runs_a_campaign(
    runtime: Runtime, language: str
) -> None:
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed")
    async with running_stack(runtime) as stack:
        keyword = await _shop(stack)
        async with runtime.sessions() as session, session.begin():
            await accounts.add_user(
                session, stack.channel.workspace_id, "anna@laden.example", "admin", PASSWORD,
                language=language, display_name="Anna Schmidt",
            )  # fmt: skip
        await stack.customer_writes("Hallo, hier Anna", wa_id=OWNER_NUMBER)
        async with playwright_api.async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            context = await browser.new_context(
                viewport={"width": 1280, "height": 900},
                locale="de-DE" if language == "de" else "en-GB",
            )
            page = await context.new_page()
            page.on("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))
            checks = Checks(page, language)
            base = stack.base_url
            await page.goto(f"{base}/inbox/login")
            await page.fill("input[name=email]", "anna@laden.example")
            await page.fill("input[name=password]", PASSWORD)
            await page.click("main button[type=submit]")
            await page.wait_for_url(f"{base}/inbox")

            await page.goto(f"{base}/inbox/admin/campaigns")
            await page.click("a[href='/inbox/admin/campaigns/wizard']")
            await page.wait_for_url(f"{base}/inbox/admin/campaigns/wizard")
            await page.fill("input[name=name]", "Frühlingsfest")
            await page.select_option("select[name=topic]", keyword)
            count = page.locator("#reach .reach-count")
            await count.wait_for()
            assert (await count.inner_text()).startswith("3 ")
            await page.fill("input[name=active_within_days]", "1")
            await expect(page.locator("#reach .reach-count")).to_have_text(re.compile(r"^2 "))
            await page.fill("input[name=save_as]", "Aktive Kundschaft")
            await checks.look("1-audience")
            await page.click("button[name=go][value=content]")
            await page.wait_for_selector("textarea[name=text]")
            async with runtime.sessions() as session:
                segment = await session.scalar(select(Segment))
            assert segment is not None and segment.name == "Aktive Kundschaft"

            # Back to the audience: the saved segment is chosen and the count stays.
            await page.click("button[name=go][value=audience]")
            await page.wait_for_selector("select[name=segment]")
            assert await page.input_value("select[name=segment]") == segment.id
            await expect(page.locator("#reach .reach-count")).to_have_text(re.compile(r"^2 "))
            await page.click("button[name=go][value=content]")
            await page.fill("textarea[name=text]", "Hallo {first_name}, am Samstag feiern wir!")
            first_bubble = page.locator(".preview-whatsapp .bubble").first
            await expect(first_bubble).to_contain_text("am Samstag")
            bubble = await first_bubble.inner_text()
            assert bubble.startswith("Hallo ") and "{first_name}" not in bubble
            assert not bubble.startswith("Hallo ,"), "a real first name is filled in"
            await page.select_option("select[name=template]", "news_update:de")
            # The value fields come at once (the no-JavaScript button stays hidden).
            await expect(page.locator("input[name=param1]")).to_be_visible()
            await expect(page.locator("button[name=go][value=content]")).to_have_count(0)
            await page.fill("input[name=param1]", "{first_name}")
            await page.wait_for_selector(".preview-whatsapp .bubble.template")
            await checks.look("2-message")
            await page.click("button[name=go][value=create]")
            await page.wait_for_url("**/send")
            campaign_id = page.url.split("/")[-2]

            # A test to my own WhatsApp number: the simulator receives it with my name.
            await page.fill("form.test-send input[name=address]", OWNER_NUMBER)
            await page.click("form.test-send button[type=submit]")
            await page.wait_for_url("**/send?tested=1")

            async def received() -> bool:
                return any(
                    "am Samstag" in m["summary"] for m in stack.sim.messages_for(OWNER_NUMBER)
                )

            await _until(received)
            await checks.look("3-schedule")

            # Schedule for the day after tomorrow, 10:00 in the workspace's zone, no quiet hours.
            local = (datetime.now(ZoneInfo("Europe/Berlin")) + timedelta(days=2)).replace(
                hour=10, minute=0, second=0, microsecond=0
            )
            await page.check("input[name=when][value=later]")
            await page.fill("input[name=at]", local.strftime("%Y-%m-%dT%H:%M"))
            await page.fill("input[name=quiet_hours]", "keine")
            await page.click("form.schedule button[type=submit]")
            await page.wait_for_url("**/confirm?at=*")
            assert (await page.inner_text(".confirm-count")).strip() == "2"
            assert "Europe/Berlin" in await page.inner_text(".confirm-when")
            await checks.look("4-confirm")
            await page.click("main form button[type=submit]")
            await page.wait_for_url(f"{base}/inbox/admin/campaigns/{campaign_id}")

            async def state() -> str:
                async with runtime.sessions() as session:
                    return (await session.get_one(Campaign, campaign_id)).state

            assert await state() == "scheduled"
            async with runtime.sessions() as session:
                row = await session.get_one(Campaign, campaign_id)
            assert row.scheduled_at == local.astimezone(UTC)
            assert row.quiet_hours is None, "„keine“ means around the clock"
            for action, after in (("pause", "paused"), ("resume", "scheduled")):
                await page.click(f"form[action$='/{action}'] button")
                await page.wait_for_load_state("networkidle")
                assert await state() == after
            await page.click("form[action$='/start'] button")

            async def finished() -> bool:
                return await state() == "done"

            await _until(finished, 30)
            for i in range(2):
                assert any("Frühjahrskollektion" not in m["summary"]
                           for m in stack.sim.messages_for(f"4915{i:09d}"))  # fmt: skip
            await page.reload()
            await page.wait_for_selector("table.funnel")
            sent = await page.inner_text("table.funnel tr:nth-child(3) td")
            assert sent.strip() == "2", sent
            await checks.look("5-report")
            await browser.close()
        assert not checks.problems, "\n".join(checks.problems)
