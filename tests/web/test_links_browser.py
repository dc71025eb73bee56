"""In Chromium: a web chat click-to-chat link opens the widget prefilled; a tracked link redirects and counts."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from tests.channels.test_webchat import running_chat
from tests.web.test_browser import ARGS, chromium_path  # noqa: F401 (fixture)
from tests.web.test_webchat_browser import CAPTURE_SHADOW, LOG_TEXT, shop_app, wait_for
from tresen.broadcast import clicktochat, links, topics
from tresen.db.tables import ChannelRow, LinkClick, Message, TrackedLink
from tresen.runtime import Runtime
from tresen.sim.server import serve_asgi

playwright_api = pytest.importorskip("playwright.async_api")


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_prefilled_chat_and_tracked_link(runtime: Runtime, chromium_path: str) -> None:  # noqa: F811
    embed: dict[str, str] = {}
    async with (
        serve_asgi(shop_app(embed), lifespan="off") as shop_url,
        running_chat(runtime, allowed_origins=[shop_url], page_url=shop_url + "/") as chat,
    ):
        embed.update(src=f"{chat.base_url}/widget.js", channel=chat.channel.id)
        async with runtime.sessions() as session, session.begin():
            topic = await topics.create_topic(
                session, chat.channel.workspace_id, "ticker", "Live-Ticker"
            )
            row = await session.get_one(ChannelRow, chat.channel.id)
            link = clicktochat.link_for(row, clicktochat.prefill(topic), chat.base_url)
            tracked = await links.rewrite_links(
                session,
                f"Mehr unter {shop_url}/?aktion=1.",
                campaign_id="C1",
                contact_id=None,
                per_person=False,
                workspace_id=chat.channel.workspace_id,
                base_url=chat.base_url,
            )
        assert link.url is not None and link.url.startswith(shop_url)
        redirect = tracked.removeprefix("Mehr unter ").removesuffix(".")
        assert redirect.startswith(chat.base_url + "/l/")
        async with playwright_api.async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=chromium_path, args=ARGS)
            context = await browser.new_context(locale="de-DE")
            await context.add_init_script(CAPTURE_SHADOW)
            page = await context.new_page()

            await page.goto(link.url)
            await wait_for(page, "window.__roots.length === 1")
            # The link opens the chat with the text typed in; the visitor sends it.
            await wait_for(page, "!window.__roots[0].querySelector('[role=dialog]').hidden")
            assert (
                await page.evaluate("window.__roots[0].querySelector('textarea').value")
                == "START ticker"
            )
            async with runtime.sessions() as session:
                assert await session.scalar(select(Message)) is None, "nothing is sent by itself"
            # The privacy notice comes with the chat's session, a moment after the dialog.
            await wait_for(page, "window.__roots[0].querySelector('.v button') !== null")
            await page.evaluate("window.__roots[0].querySelector('.v button').click()")
            await page.evaluate("window.__roots[0].querySelector('textarea').focus()")
            await page.keyboard.press("Enter")
            await wait_for(page, f"{LOG_TEXT}.includes('START ticker')")

            await page.goto(redirect)
            assert page.url == f"{shop_url}/?aktion=1"
            await browser.close()
    async with runtime.sessions() as session:
        bodies = list(
            await session.scalars(select(Message.body).where(Message.direction == "inbound"))
        )
        clicks = list(await session.scalars(select(LinkClick)))
        counter = await session.scalar(select(TrackedLink.clicks))
    assert bodies == ["START ticker"]
    assert len(clicks) == 1 and clicks[0].contact_id is None and clicks[0].user_agent is None
    assert counter == 1
