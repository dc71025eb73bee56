"""Dispatch: the audience is fixed once, everyone gets one message, statuses come back."""

from __future__ import annotations

import re
from typing import Any

import httpx
from sqlalchemy import func, select

from tests.broadcast.conftest import Shop
from tresen.app import create_app
from tresen.broadcast import campaigns, links, report
from tresen.db.tables import Campaign, CampaignRecipient, Contact, Message, TrackedLink

TEMPLATE = {"name": "news_update", "language": "de", "parameters": ["{first_name}"]}
CONTENT: dict[str, Any] = {
    "text": "Hallo {first_name}, neu im Laden!",
    "channels": {"whatsapp": {"template": TEMPLATE}},
}


async def _campaign(shop: Shop, **kwargs: Any) -> str:
    async with shop.runtime.sessions() as session, session.begin():
        campaign = await campaigns.create_campaign(
            session,
            shop.workspace_id,
            name=kwargs.pop("name", "Frühjahr"),
            topic="neuigkeiten",
            content=kwargs.pop("content", CONTENT),
            quiet_hours=kwargs.pop("quiet_hours", None),
            **kwargs,
        )
        await campaigns.start(session, campaign)
        return campaign.id


async def test_everyone_gets_exactly_one_message(shop: Shop) -> None:
    await shop.subscribers(40)
    campaign_id = await _campaign(shop)
    assert await shop.dispatcher.drain(campaign_id) == "done"
    async with shop.runtime.sessions() as session:
        states = await campaigns.progress(session, campaign_id)
        audience = await session.scalar(select(func.count()).select_from(CampaignRecipient))
        kinds = set(await session.scalars(select(Message.content_kind)))
    assert states == {"sent": 40}
    assert audience == 40
    assert kinds == {"template"}
    assert len(shop.stack.sim.ledger) == 40
    assert shop.stack.sim.duplicates() == 0


async def test_campaign_links_are_tracked_and_clicks_reach_the_report(shop: Shop) -> None:

    await shop.subscribers(3, window_open=True)
    url = "https://laden.example/fruehjahr?x=1"
    campaign_id = await _campaign(shop, content={"text": f"Hallo {{first_name}}, alles neu: {url}"})
    assert await shop.dispatcher.drain(campaign_id) == "done"
    async with shop.runtime.sessions() as session:
        bodies = list(await session.scalars(select(Message.body)))
    assert len(bodies) == 3 and all(url not in (b or "") for b in bodies)
    tokens = {m.group(1) for b in bodies if (m := re.search(r"/l/([A-Za-z0-9_-]+)", b or ""))}
    assert len(tokens) == 1, "nobody consented to tracking: one shared anonymous link"
    app = create_app(
        shop.runtime.settings, runtime=shop.runtime, embedded_worker=False, migrate=False
    )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as client:
        (token,) = tokens
        for _ in range(2):
            hop = await client.get(f"/l/{token}", follow_redirects=False)
            assert hop.status_code == 302 and hop.headers["location"] == url
    async with shop.runtime.sessions() as session:
        figures = await report.build(session, await session.get_one(Campaign, campaign_id))
    assert figures.clicks == [{"link": url, "clicks": 2, "people": 0}]


async def test_links_are_per_person_only_for_those_who_consented(shop: Shop) -> None:

    contact_ids = await shop.subscribers(5, window_open=True)
    async with shop.runtime.sessions() as session, session.begin():
        for contact_id, actions in zip(
            contact_ids, (["granted"], ["granted"], ["granted", "withdrawn"], [], []), strict=True
        ):
            contact = await session.get_one(Contact, contact_id)
            for action in actions:
                await links.record_consent(session, contact, action, source="test")
    urls = ("https://laden.example/a", "https://laden.example/b")
    text = f"Hallo {{first_name}}: {urls[0]} und {urls[1]}."
    campaign_id = await _campaign(shop, content={"text": text})
    assert await shop.dispatcher.drain(campaign_id) == "done"
    async with shop.runtime.sessions() as session:
        sent = list(await session.scalars(select(Message.body)))
        rows = (
            await session.execute(
                select(TrackedLink.token, TrackedLink.contact_id, TrackedLink.url)
            )
        ).all()
    owner = {token: (contact_id, url) for token, contact_id, url in rows}
    by_contact: dict[str | None, list[tuple[str, str]]] = {}
    for body in sent:
        tokens = re.findall(r"/l/([A-Za-z0-9_-]+)", body or "")
        assert len(tokens) == 2 and body.endswith("."), body
        for token in tokens:
            contact_id, url = owner[token]
            by_contact.setdefault(contact_id, []).append((token, url))
    assert set(by_contact) == {contact_ids[0], contact_ids[1], None}
    for person in contact_ids[:2]:
        assert sorted(url for _, url in by_contact[person]) == list(urls)
    anonymous = by_contact[None]
    assert len(anonymous) == 6 and len({token for token, _ in anonymous}) == 2, (
        "three recipients without consent share one link per URL"
    )
    assert len(rows) == 6, "2 own links for each of 2 consenting people + 2 shared ones"
