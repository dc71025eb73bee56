"""A broadcast created in the browser: audience, text, quiet hours, schedule in the workspace's
zone, a test send to the admin's own number; refused drafts name the problem and store nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, select

from tests.broadcast.conftest import Shop
from tests.broadcast.test_report_page import _client
from tests.inbox.test_pages import _csrf
from tresen.db.tables import Campaign, Message


async def test_a_broadcast_is_drafted_scheduled_and_tested_in_the_browser(shop: Shop) -> None:
    await shop.subscribers(2, window_open=True)
    async with _client(shop, "supervisor", "de") as supervisor:
        page = await supervisor.get("/inbox/admin/campaigns")
        assert 'action="/inbox/admin/campaign-drafts"' in page.text
        assert "Als Entwurf speichern" not in page.text, "supervisors only count"
        refused = await supervisor.post(
            "/inbox/admin/campaign-drafts",
            data={
                "name": "x",
                "topic": shop.topic.keyword,
                "text": "x",
                "_csrf_token": _csrf(page.text),
            },
        )
        assert refused.status_code == 403
    async with _client(shop, "admin", "de") as admin:
        page = await admin.get("/inbox/admin/campaigns")
        token = _csrf(page.text)
        assert "Europe/Berlin" in page.text, "the form names the zone of its times"
        form = {
            "name": "Frühlingsfest",
            "topic": shop.topic.keyword,
            "text": "Hallo {first_name}, am Samstag feiern wir!",
            "quiet_hours": "21:00-08:00",
            "_csrf_token": token,
        }
        bad = await admin.post(
            "/inbox/admin/campaign-drafts", data={**form, "quiet_hours": "abends"}
        )
        assert bad.status_code == 422 and 'value="Frühlingsfest"' in bad.text
        past = await admin.post(
            "/inbox/admin/campaign-drafts", data={**form, "at": "2020-01-01T10:00"}
        )
        assert past.status_code == 422
        async with shop.runtime.sessions() as session:
            assert await session.scalar(select(func.count()).select_from(Campaign)) == 0
        local = (datetime.now(ZoneInfo("Europe/Berlin")) + timedelta(days=2)).replace(
            hour=10, minute=0, second=0, microsecond=0
        )
        made = await admin.post(
            "/inbox/admin/campaign-drafts",
            data={**form, "at": local.strftime("%Y-%m-%dT%H:%M")},
        )
        assert made.status_code == 303
        campaign_id = made.headers["location"].rsplit("/", 1)[1]
        async with shop.runtime.sessions() as session:
            row = await session.get_one(Campaign, campaign_id)
            assert row.state == "scheduled" and row.quiet_hours == "21:00-08:00"
            assert row.scheduled_at == local.astimezone(UTC)
        report_page = await admin.get(made.headers["location"])
        assert "Test senden" in report_page.text
        unknown = await admin.post(
            f"/inbox/admin/campaign-tests/{campaign_id}",
            data={
                "channel": shop.stack.channel.id,
                "address": "4900000000000",
                "_csrf_token": token,
            },
        )
        assert unknown.headers["location"].endswith("error=test_address")
        async with shop.runtime.sessions() as session:
            before = await session.scalar(select(func.count()).select_from(Message))
        tested = await admin.post(
            f"/inbox/admin/campaign-tests/{campaign_id}",
            data={
                "channel": shop.stack.channel.id,
                "address": "4915000000000",
                "_csrf_token": token,
            },
        )
        assert tested.headers["location"].endswith("tested=1"), tested.headers["location"]
        async with shop.runtime.sessions() as session:
            after = await session.scalar(select(func.count()).select_from(Message))
        assert after == (before or 0) + 1
