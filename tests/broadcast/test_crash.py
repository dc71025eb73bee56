"""A worker killed with SIGKILL mid-campaign: after a restart everyone has exactly one message."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

from sqlalchemy import select

from tests.broadcast.conftest import Shop
from tresen.bench.broadcast import start_worker, stop_worker, worker_env
from tresen.broadcast import campaigns
from tresen.db.tables import Campaign, ChannelRow

CONTENT = {
    "text": "Hallo {first_name}",
    "channels": {
        "whatsapp": {
            "template": {"name": "news_update", "language": "de", "parameters": ["{first_name}"]}
        }
    },
}


async def _state(shop: Shop, campaign_id: str) -> str:
    async with shop.runtime.sessions() as session:
        return str(await session.scalar(select(Campaign.state).where(Campaign.id == campaign_id)))


async def test_sigkill_mid_campaign_then_restart(shop: Shop, tmp_path: Path) -> None:
    audience = 300
    await shop.subscribers(audience)
    # 100 messages/s and two statuses each: SQLite shared by two processes keeps up on a busy box.
    shop.stack.sim.config.auto_read = False
    async with shop.runtime.sessions() as session, session.begin():
        channel = await session.get_one(ChannelRow, shop.stack.channel.id)
        channel.config = {**channel.config, "messages_per_second": 100}
    async with shop.runtime.sessions() as session, session.begin():
        campaign = await campaigns.create_campaign(
            session, shop.workspace_id, name="Absturz", topic="neuigkeiten", content=CONTENT,
            quiet_hours=None,
        )  # fmt: skip
        await campaigns.start(session, campaign)
    env = worker_env(shop.runtime.settings.database_url, tmp_path, "", lease=3.0)
    sim = shop.stack.sim
    first = start_worker(env, tmp_path, tmp_path / "worker1.log")
    try:
        deadline = time.monotonic() + 120
        while len(sim.ledger) < audience // 4:
            assert first.poll() is None, (tmp_path / "worker1.log").read_text()[-2000:]
            assert time.monotonic() < deadline, "the worker sent nothing"
            await asyncio.sleep(0.01)
        os.kill(first.pid, signal.SIGKILL)
        first.wait(10)
        at_kill = len(sim.ledger)
        assert at_kill < audience, "killed too late to test anything"
        second = start_worker(env, tmp_path, tmp_path / "worker2.log")
        try:
            deadline = time.monotonic() + 180
            while await _state(shop, campaign.id) != "done":
                assert second.poll() is None, (tmp_path / "worker2.log").read_text()[-2000:]
                assert time.monotonic() < deadline, f"not done: {len(sim.ledger)} accepted"
                await asyncio.sleep(0.2)
        finally:
            stop_worker(second)
    finally:
        stop_worker(first, grace=1)
    async with shop.runtime.sessions() as session:
        states = await campaigns.progress(session, campaign.id)
    assert states == {"sent": audience}
    accepted = {entry.biz_opaque_callback_data for entry in sim.ledger}
    assert len(accepted) == audience, "someone got nothing"
    assert sim.duplicates() == 0, f"sent twice after the kill at {at_kill}: {sim.stats()}"
