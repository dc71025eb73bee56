"""Campaigns: segments, a fixed audience, caps, quiet hours, pause/resume/cancel, opt-out, templates."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, time, timedelta
from time import monotonic
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select, update

from tests.broadcast.conftest import Shop
from tresen.broadcast import campaigns, segments, topics
from tresen.broadcast.dispatch import RECHECK_SECONDS, Dispatcher, _rate, audience_size, expand
from tresen.db.tables import (
    Campaign,
    CampaignRecipient,
    Contact,
    ContactIdentity,
    Conversation,
    ConversationLabel,
    Label,
    Message,
    MessageTemplate,
    TrackedLink,
)
from tresen.db.types import utcnow
from tresen.domain.ids import new_id
from tresen.privacy.erasure import erase_contact
from tresen.sim.common import TokenBucket

TEMPLATE = {"name": "news_update", "language": "de", "parameters": ["{first_name}"]}
CONTENT: dict[str, Any] = {
    "text": "Hallo {first_name}, neu im Laden!",
    "channels": {"whatsapp": {"template": TEMPLATE}},
}


async def _create(shop: Shop, **kwargs: Any) -> Campaign:
    async with shop.runtime.sessions() as session, session.begin():
        return await campaigns.create_campaign(
            session,
            shop.workspace_id,
            name=kwargs.pop("name", "Frühjahr"),
            topic="neuigkeiten",
            content=kwargs.pop("content", CONTENT),
            quiet_hours=kwargs.pop("quiet_hours", None),
            **kwargs,
        )


async def _start(shop: Shop, **kwargs: Any) -> str:
    campaign = await _create(shop, **kwargs)
    async with shop.runtime.sessions() as session, session.begin():
        await campaigns.start(session, await session.get_one(Campaign, campaign.id))
    return campaign.id


async def _states(shop: Shop, campaign_id: str) -> dict[str, int]:
    async with shop.runtime.sessions() as session:
        return await campaigns.progress(session, campaign_id)


async def test_segments_filter_and_count(shop: Shop) -> None:
    ids = await shop.subscribers(6, window_open=True)
    await shop.subscribers(2, start=100)  # wrote three days ago
    async with shop.runtime.sessions() as session, session.begin():
        for cid in ids[:3]:
            contact = await session.get_one(Contact, cid)
            contact.attributes = {"city": "Köln", "language": "en"}
        label = Label(id=new_id(), workspace_id=shop.workspace_id, name="VIP", colour="red")
        session.add(label)
        await session.flush()
        conv = await session.scalar(select(Conversation).where(Conversation.contact_id == ids[0]))
        assert conv is not None
        session.add(
            ConversationLabel(
                conversation_id=conv.id, label_id=label.id, workspace_id=shop.workspace_id
            )
        )
    async with shop.runtime.sessions() as session:
        ws = shop.workspace_id
        assert await segments.count(session, ws, {}) == 8
        assert await segments.count(session, ws, {"topic": "neuigkeiten"}) == 8
        assert await segments.count(session, ws, {"attributes": {"city": "Köln"}}) == 3
        assert await segments.count(session, ws, {"language": "en"}) == 3
        assert await segments.count(session, ws, {"labels": ["VIP"]}) == 1
        assert await segments.count(session, ws, {"active_within_days": 1}) == 6
        assert await segments.count(session, ws, {"inactive_for_days": 2}) == 2
        assert await segments.count(session, ws, {"channels": ["whatsapp"]}) == 8
        assert (
            await segments.count(
                session, ws, {"attributes": {"city": "Köln"}, "active_within_days": 1}
            )
            == 3
        )
        with pytest.raises(segments.SegmentError):
            await segments.count(session, ws, {"colour": "blue"})
        with pytest.raises(segments.SegmentError):
            await segments.count(session, ws, {"topic": "nosuchtopic"})


async def test_the_audience_is_fixed_once_with_one_row_per_contact(shop: Shop) -> None:
    ids = await shop.subscribers(5)
    campaign_id = await _start(shop)
    assert await shop.dispatcher.expand_one(campaign_id)
    assert not await shop.dispatcher.expand_one(campaign_id), "a second expansion must not run"
    async with shop.runtime.sessions() as session, session.begin():
        campaign = await session.get_one(Campaign, campaign_id)
        # Expanding again (e.g. a retried batch) adds nobody twice.
        assert await expand(session, campaign, datetime.now(UTC)) is None
        assert await audience_size(session, campaign_id) == 5
    await shop.subscribers(3, start=50)  # subscribed after the start: not in this campaign
    assert await shop.dispatcher.drain(campaign_id) == "done"
    async with shop.runtime.sessions() as session:
        rows = list(
            await session.scalars(
                select(CampaignRecipient.contact_id).where(
                    CampaignRecipient.campaign_id == campaign_id
                )
            )
        )
        campaign = await session.get_one(Campaign, campaign_id)
    assert sorted(rows) == sorted(ids)
    assert campaign.audience == 5
    assert await _states(shop, campaign_id) == {"sent": 5}
    assert shop.stack.sim.duplicates() == 0


async def test_the_audience_is_expanded_in_batches_that_resume_after_a_crash(
    shop: Shop,
) -> None:
    ids = await shop.subscribers(11)
    campaign_id = await _start(shop)
    small = Dispatcher(shop.runtime, expand_batch=4)
    # A process that expanded one batch of four and died: its cursor and lease stay behind.
    async with shop.runtime.sessions() as session, session.begin():
        campaign = await session.get_one(Campaign, campaign_id)
        last = await expand(session, campaign, datetime.now(UTC), None, 4)
        assert last == sorted(ids)[3]
        campaign.expanded_through = last
        campaign.expand_lease_until = datetime.now(UTC) + timedelta(seconds=30)
        campaign.started_at = datetime.now(UTC)
    assert not await small.expand_one(campaign_id), "the dead process's lease still holds"
    async with shop.runtime.sessions() as session:
        assert await audience_size(session, campaign_id) == 4
        assert (await session.get_one(Campaign, campaign_id)).state == campaigns.STARTING
    later = Dispatcher(shop.runtime, expand_batch=4, clock=lambda: utcnow() + timedelta(minutes=1))
    assert await later.expand_one(campaign_id), "after the lease another process finishes it"
    async with shop.runtime.sessions() as session:
        campaign = await session.get_one(Campaign, campaign_id)
        rows = list(
            await session.scalars(
                select(CampaignRecipient.contact_id).where(
                    CampaignRecipient.campaign_id == campaign_id
                )
            )
        )
    assert campaign.state == campaigns.RUNNING and campaign.audience == 11
    assert sorted(rows) == sorted(ids), "every subscriber once, none twice"
    assert campaign.expanded_through is None and campaign.expand_lease_until is None
    assert await shop.dispatcher.drain(campaign_id) == "done"
    assert len(shop.stack.sim.ledger) == 11 and shop.stack.sim.duplicates() == 0


async def test_a_pause_during_the_expansion_stops_it_and_resume_finishes_it(shop: Shop) -> None:
    await shop.subscribers(9)
    campaign_id = await _start(shop)
    async with shop.runtime.sessions() as session, session.begin():
        campaign = await session.get_one(Campaign, campaign_id)
        await expand(session, campaign, datetime.now(UTC), None, 3)
        campaign.expanded_through = (
            await session.scalars(
                select(CampaignRecipient.contact_id).order_by(CampaignRecipient.contact_id.desc())
            )
        ).first()
        campaign.started_at = datetime.now(UTC)
        await campaigns.pause(session, campaign)
    small = Dispatcher(shop.runtime, expand_batch=3)
    assert not await small.expand_one(campaign_id), "a paused campaign is not expanded"
    async with shop.runtime.sessions() as session, session.begin():
        resumed = await campaigns.resume(session, await session.get_one(Campaign, campaign_id))
        assert resumed.state == campaigns.STARTING, "its audience is not fixed yet"
    assert await small.expand_one(campaign_id)
    assert await shop.dispatcher.drain(campaign_id) == "done"
    assert await _states(shop, campaign_id) == {"sent": 9}


async def test_the_estimate_counts_what_the_start_would_fix(shop: Shop) -> None:
    ids = await shop.subscribers(5)
    campaign = await _create(shop)
    async with shop.runtime.sessions() as session, session.begin():
        assert await campaigns.audience_estimate(session, campaign) == 5
        await session.execute(
            update(ContactIdentity)
            .where(ContactIdentity.contact_id == ids[0])
            .values(unreachable=True)
        )
        await session.execute(
            update(Contact).where(Contact.id == ids[1]).values(consent_state="refused")
        )
        assert await campaigns.audience_estimate(session, campaign) == 3
    async with shop.runtime.sessions() as session, session.begin():
        await campaigns.start(session, await session.get_one(Campaign, campaign.id))
    assert await shop.dispatcher.expand_one(campaign.id)
    async with shop.runtime.sessions() as session:
        assert (await session.get_one(Campaign, campaign.id)).audience == 3


async def test_frequency_cap_per_contact(shop: Shop) -> None:
    await shop.subscribers(4)
    first = await _start(shop, name="eins", frequency_cap=1)
    assert await shop.dispatcher.drain(first) == "done"
    await shop.subscribers(2, start=20)
    second = await _start(shop, name="zwei", frequency_cap=1)
    assert await shop.dispatcher.drain(second) == "done"
    assert await _states(shop, second) == {"sent": 2}, "only the two new subscribers"
    third = await _start(shop, name="drei", frequency_cap=2)
    assert await shop.dispatcher.drain(third) == "done"
    assert await _states(shop, third) == {"sent": 6}, "everyone had 1 of 2 this week"
    fourth = await _start(shop, name="vier", frequency_cap=2)
    assert await shop.dispatcher.drain(fourth) == "done"
    assert await _states(shop, fourth) == {}, "everyone had 2 of 2 this week"
    assert len(shop.stack.sim.ledger) == 4 + 2 + 6


async def test_quiet_hours_hold_sending_until_they_end(shop: Shop) -> None:
    await shop.subscribers(3)
    berlin = ZoneInfo("Europe/Berlin")
    today = datetime.now(berlin).date()
    clock = {"now": datetime.combine(today, time(22, 0), berlin)}
    dispatcher = Dispatcher(shop.runtime, clock=lambda: clock["now"])
    campaign_id = await _start(shop, quiet_hours="21:00-08:00", time_zone="Europe/Berlin")
    await dispatcher.tick()
    assert await _states(shop, campaign_id) == {"pending": 3}
    assert shop.stack.sim.ledger == []
    tomorrow = today + timedelta(days=1)
    clock["now"] = datetime.combine(tomorrow, time(7, 59), berlin)
    await dispatcher.tick()
    assert shop.stack.sim.ledger == []
    clock["now"] = datetime.combine(tomorrow, time(8, 0), berlin)  # the quiet hours are over
    assert await dispatcher.drain(campaign_id) == "done"
    assert await _states(shop, campaign_id) == {"sent": 3}


def test_quiet_until() -> None:
    at = datetime(2026, 7, 1, 20, 30, tzinfo=UTC)  # 22:30 in Berlin (summer)
    assert campaigns.quiet_until(at, "Europe/Berlin", "21:00-08:00") == datetime(
        2026, 7, 2, 6, 0, tzinfo=UTC
    )
    assert campaigns.quiet_until(at, "Europe/Berlin", "12:00-13:00") is None
    assert campaigns.quiet_until(at, "Europe/Berlin", None) is None
    with pytest.raises(campaigns.CampaignError):
        campaigns.parse_quiet_hours("21-8")


async def test_pause_resume_and_cancel(shop: Shop) -> None:
    await shop.subscribers(6)
    campaign_id = await _start(shop)
    async with shop.runtime.sessions() as session, session.begin():
        await campaigns.pause(session, await session.get_one(Campaign, campaign_id))
    await shop.dispatcher.tick()
    assert shop.stack.sim.ledger == [], "paused before the start: nothing is sent"
    async with shop.runtime.sessions() as session, session.begin():
        await campaigns.resume(session, await session.get_one(Campaign, campaign_id))
    assert await shop.dispatcher.drain(campaign_id) == "done"
    assert await _states(shop, campaign_id) == {"sent": 6}

    await shop.subscribers(4, start=40)
    other = await _start(shop, name="abgesagt")
    assert await shop.dispatcher.expand_one(other)
    async with shop.runtime.sessions() as session, session.begin():
        await campaigns.cancel(session, await session.get_one(Campaign, other))
    await shop.dispatcher.tick()
    assert await _states(shop, other) == {"cancelled": 10}
    assert len(shop.stack.sim.ledger) == 6
    async with shop.runtime.sessions() as session, session.begin():
        with pytest.raises(campaigns.CampaignError):
            await campaigns.resume(session, await session.get_one(Campaign, other))


async def test_a_scheduled_campaign_paused_and_resumed_waits_for_its_time(shop: Shop) -> None:
    await shop.subscribers(3)
    campaign = await _create(shop)
    async with shop.runtime.sessions() as session, session.begin():
        row = await session.get_one(Campaign, campaign.id)
        await campaigns.schedule(session, row, datetime.now(UTC) + timedelta(days=2))
        await campaigns.pause(session, row)
        resumed = await campaigns.resume(session, row)
        assert resumed.state == campaigns.SCHEDULED
    await shop.dispatcher.tick()
    async with shop.runtime.sessions() as session:
        assert (await session.get_one(Campaign, campaign.id)).state == campaigns.SCHEDULED
    assert shop.stack.sim.ledger == [], "nothing goes out before the scheduled time"


async def test_who_opts_out_during_the_campaign_is_skipped(shop: Shop) -> None:
    ids = await shop.subscribers(8)
    campaign_id = await _start(shop)
    assert await shop.dispatcher.expand_one(campaign_id)
    async with shop.runtime.sessions() as session, session.begin():
        for contact_id in ids[:3]:
            contact = await session.get_one(Contact, contact_id)
            await topics.withdraw(session, contact, None, shop.topic, "test", "de")
    assert await shop.dispatcher.drain(campaign_id) == "done"
    assert await _states(shop, campaign_id) == {"sent": 5, "skipped": 3}
    async with shop.runtime.sessions() as session:
        codes = set(
            await session.scalars(
                select(CampaignRecipient.error_code).where(CampaignRecipient.state == "skipped")
            )
        )
    assert codes == {"opted_out"}
    sent_to = {entry.to for entry in shop.stack.sim.ledger}
    assert len(sent_to) == 5


async def test_who_opts_out_while_the_batch_waits_for_the_rate_limit_is_skipped(
    shop: Shop, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = await shop.subscribers(6)
    campaign_id = await _start(shop)
    assert await shop.dispatcher.expand_one(campaign_id)
    loaded = await shop.runtime.bulk_channel(shop.stack.channel.id)
    assert loaded is not None
    bucket = shop.runtime.limiters.bucket(loaded.ref.id, _rate(loaded))
    bucket.pause(2.0)  # as after a 130429: the claimed batch waits, its messages already written
    # The bucket also stays shut until the opt-out is committed, however slow the machine is,
    # and the batch waits at least as long as the dispatcher waits before it checks again.
    opted_out = asyncio.Event()
    take = bucket.take

    async def take_after_the_opt_out(wanted: int) -> int:
        if not opted_out.is_set():
            asked = monotonic()
            await opted_out.wait()
            await asyncio.sleep(max(0.0, RECHECK_SECONDS - (monotonic() - asked)) + 0.05)
        return await take(wanted)

    monkeypatch.setattr(bucket, "take", take_after_the_opt_out)
    sending = asyncio.create_task(shop.dispatcher.drain(campaign_id))
    on_the_way = 0
    for _ in range(200):
        async with shop.runtime.sessions() as session:
            on_the_way = await session.scalar(
                select(func.count()).where(
                    CampaignRecipient.campaign_id == campaign_id,
                    CampaignRecipient.state == "sending",
                )
            )
        if on_the_way == 6 or sending.done():
            break
        await asyncio.sleep(0.05)
    assert on_the_way == 6, "the batch was claimed before the opt-out"
    async with shop.runtime.sessions() as session, session.begin():
        for contact_id in ids[:2]:
            contact = await session.get_one(Contact, contact_id)
            await topics.withdraw(session, contact, None, shop.topic, "test", "de")
    opted_out.set()
    assert await sending == "done"
    assert await _states(shop, campaign_id) == {"sent": 4, "skipped": 2}
    assert len(shop.stack.sim.ledger) == 4, "nobody gets a broadcast after their STOP"
    async with shop.runtime.sessions() as session:
        unsent = (
            await session.execute(
                select(Message.state, Message.error_reason)
                .join(CampaignRecipient, CampaignRecipient.message_id == Message.id)
                .where(CampaignRecipient.state == "skipped")
            )
        ).all()
    assert [state for state, _ in unsent] == ["failed", "failed"]
    assert all("left the topic" in (reason or "") for _, reason in unsent)


@pytest.mark.slow  # waits on a provider's rate limit or injected hangs for many seconds
async def test_rate_limit_130429_backs_off_and_loses_nothing(shop: Shop) -> None:
    # The provider's real cap is lower than the channel's configured rate.
    shop.stack.sim._bucket = TokenBucket(20.0, 5.0)
    await shop.subscribers(40)
    campaign_id = await _start(shop)
    assert await shop.dispatcher.drain(campaign_id, timeout=120) == "done"
    assert shop.stack.sim.rejected[130429] > 0, "the test must hit the cap"
    assert await _states(shop, campaign_id) == {"sent": 40}
    assert len(shop.stack.sim.ledger) == 40
    assert shop.stack.sim.duplicates() == 0


async def test_template_when_the_window_is_closed_text_when_open(shop: Shop) -> None:
    await shop.subscribers(3, window_open=True)
    await shop.subscribers(2, start=30)
    campaign_id = await _start(shop)
    assert await shop.dispatcher.drain(campaign_id) == "done"
    kinds = sorted(entry.type for entry in shop.stack.sim.ledger)
    assert kinds == ["template", "template", "text", "text", "text"]
    texts = [e.payload["text"]["body"] for e in shop.stack.sim.ledger if e.type == "text"]
    assert all(t.startswith("Hallo ") and "{first_name}" not in t for t in texts)
    params = [
        e.payload["template"]["components"][0]["parameters"][0]["text"]
        for e in shop.stack.sim.ledger
        if e.type == "template"
    ]
    assert all(p and "{" not in p for p in params)
    # Without a template, closed windows are skipped (and said so), never sent as free text.
    await shop.subscribers(2, start=60)
    plain = await _start(shop, name="ohne Vorlage", content={"text": "Hallo {first_name}"})
    assert await shop.dispatcher.drain(plain) == "done"
    states = await _states(shop, plain)
    assert states == {"sent": 3, "skipped": 4}


async def test_unapproved_template_is_refused(shop: Shop) -> None:
    await shop.subscribers(1)
    async with shop.runtime.sessions() as session, session.begin():
        await session.execute(
            update(MessageTemplate)
            .where(MessageTemplate.name == "news_update")
            .values(status="pending")
        )
    with pytest.raises(campaigns.CampaignError) as refused:
        await _create(shop)
    assert refused.value.code == "template_not_approved"


async def test_erasing_a_contact_mid_campaign_removes_its_row(shop: Shop) -> None:
    ids = await shop.subscribers(4)
    campaign_id = await _start(shop)
    assert await shop.dispatcher.expand_one(campaign_id)
    async with shop.runtime.sessions() as session, session.begin():
        await erase_contact(
            session,
            secret_key="test-secret-key",
            workspace_id=shop.workspace_id,
            contact_id=ids[0],
            actor_id=None,
            via="test",
        )
    async with shop.runtime.sessions() as session:
        left = await session.scalar(
            select(func.count())
            .select_from(CampaignRecipient)
            .where(CampaignRecipient.contact_id == ids[0])
        )
    assert left == 0
    assert await shop.dispatcher.drain(campaign_id) == "done"
    assert await _states(shop, campaign_id) == {"sent": 3}
    assert "4915000000000" not in {e.to for e in shop.stack.sim.ledger}


async def test_statuses_reach_the_conversation(shop: Shop) -> None:
    await shop.subscribers(3)
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
    rows = await shop.stack.wait_states(message_ids, {"read"}, timeout=20)
    assert all(m.direction == "outbound" and m.conversation_id for m in rows.values())
    assert all(m.payload.get("campaign") == campaign_id for m in rows.values())


async def test_schedule_in_a_time_zone(shop: Shop) -> None:
    await shop.subscribers(2)
    campaign = await _create(shop)
    assert campaigns.parse_local_time("2026-03-01 09:30", "Europe/Berlin") == datetime(
        2026, 3, 1, 8, 30, tzinfo=UTC
    )
    tomorrow = datetime.now(UTC).date() + timedelta(days=1)
    at = campaigns.parse_local_time(f"{tomorrow.isoformat()} 09:30", "Europe/Berlin")
    async with shop.runtime.sessions() as session, session.begin():
        await campaigns.schedule(
            session,
            await session.get_one(Campaign, campaign.id),
            at,
            now=at - timedelta(days=1),
        )
    clock = {"now": at - timedelta(minutes=1)}
    dispatcher = Dispatcher(shop.runtime, clock=lambda: clock["now"])
    await dispatcher.tick()
    async with shop.runtime.sessions() as session:
        assert (await session.get_one(Campaign, campaign.id)).state == "scheduled"
    clock["now"] = at
    assert await dispatcher.drain(campaign.id) == "done"
    assert await _states(shop, campaign.id) == {"sent": 2}


async def test_test_send_goes_to_one_address(shop: Shop) -> None:
    await shop.subscribers(3, window_open=True)
    campaign = await _create(shop)
    async with shop.runtime.sessions() as session, session.begin():
        message_id = await campaigns.test_send(session, campaign, "whatsapp", "4915000000001")
        message = await session.get_one(Message, message_id)
        assert message.body == "Hallo Jürgen, neu im Laden!"
        with pytest.raises(campaigns.CampaignError):
            await campaigns.test_send(session, campaign, "whatsapp", "4900000")
        channel = shop.stack.channel
        for how in (channel.name, channel.id):  # --channel takes a kind, a name or an id
            again = await campaigns.test_send(session, campaign, how, "4915000000001")
            assert (await session.get_one(Message, again)).channel_id == channel.id
        with pytest.raises(campaigns.CampaignError):
            await campaigns.test_send(session, campaign, "Kein solcher Kanal", "4915000000001")
    linked = await _create(shop, name="Mit Link", content={"text": "Neu: https://laden.example/x"})
    async with shop.runtime.sessions() as session, session.begin():
        message_id = await campaigns.test_send(session, linked, "whatsapp", "4915000000001")
        body = (await session.get_one(Message, message_id)).body or ""
        assert "/l/" in body and "laden.example" not in body, "the link is a working redirect"
        tracked = list(await session.scalars(select(TrackedLink.campaign_id)))
    assert tracked == [None], "a test send's clicks never count for the campaign"
