"""The bot's admin pages: FAQ edits through CSRF forms reach the live bot; the learning loop."""

from __future__ import annotations

import re

import httpx
import pytest
from sqlalchemy import select

from tests import helpers
from tests.bot.kbdata import import_kb
from tests.bot.test_live import _bot_said, _writes
from tests.inbox.test_pages import PASSWORD, _csrf, _login
from tresen.bot import store
from tresen.bot.persona import DEFAULT_TEXTS, strip_emoji
from tresen.db.tables import BotConfig, BotFaq, BotTurn, ChannelRow, Workspace
from tresen.domain.ids import new_id
from tresen.inbox import accounts
from tresen.runtime import Runtime
from tresen.web.bot_admin import FLOW_FIELD_LABELS, TEXT_LABELS
from tresen.web.i18n import catalog


@pytest.fixture
async def channel(runtime: Runtime) -> ChannelRow:
    """A WhatsApp channel whose workspace has the test knowledge base, an admin and an agent."""
    _, row = await helpers.seed_whatsapp(runtime)
    await import_kb(runtime, row.workspace_id)
    async with runtime.sessions() as session, session.begin():
        await accounts.add_user(session, row.workspace_id, "chefin@example.com", "admin", PASSWORD)
        await accounts.add_user(session, row.workspace_id, "agent@example.com", "agent", PASSWORD)
    return row


async def _entry_id(runtime: Runtime, key: str) -> str:
    async with runtime.sessions() as session:
        found = await session.scalar(select(BotFaq.id).where(BotFaq.key == key))
    assert found is not None
    return str(found)


async def _admin(client: httpx.AsyncClient) -> str:
    assert (await _login(client, "chefin@example.com")).status_code in (200, 303)
    page = await client.get("/inbox/admin/bot")
    assert page.status_code == 200
    return _csrf(page.text)


async def test_an_edit_in_the_page_changes_the_next_answer(
    runtime: Runtime, channel: ChannelRow
) -> None:
    async with helpers.client_for(runtime) as client:
        cid = await _writes(runtime, client, channel, "Was kostet der Versand?")
        token = await _admin(client)
        versand = await _entry_id(runtime, "versand")
        page = await client.get(f"/inbox/admin/bot/faq/{versand}")
        assert page.status_code == 200 and "Wie hoch sind die Versandkosten?" in page.text
        response = await client.post(
            f"/inbox/admin/bot/faq/{versand}",
            data={
                "_csrf_token": token,
                "key": "versand",
                "questions": "Was kostet der Versand?\nWie teuer ist die Lieferung?",
                "answer_de": "Versand kostet nichts mehr.",
                "answer_en": "Shipping is free now.",
            },
        )
        assert response.status_code == 303
        await _writes(runtime, client, channel, "Wie teuer ist die Lieferung?")
        en = await _writes(runtime, client, channel, "How much is shipping?", "4915100000099")
    assert (await _bot_said(runtime, cid))[-1] == "Versand kostet nichts mehr."
    assert await _bot_said(runtime, en) == ["Shipping is free now."]


