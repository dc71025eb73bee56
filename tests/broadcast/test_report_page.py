"""The report page and the live segment count, in German and English, for admins only."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from sqlalchemy import select

from tests.broadcast.conftest import Shop
from tests.broadcast.test_campaigns import _start
from tests.inbox.test_pages import PASSWORD, _csrf, _login
from tresen.app import create_app
from tresen.broadcast import report, topics
from tresen.db.tables import Campaign, CampaignRecipient, Contact
from tresen.inbox import accounts


@asynccontextmanager
async def _client(shop: Shop, role: str, language: str) -> AsyncIterator[httpx.AsyncClient]:
    async with shop.runtime.sessions() as session, session.begin():
        await accounts.add_user(
            session, shop.workspace_id, f"{role}-{language}@shop.test", role, PASSWORD,
            language=language,
        )  # fmt: skip
    app = create_app(
        shop.runtime.settings, runtime=shop.runtime, embedded_worker=False, migrate=False
    )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as client:
        await _login(client, f"{role}-{language}@shop.test")
        yield client


async def test_report_page_funnel_chart_and_actions(shop: Shop) -> None:
    contact_ids = await shop.subscribers(4)
    campaign_id = await _start(shop)
    assert await shop.dispatcher.drain(campaign_id) == "done"
    async with shop.runtime.sessions() as session:
        message_ids = list(
            await session.scalars(
                select(CampaignRecipient.message_id).where(
                    CampaignRecipient.campaign_id == campaign_id
                )
            )
        )
    await shop.stack.wait_states(message_ids, {"read"}, timeout=20)
    async with shop.runtime.sessions() as session:
        figures = await report.build(session, await session.get_one(Campaign, campaign_id))
    assert (figures.audience, figures.sent, figures.delivered, figures.read) == (4, 4, 4, 4)
    assert figures.series and figures.series[-1][1:] == (4, 4, 4)
    assert figures.clicks == []
    assert figures.opted_out_after == 0
    async with shop.runtime.sessions() as session, session.begin():
        contact = await session.get_one(Contact, contact_ids[0])
        await topics.withdraw(session, contact, None, shop.topic, "STOP", "de")
    async with shop.runtime.sessions() as session:
        figures = await report.build(session, await session.get_one(Campaign, campaign_id))
    assert figures.opted_out_after == 1, "who left the topic after this campaign is counted"

    async with _client(shop, "admin", "de") as admin:
        page = await admin.get(f"/inbox/admin/campaigns/{campaign_id}")
        assert page.status_code == 200
        assert "Zustellung" in page.text and "Gelesen" in page.text
        assert "<th>Danach abgemeldet</th><td>1</td>" in page.text
        assert re.search(r'<polyline points="[0-9., ]+"', page.text), "the chart has points"
        assert "http" not in page.text.split("<svg", 1)[1].split("</svg>", 1)[0].replace(
            "http://www.w3.org", ""
        ), "the chart loads nothing from elsewhere"
        listing = await admin.get("/inbox/admin/campaigns")
        assert "Frühjahr" in listing.text
        count = await admin.get("/inbox/admin/campaigns/count", params={"topic": "neuigkeiten"})
        assert "3 Kontakte" in count.text, "one of the four left the topic"
        bad = await admin.get("/inbox/admin/campaigns/count", params={"language": "Deutsch"})
        assert (
            bad.status_code == 200 and "Die Sprache muss ein Code wie de oder en sein" in bad.text
        )
        # A finished campaign cannot be paused; the page says so instead of failing.
        paused = await admin.post(
            f"/inbox/admin/campaigns/{campaign_id}/pause",
            data={"_csrf_token": _csrf((await admin.get("/inbox/login")).text)},
        )
        assert paused.status_code in (302, 303)
        assert "error=state" in paused.headers["location"]

    async with _client(shop, "supervisor", "en") as english:
        page = await english.get(f"/inbox/admin/campaigns/{campaign_id}")
        assert page.status_code == 200 and "Delivery funnel" in page.text
        assert "/pause" not in page.text, "supervisors see the report, not the buttons"
        refused = await english.post(
            f"/inbox/admin/campaigns/{campaign_id}/cancel",
            data={"_csrf_token": _csrf((await english.get("/inbox/login")).text)},
        )
        assert refused.status_code == 403
        missing = await english.get("/inbox/admin/campaigns/01nosuchcampaign0000000000")
        assert missing.status_code == 404


async def test_clicks_per_link_are_counted_and_drawn(shop: Shop) -> None:
    await shop.subscribers(2, window_open=True)
    content = {"text": "Neu: https://laden.example/fruehjahr und https://laden.example/sale"}
    campaign_id = await _start(shop, name="Mit Links", content=content)
    assert await shop.dispatcher.drain(campaign_id) == "done"
    tokens = [
        re.findall(r"/l/([A-Za-z0-9_-]+)", e.payload["text"]["body"]) for e in shop.stack.sim.ledger
    ]
    assert len(tokens) == 2 and all(len(t) == 2 for t in tokens)
    async with _client(shop, "admin", "de") as admin:
        for first, _ in tokens:  # both people open the first link, one of them the second too
            assert (await admin.get(f"/l/{first}", follow_redirects=False)).status_code in (
                302,
                303,
                307,
            )
        await admin.get(f"/l/{tokens[0][1]}", follow_redirects=False)
        page = await admin.get(f"/inbox/admin/campaigns/{campaign_id}")
    table = page.text.split('class="clicks"', 1)[1].split("</table>", 1)[0]
    assert "https://laden.example/fruehjahr" in table and "https://laden.example/sale" in table
    widths = [float(w) for w in re.findall(r'<rect width="([0-9.]+)"', table)]
    assert sorted(widths) == [100.0, 200.0], "bars in proportion to the clicks (2 and 1)"
