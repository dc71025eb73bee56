"""The web chat's consent step in Chromium: the widget's notice is the question, nothing else."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select, update

from tests.bot.kbdata import import_kb
from tests.channels.test_webchat import running_chat
from tests.web.test_browser import ARGS, chromium_path  # noqa: F401 (fixture)
from tests.web.test_webchat_browser import CAPTURE_SHADOW, LOG_TEXT, shop_app, wait_for
from tresen.db.tables import ConsentEvent, Contact, Message, Workspace
from tresen.runtime import Runtime
from tresen.sim.server import serve_asgi

playwright_api = pytest.importorskip("playwright.async_api")

POLICY = "https://fahrradladen.example/datenschutz"
COLOUR = "#0f766e"
ROOT = "window.__roots[0]"
SHOTS = Path(__file__).parents[2] / "build" / "screenshots"


async def _profile(runtime: Runtime, workspace_id: str) -> None:
    """The business profile names the privacy policy and the colour."""
    async with runtime.sessions() as session, session.begin():
        await session.execute(
            update(Workspace)
            .where(Workspace.id == workspace_id)
            .values(settings={"profile": {"privacy_url": POLICY, "colour": COLOUR}})
        )


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_accepting_the_widget_notice_is_the_consent(
    runtime: Runtime,
    chromium_path: str,  # noqa: F811
) -> None:
    runtime.settings = runtime.settings.with_overrides(consent_first=True)
    embed: dict[str, str] = {}
    async with (
        serve_asgi(shop_app(embed), lifespan="off") as shop_url,
        running_chat(
            runtime, allowed_origins=[shop_url], privacy_notice="", privacy_link=""
        ) as chat,
    ):
        await _profile(runtime, chat.channel.workspace_id)
        await import_kb(runtime, chat.channel.workspace_id)
        embed.update(src=f"{chat.base_url}/widget.js", channel=chat.channel.id)
        async with playwright_api.async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=chromium_path, args=ARGS)
            # An English browser: the widget still speaks the business's language (German).
            context = await browser.new_context(
                locale="en-GB", viewport={"width": 800, "height": 640}
            )
            await context.add_init_script(CAPTURE_SHADOW)
            page = await context.new_page()
            await page.goto(shop_url)
            await wait_for(page, "window.__roots.length === 1")
            await page.keyboard.press("Tab")
            await page.keyboard.press("Enter")
            await wait_for(page, f"{ROOT}.textContent.includes('verarbeitet Ihre Nachrichten')")
            notice = await page.evaluate(f"{ROOT}.querySelector('.v').textContent")
            assert "Testladen verarbeitet Ihre Nachrichten in diesem Chat" in notice
            link = await page.evaluate(
                f"[{ROOT}.querySelector('.v a').href, {ROOT}.querySelector('.v a').textContent]"
            )
            assert link == [POLICY, "Datenschutzerklärung"]
            assert await page.evaluate(f"{ROOT}.querySelector('textarea').disabled"), (
                "nothing can be written before the notice is accepted"
            )
            colour = await page.evaluate(
                f"getComputedStyle({ROOT}.querySelector('header')).backgroundColor"
            )
            assert colour == "rgb(15, 118, 110)", "the business colour"
            SHOTS.mkdir(parents=True, exist_ok=True)
            await page.screenshot(path=str(SHOTS / "webchat-consent-step.png"))

            button = await page.evaluate(f"{ROOT}.activeElement.textContent")
            assert button == "Einverstanden"
            await page.keyboard.press("Enter")
            await page.keyboard.type("Was kostet der Versand?")
            await page.keyboard.press("Enter")
            # The bot answers the first message at once: no consent question in the chat.
            await wait_for(page, f"{LOG_TEXT}.includes('Der Versand kostet 4,90')", timeout=20)
            await page.screenshot(path=str(SHOTS / "webchat-consent-answered.png"))
            await browser.close()
    async with runtime.sessions() as session:
        state = await session.scalar(select(Contact.consent_state))
        events = list(await session.scalars(select(ConsentEvent)))
        sent = list(
            await session.scalars(select(Message.body).where(Message.direction == "outbound"))
        )
    assert state == "granted"
    assert [(e.action, e.source, e.language) for e in events] == [
        ("granted", "webchat widget", "de")
    ]
    assert events[0].text_hash and len(events[0].text_hash) == 64
    assert sent == ["Der Versand kostet 4,90 €, ab 50 € ist er kostenlos."], "no question asked"
