"""The web chat widget in Chromium, embedded on a shop page served from another origin."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from litestar import Litestar, get
from litestar.response import Response
from sqlalchemy import select

from tests.channels.test_webchat import running_chat
from tests.web.test_browser import ARGS, chromium_path  # noqa: F401 (fixture)
from tresen.db.tables import Message
from tresen.events import TYPING, Event
from tresen.runtime import Runtime
from tresen.sim.server import serve_asgi

playwright_api = pytest.importorskip("playwright.async_api")

# Test-only hook: keep a handle on the widget's closed shadow root to read what it shows.
CAPTURE_SHADOW = """
(() => {
  const attach = Element.prototype.attachShadow;
  window.__roots = [];
  Element.prototype.attachShadow = function (init) {
    const root = attach.call(this, init);
    window.__roots.push(root);
    return root;
  };
})();
"""
LOG_TEXT = "window.__roots[0].querySelector('[role=log]').textContent"
ALERT_TEXT = "window.__roots[0].querySelector('[role=alert]').textContent"


def shop_app(embed: dict[str, str]) -> Litestar:
    """A shop's page on its own origin that embeds the widget with one script tag."""

    @get("/")
    async def page() -> Response[str]:
        html = (
            "<!doctype html><html lang='de'><head><meta charset='utf-8'><title>Shop</title>"
            f"</head><body><h1>Fahrradladen</h1><script src='{embed['src']}' "
            f"data-channel='{embed['channel']}' defer></script></body></html>"
        )
        return Response(html, media_type="text/html")

    return Litestar([page])


async def wait_for(page: Any, expression: str, timeout: float = 8.0) -> Any:
    """Poll a JavaScript expression in the page until it is truthy."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await page.evaluate(
            f"(() => {{ try {{ return {expression}; }} catch (e) {{ return null; }} }})()"
        )
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {expression}")
        await asyncio.sleep(0.1)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_widget_on_a_shop_page(runtime: Runtime, chromium_path: str) -> None:  # noqa: F811
    embed: dict[str, str] = {}
    async with (
        serve_asgi(shop_app(embed), lifespan="off") as shop_url,
        running_chat(runtime, allowed_origins=[shop_url], max_upload_bytes=1000) as chat,
    ):
        embed.update(src=f"{chat.base_url}/widget.js", channel=chat.channel.id)
        async with playwright_api.async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=chromium_path, args=ARGS)
            context = await browser.new_context(locale="en-GB")
            await context.add_init_script(CAPTURE_SHADOW)
            page = await context.new_page()
            # Subscribe to file choosers now: Playwright turns the browser's interception on with
            # an unawaited message when the first listener comes, so subscribing only right
            # before the key press let the press win that race on a loaded machine (no event).
            page.on("filechooser", lambda _chooser: None)
            requests: list[str] = []
            page.on("request", lambda r: requests.append(r.url))
            await page.goto(shop_url)
            await wait_for(page, "window.__roots.length === 1")

            # Keyboard only: Tab to the launcher, Enter opens, the privacy notice comes first.
            await page.keyboard.press("Tab")
            await page.keyboard.press("Enter")
            await wait_for(page, "window.__roots[0].textContent.includes('Wir speichern')")
            await wait_for(page, "window.__roots[0].activeElement.tagName === 'BUTTON'")
            await page.keyboard.press("Enter")  # "Einverstanden" has the focus
            await page.keyboard.type("Ist das blaue Rad noch da?")
            await page.keyboard.press("Enter")
            await wait_for(page, f"{LOG_TEXT}.includes('Ist das blaue Rad noch da?')")

            async with runtime.sessions() as session:
                stored = await session.scalar(select(Message))
            assert stored is not None and stored.body == "Ist das blaue Rad noch da?"

            await runtime.events.publish(
                Event(chat.channel.workspace_id, TYPING, stored.conversation_id, {"typing": True})
            )
            # The workspace's language (German), not the browser's (English).
            await wait_for(page, "window.__roots[0].textContent.includes('Wir schreiben gerade')")
            xss = '<img src=x onerror="window.__xss=1">Ja, ist da!'
            sent = await chat.api.post(
                f"/api/v1/conversations/{stored.conversation_id}/messages",
                json={"kind": "text", "body": xss},
            )
            assert sent.status_code < 300, sent.text
            await wait_for(page, f"{LOG_TEXT}.includes({json.dumps(xss)})")
            assert await page.evaluate("window.__xss") is None, "agent text never runs"
            assert await page.evaluate("window.__roots[0].querySelectorAll('img').length") == 0
            assert not await page.evaluate(
                "window.__roots[0].textContent.includes('Wir schreiben gerade')"
            ), "a reply ends the typing indicator"

            # A file over the limit: a clear error, nothing uploaded.
            await page.keyboard.press("Tab")  # from the message box to "Attach a file"
            async with page.expect_file_chooser() as chooser:
                await page.keyboard.press("Space")
            await (await chooser.value).set_files(
                {"name": "rad.png", "mimeType": "image/png", "buffer": b"\x89PNG" + b"0" * 5000}
            )
            await wait_for(page, f"{ALERT_TEXT}.includes('zu groß')")

            # Escape closes; a reload keeps the session and shows the history.
            await page.keyboard.press("Escape")
            assert await page.evaluate("window.__roots[0].querySelector('[role=dialog]').hidden")
            await page.reload()
            await wait_for(page, "window.__roots.length === 1")
            await page.keyboard.press("Tab")
            await page.keyboard.press("Enter")
            await wait_for(page, f"{LOG_TEXT}.includes('Ja, ist da!')")
            assert await page.evaluate(f"{LOG_TEXT}.includes('Ist das blaue Rad noch da?')")
            async with runtime.sessions() as session:
                count = len(list(await session.scalars(select(Message))))
            assert count == 2, "one conversation, one visitor: nothing new after the reload"

            tresen_origin = chat.base_url.rstrip("/")
            foreign = [u for u in requests if not u.startswith((shop_url, tresen_origin))]
            assert foreign == [], "the widget makes no request to a third party"
            await browser.close()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_demo_page_under_strict_csp(runtime: Runtime, chromium_path: str) -> None:  # noqa: F811
    async with (
        running_chat(runtime, privacy_notice="") as chat,
        playwright_api.async_playwright() as pw,
    ):
        browser = await pw.chromium.launch(executable_path=chromium_path, args=ARGS)
        context = await browser.new_context(locale="de-DE")
        await context.add_init_script(CAPTURE_SHADOW)
        page = await context.new_page()
        violations: list[str] = []
        page.on(
            "console",
            lambda m: violations.append(m.text) if "Content Security" in m.text else None,
        )
        # The demo page's origin is TRESEN_BASE_URL (never whatever Host the request names).
        runtime.settings = runtime.settings.with_overrides(base_url=chat.base_url)
        await page.goto(f"{chat.base_url}/chat/{chat.channel.id}/demo")
        await wait_for(page, "window.__roots.length === 1")
        await page.keyboard.press("Tab")
        await page.keyboard.press("Enter")
        await wait_for(page, "window.__roots[0].activeElement.tagName === 'TEXTAREA'")
        await page.keyboard.type("Hallo")
        await page.keyboard.press("Enter")
        await wait_for(page, f"{LOG_TEXT}.includes('Hallo')")
        assert (
            await page.evaluate(
                "getComputedStyle(window.__roots[0].querySelector('button')).position"
            )
            == "fixed"
        ), "styles apply under the strict CSP"
        assert violations == []
        await browser.close()