async def test_add_and_delete_entries_and_bad_forms(runtime: Runtime, channel: ChannelRow) -> None:
    async with helpers.client_for(runtime) as client:
        token = await _admin(client)
        bad = await client.post(
            "/inbox/admin/bot/faq",
            data={"_csrf_token": token, "key": "leer", "questions": "", "answer_de": "x"},
        )
        assert bad.status_code == 422 and "at least one phrasing" in bad.text
        taken = await client.post(
            "/inbox/admin/bot/faq",
            data={"_csrf_token": token, "key": "versand", "questions": "a", "answer_de": "b"},
        )
        assert taken.status_code == 422 and "already has the id" in taken.text
        no_csrf = await client.post(
            "/inbox/admin/bot/faq", data={"key": "x", "questions": "a", "answer_de": "b"}
        )
        assert no_csrf.status_code == 403
        added = await client.post(
            "/inbox/admin/bot/faq",
            data={
                "_csrf_token": token,
                "key": "werkstatt",
                "questions": "Repariert ihr auch E-Bikes?\nMacht ihr E-Bike-Reparaturen?",
                "answer_de": "Ja, unsere Werkstatt repariert auch E-Bikes.",
                "answer_en": "",
            },
        )
        assert added.status_code == 303
        cid = await _writes(runtime, client, channel, "Repariert ihr E-Bikes?")
        assert await _bot_said(runtime, cid) == ["Ja, unsere Werkstatt repariert auch E-Bikes."]
        werkstatt = await _entry_id(runtime, "werkstatt")
        gone = await client.post(
            f"/inbox/admin/bot/faq/{werkstatt}/delete", data={"_csrf_token": token}
        )
        assert gone.status_code == 303
        assert (await client.get(f"/inbox/admin/bot/faq/{werkstatt}")).status_code == 404
    async with runtime.sessions() as session:
        keys = [r.key for r in await store.entries(session, channel.workspace_id)]
    assert "werkstatt" not in keys and "leer" not in keys and len(keys) == 5


async def test_agents_may_not_edit_the_bot(runtime: Runtime, channel: ChannelRow) -> None:
    async with helpers.client_for(runtime) as client:
        await _login(client, "agent@example.com")
        assert (await client.get("/inbox/admin/bot")).status_code == 403
        page = await client.get("/inbox")
        response = await client.post(
            f"/inbox/admin/bot/faq/{await _entry_id(runtime, 'versand')}/delete",
            data={"_csrf_token": _csrf(page.text)},
        )
        assert response.status_code == 403
    assert await _entry_id(runtime, "versand")


async def test_learning_loop_counts_and_teaches(runtime: Runtime, channel: ChannelRow) -> None:
    async with helpers.client_for(runtime) as client:
        cid = await _writes(runtime, client, channel, "Was kostet der Versand?")
        await _writes(runtime, client, channel, "Macht ihr auch Leasing?")
        other = await _writes(runtime, client, channel, "Macht ihr auch Leasing?", "4915100000098")
        token = await _admin(client)
        page = await client.get("/inbox/admin/bot")
        assert "Macht ihr auch Leasing?" in page.text
        row = re.search(
            r"<tr><td>\d{4}-\d\d-\d\d</td><td>(\d+)</td><td>(\d+)</td><td>(\d+)</td>", page.text
        )
        assert row is not None and row.groups() == ("1", "2", "0")
        turn = re.search(r'action="/inbox/admin/bot/teach/(\d+)"', page.text)
        assert turn is not None
        versand = await _entry_id(runtime, "versand")
        taught = await client.post(
            f"/inbox/admin/bot/teach/{turn.group(1)}",
            data={"_csrf_token": token, "entry_id": versand},
        )
        assert taught.status_code == 303
        await _writes(runtime, client, channel, "Macht ihr auch Leasing?", "4915100000097")
    async with runtime.sessions() as session:
        row_ = await session.get_one(BotFaq, versand)
    assert "Macht ihr auch Leasing?" in row_.content["questions"]
    assert len(await _bot_said(runtime, cid)) == 2 and len(await _bot_said(runtime, other)) == 1


async def test_the_conversation_shows_the_hand_over(runtime: Runtime, channel: ChannelRow) -> None:
    async with helpers.client_for(runtime) as client:
        cid = await _writes(runtime, client, channel, "Was kostet der Versand?")
        await _writes(runtime, client, channel, "Mitarbeiter bitte")
        await _admin(client)
        page = await client.get(f"/inbox/c/{cid}")
    assert page.status_code == 200
    assert "Vom Bot übergeben" in page.text
    assert "die Kundin oder der Kunde wollte einen Menschen" in page.text
    assert "Beantwortete Fragen: Was kostet der Versand?" in page.text


