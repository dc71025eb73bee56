"""The live bot end to end: signed WhatsApp webhooks in, the process job, bot messages queued out."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from sqlalchemy import func, select, update

from tests import helpers
from tests.bot.kbdata import BLACKLISTED, import_kb
from tresen.bot import stats, store
from tresen.bot.persona import DEFAULT_TEXTS
from tresen.bot.text import fold
from tresen.db.tables import BotConversation, BotTurn, ChannelRow, Conversation, Job, Message, Note
from tresen.domain.ids import new_id
from tresen.handlers.process import PROCESS_JOB, process_job
from tresen.inbox import accounts, routing, service
from tresen.inbox.permissions import actor_for
from tresen.jobs import queue as jobs
from tresen.runtime import Runtime

CUSTOMER = "4915100000077"
HANDOVER_DE = "Ich gebe Sie an unser Team weiter"


@pytest.fixture
async def channel(runtime: Runtime) -> ChannelRow:
    """A WhatsApp channel whose workspace has the test knowledge base."""
    _, row = await helpers.seed_whatsapp(runtime)
    await import_kb(runtime, row.workspace_id)
    return row


async def _process(runtime: Runtime) -> None:
    await helpers.hand_on_events(runtime)
    while claimed := await jobs.claim(
        runtime.engine, "w1", 10, timedelta(seconds=5), [PROCESS_JOB]
    ):
        for job in claimed:
            await process_job(runtime, job, "w1")


async def _writes(
    runtime: Runtime,
    client: httpx.AsyncClient,
    channel: ChannelRow,
    text: str,
    sender: str = CUSTOMER,
) -> str:
    """The customer writes through the signed webhook; the process job runs; the conversation id."""
    body = helpers.dumps(
        helpers.wa_envelope(
            messages=[helpers.wa_text(new_id(), sender, text)],
            contacts=[{"profile": {"name": "Jana"}, "wa_id": sender}],
        )
    )
    response = await client.post(
        f"/webhooks/whatsapp/{channel.id}", content=body, headers=helpers.wa_sign(body)
    )
    assert response.status_code == 200
    await _process(runtime)
    async with runtime.sessions() as session:
        conversation_id = await session.scalar(
            select(Conversation.id)
            .join(Message, Message.conversation_id == Conversation.id)
            .where(Message.body == text)
            .order_by(Message.created_at.desc())
            .limit(1)
        )
    assert conversation_id is not None
    return str(conversation_id)


async def _bot_said(runtime: Runtime, conversation_id: str) -> list[str]:
    async with runtime.sessions() as session:
        return [
            str(body)
            for body in await session.scalars(
                select(Message.body)
                .where(Message.conversation_id == conversation_id, Message.sender_kind == "bot")
                .order_by(Message.created_at, Message.id)
            )
        ]


async def _memory(runtime: Runtime, conversation_id: str) -> BotConversation | None:
    async with runtime.sessions() as session:
        return await session.get(BotConversation, conversation_id)


async def _queued(runtime: Runtime, channel: ChannelRow) -> list[str]:
    async with runtime.sessions() as session:
        return [w.conversation_id for w in await routing.queue(session, channel.workspace_id)]


async def test_german_question_in_german_english_in_english(
    runtime: Runtime, channel: ChannelRow
) -> None:
    async with helpers.client_for(runtime) as client:
        de = await _writes(runtime, client, channel, "Wie lange habt ihr heute geöffnet?")
        en = await _writes(
            runtime, client, channel, "How much does shipping cost?", sender="4915100000078"
        )
    assert await _bot_said(runtime, de) == [
        "Wir haben Montag bis Freitag von 9 bis 18 Uhr geöffnet."
    ]
    assert await _bot_said(runtime, en) == ["Shipping costs 4.90 €, free from 50 €."]
    assert await _queued(runtime, channel) == [], "answered by the bot: nobody needs to take it"
    async with runtime.sessions() as session:
        turns = list(await session.scalars(select(BotTurn).order_by(BotTurn.id)))
    assert [(t.outcome, t.faq_key) for t in turns] == [
        ("answered", "oeffnungszeiten"),
        ("answered", "versand"),
    ]


async def test_two_dont_knows_in_a_row_hand_over_then_silence(
    runtime: Runtime, channel: ChannelRow
) -> None:
    async with helpers.client_for(runtime) as client:
        cid = await _writes(runtime, client, channel, "Wie ist das Wetter morgen in Berlin?")
        first = await _bot_said(runtime, cid)
        assert len(first) == 1 and first[0] in DEFAULT_TEXTS["de"]["fallback"]["sie"]
        assert await _queued(runtime, channel) == []
        await _writes(runtime, client, channel, "Erzähl mir einen Witz über Katzen")
        said = await _bot_said(runtime, cid)
        assert len(said) == 2 and said[1].startswith(HANDOVER_DE)
        assert await _queued(runtime, channel) == [cid], "handed over: in the inbox queue"
        memory = await _memory(runtime, cid)
        assert memory is not None and memory.handover_reason == "not_understood"
        await _writes(runtime, client, channel, "Was kostet der Versand?")
    assert len(await _bot_said(runtime, cid)) == 2, "silent after the hand-over"


async def test_learning_loop_counts_every_decline_as_not_understood(
    runtime: Runtime, channel: ChannelRow
) -> None:
    async with helpers.client_for(runtime) as client:
        await _writes(runtime, client, channel, "Was kostet der Versand?")
        await _writes(runtime, client, channel, "Wie ist das Wetter morgen in Berlin?")
        await _writes(runtime, client, channel, "Erzähl mir einen Witz über Katzen")
    async with runtime.sessions() as session:
        (day,) = await stats.per_day(session, channel.workspace_id)
        missed = await stats.unanswered(session, channel.workspace_id)
    assert (day.answered, day.fallback, day.handover, day.total) == (1, 2, 1, 3)
    assert day.fallback_rate == pytest.approx(2 / 3)
    assert {m.text for m in missed} == {
        "Wie ist das Wetter morgen in Berlin?",
        "Erzähl mir einen Witz über Katzen",
    }


async def test_an_answer_in_between_resets_the_misses(
    runtime: Runtime, channel: ChannelRow
) -> None:
    async with helpers.client_for(runtime) as client:
        cid = await _writes(runtime, client, channel, "Wie ist das Wetter morgen in Berlin?")
        await _writes(runtime, client, channel, "Was kostet der Versand?")
        await _writes(runtime, client, channel, "Erzähl mir einen Witz über Katzen")
    said = await _bot_said(runtime, cid)
    assert len(said) == 3 and not any(s.startswith(HANDOVER_DE) for s in said)
    assert await _queued(runtime, channel) == []


async def test_mitarbeiter_hands_over_with_reason_and_summary(
    runtime: Runtime, channel: ChannelRow
) -> None:
    async with helpers.client_for(runtime) as client:
        cid = await _writes(runtime, client, channel, "Habt ihr die Radschuhe in 42?")
        assert await _bot_said(runtime, cid) == [
            "Unsere Radschuhe gibt es in vielen Größen.\n\nGröße 42 haben wir vorrätig."
        ]
        await _writes(runtime, client, channel, "und in 43?")
        assert (await _bot_said(runtime, cid))[-1] == "Größe 43 haben wir vorrätig."
        await _writes(runtime, client, channel, "Ich möchte mit einem Mitarbeiter sprechen")
    said = await _bot_said(runtime, cid)
    assert said[-1].startswith(HANDOVER_DE)
    assert await _queued(runtime, channel) == [cid]
    memory = await _memory(runtime, cid)
    assert memory is not None and memory.handed_over_at is not None
    assert memory.handover_reason == "asked_for_person"
    async with runtime.sessions() as session:
        notes = list(await session.scalars(select(Note.body).where(Note.conversation_id == cid)))
    assert len(notes) == 1 and notes[0] == memory.handover_summary
    assert notes[0].startswith("Vom Bot übergeben: Wunsch nach einer Person aus dem Team")
    assert "Beantwortete Fragen: Habt ihr den Radschuh in meiner Größe?" in notes[0]
    assert "Angaben: Schuhgröße 43" in notes[0]


async def test_hand_over_goes_to_an_available_agent_by_routing(
    runtime: Runtime, channel: ChannelRow
) -> None:
    async with runtime.sessions() as session, session.begin():
        team = await routing.add_team(session, channel.workspace_id, "Laden")
        agent = await accounts.add_user(
            session, channel.workspace_id, "a@example.com", "agent", "ein-langes-passwort"
        )
        await routing.add_member(session, team.id, agent.id)
        await routing.set_rule(session, channel.workspace_id, channel.id, team.id, "round_robin")
        await session.execute(
            update(type(agent)).where(type(agent).id == agent.id).values(availability="available")
        )
    async with helpers.client_for(runtime) as client:
        cid = await _writes(runtime, client, channel, "Was kostet der Versand?")
        async with runtime.sessions() as session:
            assert (await session.get_one(Conversation, cid)).assignee_id is None
        await _writes(runtime, client, channel, "agent please")
    async with runtime.sessions() as session:
        conv = await session.get_one(Conversation, cid)
    assert conv.assignee_id == agent.id and conv.team_id == team.id


async def test_silent_once_a_person_has_it_and_back_after_resolving(
    runtime: Runtime, channel: ChannelRow
) -> None:
    async with helpers.client_for(runtime) as client:
        cid = await _writes(runtime, client, channel, "Was kostet der Versand?")
        assert len(await _bot_said(runtime, cid)) == 1
        async with runtime.sessions() as session, session.begin():
            user = await accounts.add_user(
                session, channel.workspace_id, "b@example.com", "admin", "ein-langes-passwort"
            )
            actor = await actor_for(session, user)
            await service.take(session, actor, cid)
        await _writes(runtime, client, channel, "Wann haben Sie geöffnet?")
        assert len(await _bot_said(runtime, cid)) == 1, "a person has it: the bot says nothing"
        await _writes(runtime, client, channel, "Mensch bitte")
        assert len(await _bot_said(runtime, cid)) == 1
        async with runtime.sessions() as session, session.begin():
            await service.set_status(session, actor, cid, "resolved")
            await session.execute(
                update(Conversation).where(Conversation.id == cid).values(assignee_id=None)
            )
        await _writes(runtime, client, channel, "Wann haben Sie geöffnet?")
    said = await _bot_said(runtime, cid)
    assert said[-1] == "Wir haben Montag bis Freitag von 9 bis 18 Uhr geöffnet."


async def test_resolving_a_handed_over_conversation_lets_the_bot_answer_again(
    runtime: Runtime, channel: ChannelRow
) -> None:
    async with helpers.client_for(runtime) as client:
        cid = await _writes(runtime, client, channel, "Mitarbeiter!")
        assert (await _bot_said(runtime, cid))[-1].startswith(HANDOVER_DE)
        await _writes(runtime, client, channel, "Was kostet der Versand?")
        assert len(await _bot_said(runtime, cid)) == 1
        async with runtime.sessions() as session, session.begin():
            user = await accounts.add_user(
                session, channel.workspace_id, "c@example.com", "admin", "ein-langes-passwort"
            )
            await service.set_status(session, await actor_for(session, user), cid, "resolved")
        await _writes(runtime, client, channel, "Was kostet der Versand?")
    assert (await _bot_said(runtime, cid))[-1].startswith("Der Versand kostet")


async def test_blacklisted_terms_never_reach_the_customer(
    runtime: Runtime, channel: ChannelRow
) -> None:
    async with helpers.client_for(runtime) as client:
        cid = await _writes(runtime, client, channel, "Kann ich Sachen zurückschicken?")
        await _writes(runtime, client, channel, f"Ist {BLACKLISTED} nicht billiger?")
        await _writes(runtime, client, channel, f"Was haltet ihr von {BLACKLISTED.upper()}?")
        en = await _writes(runtime, client, channel, "How do returns work?", sender="4915100000079")
    said = await _bot_said(runtime, cid) + await _bot_said(runtime, en)
    assert said[0].startswith("Sie können Artikel 30 Tage lang zurückgeben")
    assert said[-1].startswith("You can return items")
    assert len(said) == 4
    assert all(fold(BLACKLISTED) not in fold(s) for s in said)


async def test_kb_edit_takes_effect_without_restart(runtime: Runtime, channel: ChannelRow) -> None:
    async with helpers.client_for(runtime) as client:
        cid = await _writes(runtime, client, channel, "Was kostet der Versand?")
        async with runtime.sessions() as session, session.begin():
            rows = {r.key: r for r in await store.entries(session, channel.workspace_id)}
            versand = rows["versand"]
            await store.save_entry(
                session,
                channel.workspace_id,
                versand.id,
                "versand",
                list(versand.content["questions"]),
                {"de": "Versand ist ab sofort immer kostenlos.", "en": "Shipping is free."},
            )
            await store.save_entry(
                session,
                channel.workspace_id,
                None,
                "gutschein",
                ["Gibt es Gutscheine?", "Kann ich einen Gutschein kaufen?"],
                {"de": "Gutscheine gibt es im Laden und online."},
            )
        await _writes(runtime, client, channel, "Was kostet der Versand?")
        await _writes(runtime, client, channel, "Verkauft ihr Gutscheine?")
    said = await _bot_said(runtime, cid)
    assert said == [
        "Der Versand kostet 4,90 €, ab 50 € ist er kostenlos.",
        "Versand ist ab sofort immer kostenlos.",
        "Gutscheine gibt es im Laden und online.",
    ]


async def test_without_a_knowledge_base_nothing_changes(runtime: Runtime) -> None:
    _, channel = await helpers.seed_whatsapp(runtime)
    async with helpers.client_for(runtime) as client:
        cid = await _writes(runtime, client, channel, "Was kostet der Versand?")
    assert await _bot_said(runtime, cid) == []
    assert await _queued(runtime, channel) == [cid]


# NUL and other control characters are removed at the edge: tests/bot/test_bad_input.py.
@pytest.mark.parametrize("text", ["", "🚲🚲🚲", "x" * 10_000, "\x07\u202e\x1b", "ja nein yes no"])
async def test_odd_messages_get_a_sensible_reply(
    runtime: Runtime, channel: ChannelRow, text: str
) -> None:
    async with helpers.client_for(runtime) as client:
        body = helpers.dumps(
            helpers.wa_envelope(messages=[helpers.wa_text(new_id(), CUSTOMER, text)])
        )
        response = await client.post(
            f"/webhooks/whatsapp/{channel.id}", content=body, headers=helpers.wa_sign(body)
        )
        assert response.status_code == 200
        await _process(runtime)
    async with runtime.sessions() as session:
        cid = await session.scalar(select(Conversation.id))
        failed = await session.scalar(select(jobs_table_failed()))
    assert cid is not None and not failed
    said = await _bot_said(runtime, str(cid))
    fallbacks = DEFAULT_TEXTS["de"]["fallback"]["sie"] + DEFAULT_TEXTS["en"]["fallback"]["sie"]
    if len(text) > 4000:  # too long to read whole: a person reads it
        assert said == [DEFAULT_TEXTS["de"]["handover_long"]["sie"]]
    else:
        assert len(said) == 1 and said[0] in fallbacks


def jobs_table_failed():  # type: ignore[no-untyped-def]
    """How many jobs failed or died (a crash in the process job would show here)."""

    return func.count(Job.id).filter(Job.state.in_(["dead", "failed"]))


async def test_consent_first_the_bot_waits_for_a_yes(runtime: Runtime, channel: ChannelRow) -> None:
    runtime.settings = runtime.settings.with_overrides(consent_first=True)
    async with helpers.client_for(runtime) as client:
        cid = await _writes(runtime, client, channel, "Was kostet der Versand?")
        assert await _bot_said(runtime, cid) == [], "only the privacy notice before a yes"
        await _writes(runtime, client, channel, "ja")
        # The question written before the yes is answered after it; the yes itself is not one.
        shipping = ["Der Versand kostet 4,90 €, ab 50 € ist er kostenlos."]
        assert await _bot_said(runtime, cid) == shipping
        await _writes(runtime, client, channel, "Danke")
    assert len(await _bot_said(runtime, cid)) == 2, "the held question is answered only once"


async def test_a_reaction_gets_no_reply(runtime: Runtime, channel: ChannelRow) -> None:
    async with helpers.client_for(runtime) as client:
        cid = await _writes(runtime, client, channel, "Was kostet der Versand?")
        async with runtime.sessions() as session:
            answer = await session.scalar(
                select(Message.id).where(
                    Message.sender_kind == "bot", Message.conversation_id == cid
                )
            )
        reaction = {
            "from": CUSTOMER,
            "id": new_id(),
            "timestamp": "1764650000",
            "type": "reaction",
            "reaction": {"message_id": str(answer), "emoji": "👍"},
        }
        body = helpers.dumps(helpers.wa_envelope(messages=[reaction]))
        response = await client.post(
            f"/webhooks/whatsapp/{channel.id}", content=body, headers=helpers.wa_sign(body)
        )
        assert response.status_code == 200
        await _process(runtime)
    async with runtime.sessions() as session:
        kinds = list(
            await session.scalars(
                select(Message.content_kind).where(Message.conversation_id == cid)
            )
        )
    assert "reaction" in kinds
    assert len(await _bot_said(runtime, cid)) == 1
