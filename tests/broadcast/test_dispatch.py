"""Dispatch: the audience is fixed once, everyone gets one message, statuses come back."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from tests.broadcast.conftest import Shop
from tresen.broadcast import campaigns
from tresen.db.tables import CampaignRecipient, Message

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