async def test_tone_blacklist_and_switching_the_bot_off(
    runtime: Runtime, channel: ChannelRow
) -> None:

    async with helpers.client_for(runtime) as client:
        token = await _admin(client)
        saved = await client.post(
            "/inbox/admin/bot/settings",
            data={
                "_csrf_token": token,
                "enabled": "1",
                "name": "Radla",
                "form": "du",
                "blacklist": "Fahrradkette24\nPayPal\n",
            },
        )
        assert saved.status_code == 303
        page = await client.get("/inbox/admin/bot")
        assert 'value="Radla"' in page.text and "PayPal" in page.text
        cid = await _writes(runtime, client, channel, "Wie ist das Wetter morgen in Berlin?")
        await _writes(runtime, client, channel, "Welche Zahlungsarten gibt es?")
        bad = await client.post(
            "/inbox/admin/bot/settings", data={"_csrf_token": token, "name": "", "form": "ihr"}
        )
        assert bad.status_code == 422
        off = await client.post(
            "/inbox/admin/bot/settings", data={"_csrf_token": token, "name": "Radla", "form": "du"}
        )
        assert off.status_code == 303
        await _writes(runtime, client, channel, "Was kostet der Versand?")
    said = await _bot_said(runtime, cid)
    du = [strip_emoji(t) for t in DEFAULT_TEXTS["de"]["fallback"]["du"]]
    assert said[0] in du, "du, without emoji"
    assert "PayPal" not in said[1] and said[1].startswith("Sie können mit")
    assert len(said) == 2, "switched off: no answer"


async def test_another_workspace_sees_and_changes_nothing(
    runtime: Runtime, channel: ChannelRow
) -> None:

    async with runtime.sessions() as session, session.begin():
        other = Workspace(id=new_id(), name="Anderer Laden")
        session.add(other)
        await session.flush()
        await accounts.add_user(session, other.id, "fremd@example.com", "admin", PASSWORD)
    versand = await _entry_id(runtime, "versand")
    async with helpers.client_for(runtime) as client:
        cid = await _writes(runtime, client, channel, "Wie ist das Wetter morgen in Berlin?")
        await _login(client, "fremd@example.com")
        page = await client.get("/inbox/admin/bot")
        assert page.status_code == 200
        assert "versand" not in page.text and "Wetter" not in page.text
        token = _csrf(page.text)
        assert (await client.get(f"/inbox/admin/bot/faq/{versand}")).status_code == 404
        changed = await client.post(
            f"/inbox/admin/bot/faq/{versand}",
            data={"_csrf_token": token, "key": "versand", "questions": "x", "answer_de": "y"},
        )
        deleted = await client.post(
            f"/inbox/admin/bot/faq/{versand}/delete", data={"_csrf_token": token}
        )
        assert changed.status_code == 404 and deleted.status_code == 404
        async with runtime.sessions() as session:
            turn_id = await session.scalar(select(BotTurn.id).where(BotTurn.conversation_id == cid))
        taught = await client.post(
            f"/inbox/admin/bot/teach/{turn_id}", data={"_csrf_token": token, "entry_id": versand}
        )
        assert taught.status_code == 404
    async with runtime.sessions() as session:
        row = await session.get_one(BotFaq, versand)
    assert row.content["answers"]["de"].startswith("Der Versand kostet")
    assert "Wie ist das Wetter morgen in Berlin?" not in row.content["questions"]


