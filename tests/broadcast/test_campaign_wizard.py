"""The campaign wizard over HTTP: the live count says who is left out and why, a segment is saved
by name, the preview fills a real contact's values, refused steps keep every field and store
nothing, the schedule is in the workspace's zone, and only admins get in."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select, update

from tests import helpers
from tests.broadcast.conftest import Shop
from tests.broadcast.test_report_page import _client
from tests.inbox.test_pages import _csrf
from tests.web.pagekit import person, sign_in
from tresen.benchmarks.broadcast import address, seed_audience
from tresen.broadcast import campaigns
from tresen.channels.manage import add_channel
from tresen.db.tables import (
    Campaign,
    CampaignRecipient,
    ChannelRow,
    Contact,
    ContactIdentity,
    Message,
    Segment,
    Subscription,
    User,
)
from tresen.runtime import Runtime

WIZARD = "/inbox/admin/campaigns/wizard"


async def _count(shop: Shop, table: type) -> int:
    async with shop.runtime.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(table)) or 0)


async def test_the_live_count_names_who_is_left_out(shop: Shop) -> None:
    open_ids = await shop.subscribers(2, window_open=True)
    closed_ids = await shop.subscribers(3, start=2)
    async with shop.runtime.sessions() as session, session.begin():
        await session.execute(
            update(Contact).where(Contact.id == closed_ids[0]).values(consent_state="refused")
        )
        await session.execute(
            update(Subscription)
            .where(Subscription.contact_id == closed_ids[1])
            .values(state="pending")
        )
    async with _client(shop, "admin", "en") as admin:
        reach = await admin.get(f"{WIZARD}/reach", params={"topic": shop.topic.keyword})
        assert reach.status_code == 200
        assert "2 recipients" not in reach.text and "3 recipients" in reach.text, reach.text
        assert "1 has not confirmed the subscription yet" in reach.text
        assert "1 has objected to being contacted" in reach.text
        assert "WhatsApp: no message for more than 24 hours: 1" in reach.text
        narrowed = await admin.get(
            f"{WIZARD}/reach",
            params={"topic": shop.topic.keyword, "active_within_days": "1"},
        )
        assert "2 recipients" in narrowed.text and "1 does not match the filter" in narrowed.text
        bad = await admin.get(
            f"{WIZARD}/reach", params={"topic": shop.topic.keyword, "language": "Deutsch"}
        )
        assert bad.status_code == 200 and "language must be a code" in bad.text
    async with _client(shop, "admin", "de") as admin:
        reach = await admin.get(f"{WIZARD}/reach", params={"topic": shop.topic.keyword})
        assert (
            "3 Empfänger" in reach.text and "1 hat der Kontaktaufnahme widersprochen" in reach.text
        )
        assert "1 hat das Abo noch nicht bestätigt" in reach.text
    assert len(open_ids) == 2


async def test_the_wizard_saves_a_segment_previews_and_keeps_what_was_entered(
    shop: Shop,
) -> None:
    await shop.subscribers(2, window_open=True)
    await shop.subscribers(1, start=2)
    async with _client(shop, "admin", "en") as admin:
        page = await admin.get(WIZARD)
        assert page.status_code == 200 and 'name="save_as"' in page.text
        token = _csrf(page.text)
        audience = {
            "name": "Spring",
            "topic": shop.topic.keyword,
            "save_as": "Active people",
            "active_within_days": "1",
            "_csrf_token": token,
        }
        bad = await admin.post(WIZARD, data={**audience, "go": "content", "language": "xx-1"})
        assert bad.status_code == 422 and 'value="Spring"' in bad.text
        assert 'value="Active people"' in bad.text, "the form keeps what was entered"
        assert await _count(shop, Segment) == 0
        content_step = await admin.post(WIZARD, data={**audience, "go": "content"})
        assert content_step.status_code == 200 and 'name="text"' in content_step.text
        async with shop.runtime.sessions() as session:
            saved = await session.scalar(select(Segment).where(Segment.name == "Active people"))
        assert saved is not None and saved.filter["active_within_days"] == 1
        assert f'name="segment" value="{saved.id}"' in content_step.text
        assert "3 recipients" not in content_step.text and "2 recipients" in content_step.text

        preview = await admin.get(
            f"{WIZARD}/preview",
            params={"topic": shop.topic.keyword, "segment": saved.id, "text": "Hi {first_name}!"},
        )
        first = preview.text.split('class="bubble">', 1)[1].split("<", 1)[0]
        assert first.startswith("Hi ") and first != "Hi !", "a real contact's first name"

        message = {
            "name": "Spring",
            "topic": shop.topic.keyword,
            "segment": saved.id,
            "text": "Hi {first_name}, spring is here!",
            "template": "news_update:de",
            "_csrf_token": token,
        }
        refused = await admin.post(WIZARD, data={**message, "go": "create"})
        assert refused.status_code == 422 and "fill in every value" in refused.text
        assert "Hi {first_name}, spring is here!" in refused.text
        assert await _count(shop, Campaign) == 0, "a refused step stores nothing"
        made = await admin.post(WIZARD, data={**message, "param1": "{first_name}", "go": "create"})
        assert made.status_code == 303, made.text
        send = made.headers["location"]
        campaign_id = send.split("/")[-2]
        async with shop.runtime.sessions() as session:
            row = await session.get_one(Campaign, campaign_id)
        assert row.state == "draft" and row.segment_id == saved.id
        assert row.content["channels"]["whatsapp"]["template"]["parameters"] == ["{first_name}"]

        page = await admin.get(send)
        assert "Europe/Berlin" in page.text and 'value="21:00-08:00"' in page.text
        late = await admin.post(
            send,
            data={"when": "later", "at": "2020-01-01T10:00", "quiet_hours": "22:00-07:00",
                  "_csrf_token": token},
        )  # fmt: skip
        assert late.status_code == 422 and 'value="2020-01-01T10:00"' in late.text
        quiet = await admin.post(
            send, data={"when": "now", "quiet_hours": "evenings", "_csrf_token": token}
        )
        assert quiet.status_code == 422 and 'value="evenings"' in quiet.text
        local = (datetime.now(ZoneInfo("Europe/Berlin")) + timedelta(days=2)).replace(
            hour=9, minute=30, second=0, microsecond=0
        )
        at = local.strftime("%Y-%m-%dT%H:%M")
        ok = await admin.post(
            send,
            data={"when": "later", "at": at, "quiet_hours": "22:00-07:00", "_csrf_token": token},
        )
        assert ok.status_code == 303 and ok.headers["location"].endswith(f"/confirm?at={at}")
        confirm = await admin.get(ok.headers["location"])
        assert '<td class="confirm-count">2</td>' in confirm.text
        assert "quiet-wait" not in confirm.text, "09:30 is outside 22:00-07:00"
        night = local.replace(hour=23).strftime("%Y-%m-%dT%H:%M")
        waiting = await admin.get(f"{WIZARD}/{campaign_id}/confirm?at={night}")
        assert "The start lies in the quiet hours" in waiting.text
        assert "7:00\u202fAM (Europe/Berlin)" in waiting.text.split("quiet-wait", 1)[1]
        assert "(Europe/Berlin)" in confirm.text and "UTC" not in confirm.text
        assert "22:00-07:00" in confirm.text
        done = await admin.post(
            f"{WIZARD}/{campaign_id}/confirm", data={"at": at, "_csrf_token": token}
        )
        assert done.headers["location"] == f"/inbox/admin/campaigns/{campaign_id}"
        async with shop.runtime.sessions() as session:
            row = await session.get_one(Campaign, campaign_id)
        assert row.state == "scheduled" and row.scheduled_at == local.astimezone(UTC)
        assert row.quiet_hours == "22:00-07:00"


async def test_only_admins_use_the_wizard(shop: Shop) -> None:
    await shop.subscribers(1, window_open=True)
    for role in ("agent", "supervisor"):
        async with _client(shop, role, "de") as client:
            for path in (WIZARD, f"{WIZARD}/reach?topic={shop.topic.keyword}"):
                assert (await client.get(path)).status_code == 403, (role, path)
            token = _csrf((await client.get("/inbox")).text)
            form = {"name": "x", "topic": shop.topic.keyword, "text": "x", "_csrf_token": token}
            for go in ("content", "create"):
                refused = await client.post(WIZARD, data={**form, "save_as": "s", "go": go})
                assert refused.status_code == 403
    assert await _count(shop, Campaign) == 0 and await _count(shop, Segment) == 0


async def test_bad_input_gets_plain_words_never_a_500(shop: Shop) -> None:
    await shop.subscribers(1, window_open=True)
    async with _client(shop, "admin", "de") as admin:
        token = _csrf((await admin.get(WIZARD)).text)
        base = {"name": "Herbst", "topic": shop.topic.keyword, "_csrf_token": token}
        cases = [
            ({**base, "topic": "gibt-es-nicht", "go": "content"}, "Wählen Sie ein Thema"),
            ({**base, "segment": "01ABSENT", "go": "content"}, "gibt es nicht mehr"),
            ({**base, "name": "", "go": "content"}, ""),
            ({**base, "text": "x", "template": "bogus:xx", "go": "create"}, "wählen Sie eine"),
            ({**base, "text": "", "go": "create"}, ""),
            ({**base, "active_within_days": "viele", "go": "content"}, ""),
            ({**base, "text": "x" * 9000, "go": "create"}, ""),
        ]
        for form, words in cases:
            response = await admin.post(WIZARD, data=form)
            assert response.status_code == 422, (form, response.status_code)
            assert 'role="alert"' in response.text and words in response.text, form
            assert 'value="Herbst"' in response.text or not form["name"]
        for part, params in (
            ("reach", {"topic": "x"}),
            ("preview", {"topic": "x"}),
            ("preview", {"topic": shop.topic.keyword, "template": "a:b"}),
        ):
            response = await admin.get(f"{WIZARD}/{part}", params=params)
            assert response.status_code == 200 and 'class="error"' in response.text, params
        assert (await admin.get(f"{WIZARD}/01NOSUCHCAMPAIGN/send")).status_code == 404
        made = await admin.post(WIZARD, data={**base, "text": "Hallo {first_name}", "go": "create"})
        send = made.headers["location"]
        garbage = await admin.post(
            send,
            data={"when": "later", "at": "morgen früh", "quiet_hours": "", "_csrf_token": token},
        )
        assert garbage.status_code == 422 and "JJJJ-MM-TT" in garbage.text
        clock = await admin.post(
            send, data={"when": "now", "quiet_hours": "keine", "_csrf_token": token}
        )
        assert clock.status_code == 303
        async with shop.runtime.sessions() as session:
            assert (await session.scalar(select(Campaign.quiet_hours))) is None
        confirm = await admin.get(send.replace("/send", "/confirm") + "?at=kaputt")
        assert confirm.status_code == 200 and "sofort" in confirm.text
    assert await _count(shop, Segment) == 0


async def test_a_draft_is_changed_without_typing_it_again(shop: Shop) -> None:
    await shop.subscribers(2, window_open=True)
    async with _client(shop, "admin", "en") as admin:
        token = _csrf((await admin.get(WIZARD)).text)
        first = await admin.post(
            WIZARD,
            data={"name": "Winter", "topic": shop.topic.keyword, "save_as": "Alle aktiven",
                  "active_within_days": "5", "go": "content", "_csrf_token": token},
        )  # fmt: skip
        segment_id = _csrf_free_value(first.text, "segment")
        made = await admin.post(
            WIZARD,
            data={"name": "Winter", "topic": shop.topic.keyword, "segment": segment_id,
                  "language": "de", "text": "Hallo {first_name}", "template": "news_update:de",
                  "param1": "{first_name}", "go": "create", "_csrf_token": token},
        )  # fmt: skip
        old_id = made.headers["location"].split("/")[-2]
        send = await admin.get(made.headers["location"])
        assert f"wizard?replaces={old_id}" in send.text
        again = await admin.get(f"{WIZARD}?replaces={old_id}")
        assert 'value="Winter"' in again.text and 'value="de"' in again.text
        assert f'<option value="{segment_id}" selected' in again.text
        assert 'value="5"' not in again.text, "the segment's own part stays with the segment"
        for field, value in (("text", "Hallo {first_name}"), ("param1", "{first_name}"),
                             ("template", "news_update:de"), ("replaces", old_id)):  # fmt: skip
            assert f'name="{field}" value="{value}"' in again.text, field
        changed = await admin.post(
            WIZARD,
            data={"name": "Winter", "topic": shop.topic.keyword, "segment": segment_id,
                  "language": "de", "text": "Hallo {first_name}, neu!", "replaces": old_id,
                  "go": "create", "_csrf_token": token},
        )  # fmt: skip
        assert changed.status_code == 303
        async with shop.runtime.sessions() as session:
            rows = list(await session.scalars(select(Campaign)))
        assert [r.content["text"] for r in rows] == ["Hallo {first_name}, neu!"]
        assert rows[0].filter["language"] == "de" and rows[0].segment_id == segment_id
        gone = await admin.post(
            WIZARD,
            data={"name": "W", "topic": shop.topic.keyword, "text": "x", "replaces": old_id,
                  "go": "create", "_csrf_token": token},
        )  # fmt: skip
        assert gone.status_code == 422, "the replaced draft is gone; nothing new is made"
        assert await _count(shop, Campaign) == 1


def _csrf_free_value(html: str, name: str) -> str:
    found = re.search(rf'name="{name}" value="([^"]*)"', html)
    assert found, name
    return found.group(1)


async def test_sms_recipients_get_their_own_text_with_parts_counted(shop: Shop) -> None:
    await shop.subscribers(1, window_open=True)
    async with shop.runtime.sessions() as session, session.begin():
        sms = await add_channel(
            session, shop.workspace_id, "sms", "SMS",
            {"account_sid": "AC" + "1" * 32, "auth_token": "t" * 32,
             "from_number": "+4930123456", "api_base": "http://127.0.0.1:9"},
        )  # fmt: skip
    await seed_audience(
        shop.runtime.engine, workspace_id=shop.workspace_id, channel_id=sms.id,
        topic_id=shop.topic.id, n=2, start=10,
    )  # fmt: skip
    async with _client(shop, "admin", "de") as admin:
        token = _csrf((await admin.get(WIZARD)).text)
        form = {"name": "Zweikanal", "topic": shop.topic.keyword, "_csrf_token": token,
                "text": "Hallo {first_name}, neue Räder sind da 🚲",
                "text_sms": "Hallo {first_name}, neue Raeder sind da"}  # fmt: skip
        step = await admin.post(WIZARD, data={**form, "go": "content"})
        reach = await admin.get(f"{WIZARD}/reach", params={"topic": shop.topic.keyword})
        assert "3 Empfänger</strong> (SMS: 2, WhatsApp: 1)" in reach.text
        assert "3 Empfänger" in step.text
        assert 'name="text_sms"' in step.text and 'name="text_whatsapp"' in step.text
        sms_card = step.text.split('class="preview-card preview-sms"', 1)[1].split("</section>")[0]
        assert "Raeder" in sms_card and "SMS-Teile: 1 (GSM-7)" in sms_card
        emoji = await admin.get(
            f"{WIZARD}/preview",
            params={"topic": shop.topic.keyword, "text": "Räder 🚲 " + "x" * 70},
        )
        card = emoji.text.split('class="preview-card preview-sms"', 1)[1].split("</section>")[0]
        assert "SMS-Teile: 2 (UCS-2)" in card and "70 Zeichen" in card
        made = await admin.post(WIZARD, data={**form, "go": "create"})
        campaign_id = made.headers["location"].split("/")[-2]
        confirm = await admin.get(f"{WIZARD}/{campaign_id}/confirm")
        assert "SMS-Teile: etwa 1 je Nachricht, 2 insgesamt" in confirm.text
        async with shop.runtime.sessions() as session:
            row = await session.get_one(Campaign, campaign_id)
        assert row.content["channels"]["sms"]["text"] == form["text_sms"]


async def test_an_email_audience_needs_a_subject_and_sees_it_in_the_preview(shop: Shop) -> None:
    async with shop.runtime.sessions() as session, session.begin():
        mail = await add_channel(
            session, shop.workspace_id, "email", "Laden-Post",
            {"address": "laden@example.com", "smtp_host": "127.0.0.1", "imap_host": "127.0.0.1"},
        )  # fmt: skip
    await seed_audience(
        shop.runtime.engine, workspace_id=shop.workspace_id, channel_id=mail.id,
        topic_id=shop.topic.id, n=1, start=20,
    )  # fmt: skip
    async with _client(shop, "admin", "de") as admin:
        token = _csrf((await admin.get(WIZARD)).text)
        form = {"name": "Post", "topic": shop.topic.keyword, "text": "Hallo {first_name}",
                "_csrf_token": token}  # fmt: skip
        step = await admin.post(WIZARD, data={**form, "go": "content"})
        assert 'name="subject_email"' in step.text and "Betreff: <strong>(noch keiner)" in step.text
        refused = await admin.post(WIZARD, data={**form, "go": "create"})
        assert refused.status_code == 422 and "Geben Sie der E-Mail einen Betreff" in refused.text
        assert await _count(shop, Campaign) == 0
        preview = await admin.get(
            f"{WIZARD}/preview",
            params={"topic": shop.topic.keyword, "text": "Hallo", "subject_email": "Neu da"},
        )
        assert "Betreff: <strong>Neu da</strong>" in preview.text
        async with shop.runtime.sessions() as session:
            contact = await session.scalar(
                select(Contact)
                .join(ContactIdentity, ContactIdentity.contact_id == Contact.id)
                .where(ContactIdentity.channel_id == mail.id)
            )
        assert contact is not None and contact.display_name
        first = contact.display_name.split()[0]
        personal = await admin.get(
            f"{WIZARD}/preview",
            params={"topic": shop.topic.keyword, "text": "Hallo",
                    "subject_email": "Neu da, {first_name}!"},
        )  # fmt: skip
        assert re.search(r"Betreff: <strong>Neu da, [^{<]+!</strong>", personal.text), personal.text
        made = await admin.post(
            WIZARD, data={**form, "subject_email": "Neu da, {first_name}!", "go": "create"}
        )
        assert made.status_code == 303
        async with shop.runtime.sessions() as session:
            row = await session.scalar(select(Campaign))
        assert row is not None
        assert row.content["channels"]["email"]["subject"] == "Neu da, {first_name}!"
    async with shop.runtime.sessions() as session, session.begin():
        made_row = await session.get_one(Campaign, row.id)
        made_row.quiet_hours = None  # sends at any hour the test runs
        await campaigns.start(session, made_row)
    payloads: list[dict[str, str]] = []
    for _ in range(20):  # the dispatcher queues the mail; no SMTP server is needed for that
        await shop.dispatcher.tick()
        async with shop.runtime.sessions() as session:
            payloads = list(
                await session.scalars(select(Message.payload).where(Message.channel_id == mail.id))
            )
        if payloads:
            break
    assert [p["subject"] for p in payloads] == [f"Neu da, {first}!"], "each recipient's own subject"


async def test_without_a_topic_the_wizard_says_what_to_do_first(runtime: Runtime) -> None:
    ws, _ = await helpers.seed_whatsapp(runtime)
    await person(runtime, ws, "chefin@laden.example", "admin")
    async with helpers.client_for(runtime) as client:
        await sign_in(client, "chefin@laden.example")
        page = await client.get(WIZARD)
        assert page.status_code == 200 and 'href="/inbox/admin/topics">Thema anlegen' in page.text


async def test_a_draft_can_be_discarded_from_the_schedule_step(shop: Shop) -> None:
    await shop.subscribers(1, window_open=True)
    async with _client(shop, "admin", "de") as admin:
        token = _csrf((await admin.get(WIZARD)).text)
        made = await admin.post(
            WIZARD,
            data={"name": "Weg", "topic": shop.topic.keyword, "text": "x", "go": "create",
                  "_csrf_token": token},
        )  # fmt: skip
        page = await admin.get(made.headers["location"])
        action = re.search(r'action="([^"]+/cancel)" class="discard" data-confirm', page.text)
        assert action is not None and "Entwurf verwerfen" in page.text
        await admin.post(action.group(1), data={"_csrf_token": token})
        async with shop.runtime.sessions() as session:
            row = await session.scalar(select(Campaign))
        assert row is not None and row.state == "cancelled"
        after = await admin.get(made.headers["location"])
        assert after.status_code == 303, "a cancelled campaign goes to its report"
        assert after.headers["location"] == f"/inbox/admin/campaigns/{row.id}"


async def test_my_test_address_is_remembered_per_channel_kind(shop: Shop) -> None:
    await shop.subscribers(1, window_open=True)
    mine = address(0)
    async with shop.runtime.sessions() as session, session.begin():
        channel = await session.get_one(ChannelRow, shop.stack.channel.id)
        channel.name = "WhatsApp"  # named like its kind: the label says it once
    async with _client(shop, "admin", "de") as admin:
        token = _csrf((await admin.get(WIZARD)).text)
        made = await admin.post(
            WIZARD,
            data={"name": "Test", "topic": shop.topic.keyword, "text": "Hallo {first_name}",
                  "go": "create", "_csrf_token": token},
        )  # fmt: skip
        send = made.headers["location"]
        first = await admin.get(send)
        assert "Ihre Adresse bei WhatsApp <input" in first.text, "the kind is not repeated"
        assert "WhatsApp (WhatsApp)" not in first.text
        assert f'value="{mine}"' not in first.text
        campaign_id = send.split("/")[-2]
        tested = await admin.post(
            f"/inbox/admin/campaign-tests/{campaign_id}",
            data={"channel": channel.id, "address": mine, "return_to": "wizard",
                  "_csrf_token": token},
        )  # fmt: skip
        assert tested.headers["location"].endswith("?tested=1")
        again = await admin.get(send)
        assert f'value="{mine}"' in again.text, "next time my address is filled in"
        refused = await admin.post(
            f"/inbox/admin/campaign-tests/{campaign_id}",
            data={"channel": channel.id, "address": "+49 000", "return_to": "wizard",
                  "_csrf_token": token},
        )  # fmt: skip
        assert "error=" in refused.headers["location"]
        assert f'value="{mine}"' in (await admin.get(send)).text, "a failed test keeps the old one"
    async with shop.runtime.sessions() as session:
        users = list(await session.scalars(select(User.test_addresses)))
    assert {"whatsapp": mine} in users


async def test_the_live_count_names_those_the_weekly_cap_holds_back(
    shop: Shop, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = await shop.subscribers(3, window_open=True)
    monkeypatch.setattr(
        shop.runtime, "settings", replace(shop.runtime.settings, broadcast_weekly_cap=1)
    )
    async with shop.runtime.sessions() as session, session.begin():
        earlier = await campaigns.create_campaign(
            session, shop.workspace_id, name="Letzte Woche", topic="neuigkeiten",
            content={"text": "x"},
        )  # fmt: skip
        identity = await session.scalar(
            select(ContactIdentity).where(ContactIdentity.contact_id == ids[0])
        )
        assert identity is not None
        session.add(
            CampaignRecipient(
                campaign_id=earlier.id, contact_id=ids[0], channel_id=identity.channel_id,
                identity_id=identity.id, state="sent", sent_at=datetime.now(UTC) - timedelta(days=2),
            )
        )  # fmt: skip
    async with _client(shop, "admin", "en") as admin:
        reach = await admin.get(f"{WIZARD}/reach", params={"topic": shop.topic.keyword})
        assert "2 recipients" in reach.text, reach.text
        assert "1 has already had the broadcasts allowed this week" in reach.text
        assert "does not match the filter" not in reach.text
    async with _client(shop, "admin", "de") as admin:
        reach = await admin.get(f"{WIZARD}/reach", params={"topic": shop.topic.keyword})
        assert "1 hat diese Woche schon die erlaubte Zahl an Rundsendungen erhalten" in reach.text


async def test_choosing_a_template_brings_its_value_fields_with_or_without_javascript(
    shop: Shop,
) -> None:
    await shop.subscribers(1)
    fields = f"{WIZARD}/template-fields"
    async with _client(shop, "admin", "de") as admin:
        chosen = await admin.get(
            fields, params={"topic": shop.topic.keyword, "template": "news_update:de"}
        )
        assert chosen.status_code == 200 and 'name="param1"' in chosen.text
        assert "Werte anzeigen" not in chosen.text, "a script fetched it: no button needed"
        none = await admin.get(fields, params={"topic": shop.topic.keyword, "template": ""})
        assert none.status_code == 200 and 'name="param1"' not in none.text
        bad = await admin.get(fields, params={"template": "weg:de"})
        assert bad.status_code == 200 and 'class="error"' in bad.text
        token = _csrf((await admin.get(WIZARD)).text)
        page = await admin.post(
            WIZARD,
            data={"name": "Ohne JS", "topic": shop.topic.keyword, "go": "content",
                  "_csrf_token": token},
        )  # fmt: skip
        assert 'hx-get="/inbox/admin/campaigns/wizard/template-fields"' in page.text
        assert 'id="template-fields"' in page.text
        assert '<noscript><p class="hint">Wählen' in page.text, "the button for no JavaScript"
        again = await admin.post(
            WIZARD,
            data={"name": "Ohne JS", "topic": shop.topic.keyword, "go": "content",
                  "template": "news_update:de", "_csrf_token": token},
        )  # fmt: skip
        assert 'name="param1"' in again.text, "without JavaScript the button shows the fields"