async def test_every_bot_text_is_editable_per_language(
    runtime: Runtime, channel: ChannelRow
) -> None:
    async with helpers.client_for(runtime) as client:
        await _admin(client)
        page = await client.get("/inbox/admin/bot/texts")
        assert page.status_code == 200
        for key in store.TEXT_KEYS:
            assert f'name="de__{key}"' in page.text and f'name="en__{key}"' in page.text
        assert "Guten Tag! Ich bin {name}" in page.text
        token = _csrf(page.text)
        bad = await client.post(
            "/inbox/admin/bot/texts",
            data={"_csrf_token": token, "de__greeting": "Hallo {name"},
        )
        assert bad.status_code == 422 and "de/greeting" in bad.text
        saved = await client.post(
            "/inbox/admin/bot/texts",
            data={
                "_csrf_token": token,
                "de__greeting": "Moin! Hier ist {name} von {business}.",
                "en__handover": "A colleague will take over.",
                "de__fallback": "Wie bitte?\nNoch einmal, bitte?",
                "de__handover": "",
            },
        )
        assert saved.status_code == 303
        cid = await _writes(runtime, client, channel, "Hallo!")
        await _writes(runtime, client, channel, "Wie ist das Wetter morgen in Berlin?")
        en = await _writes(runtime, client, channel, "I want a human", "4915100000098")
        agent_login = await _login(client, "agent@example.com")
        assert agent_login.status_code in (200, 303)
        forbidden = await client.get("/inbox/admin/bot/texts")
    said = await _bot_said(runtime, cid)
    assert said[0] == "Moin! Hier ist Tresi von Radladen Test."
    assert said[1] in ("Wie bitte?", "Noch einmal, bitte?")
    assert await _bot_said(runtime, en) == ["A colleague will take over."]
    assert forbidden.status_code in (403, 303)
    async with runtime.sessions() as session:
        config = await session.get_one(BotConfig, channel.workspace_id)
    assert "handover" not in config.persona["texts"].get("de", {}), "empty = the default"


async def test_flow_questions_are_editable_in_the_bot_s_form(
    runtime: Runtime, channel: ChannelRow
) -> None:
    key = "flow|groesse|size|ask"
    async with helpers.client_for(runtime) as client:
        token = await _admin(client)
        page = await client.get("/inbox/admin/bot/texts")
        assert f'name="de__{key}"' in page.text and "Welche Größe brauchen Sie?" in page.text
        assert "Diese deutschen Texte verwenden die andere Anrede" not in page.text
        bad = await client.post(
            "/inbox/admin/bot/texts",
            data={"_csrf_token": token, "de__flow|groesse||done": "Größe {size haben wir."},
        )
        assert bad.status_code == 422 and "de/groesse: braces" in bad.text
        empty = await client.post(
            "/inbox/admin/bot/texts", data={"_csrf_token": token, f"de__{key}": ""}
        )
        assert empty.status_code == 422 and "cannot be empty" in empty.text
        saved = await client.post(
            "/inbox/admin/bot/texts",
            data={"_csrf_token": token, f"de__{key}": "Welche Schuhgröße haben Sie?"},
        )
        assert saved.status_code == 303
        cid = await _writes(runtime, client, channel, "Habt ihr den Radschuh in meiner Größe?")
        form = await client.post(
            "/inbox/admin/bot/settings",
            data={"_csrf_token": token, "name": "Tresi", "form": "du", "enabled": "1"},
        )
        assert form.status_code == 303
        du = await client.get("/inbox/admin/bot/texts")
        assert "Diese deutschen Texte verwenden die andere Anrede" in du.text
        assert "rueckgabe" in du.text, "an FAQ answer in the Sie form is named"
        assert "Welche Größe brauchen Sie?" in du.text, "du keeps the text meant for both"
        assert "groesse / size: Frage" in du.text, "and it is named as the other form"
        await client.post(
            "/inbox/admin/bot/texts",
            data={"_csrf_token": token, f"de__{key}": "Welche Schuhgröße hast du?"},
        )
        other = await _writes(
            runtime, client, channel, "Habt ihr den Radschuh in meiner Größe?", "4915100000097"
        )
    assert (await _bot_said(runtime, cid))[-1].endswith("Welche Schuhgröße haben Sie?")
    assert (await _bot_said(runtime, other))[-1].endswith("Welche Schuhgröße hast du?")
    async with runtime.sessions() as session:
        config = await session.get_one(BotConfig, channel.workspace_id)
    ask = config.flows["flows"][0]["slots"][0]["ask"]
    assert ask["de"] == {"sie": "Welche Schuhgröße haben Sie?", "du": "Welche Schuhgröße hast du?"}


def test_every_label_of_the_texts_page_is_german_too() -> None:

    german = catalog("de")
    assert set(TEXT_LABELS) == set(store.TEXT_KEYS)
    missing = [v for v in [*TEXT_LABELS.values(), *FLOW_FIELD_LABELS.values()] if v not in german]
    assert not missing
