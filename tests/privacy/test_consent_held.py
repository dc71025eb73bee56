"""Consent, then the question: what a customer wrote before the yes is handled after it, once."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from tests import helpers
from tests.bot.kbdata import import_kb
from tests.pipeline.test_telegram_e2e import CHAT as TELEGRAM_CHAT
from tests.pipeline.test_telegram_e2e import telegram_stack, until
from tests.privacy.test_withholding_and_restriction import PASSWORD, _csrf
from tresen.db.tables import ChannelRow, Contact, Conversation, Job, Message, Note
from tresen.db.types import utcnow
from tresen.domain.ids import new_id
from tresen.handlers import bot_turn as live
from tresen.handlers.process import PROCESS_JOB, process_job
from tresen.inbox import accounts
from tresen.jobs import queue as jobs
from tresen.privacy import retention
from tresen.runtime import Runtime

CUSTOMER = "4915100000088"
SHIPPING = "Der Versand kostet 4,90 €, ab 50 € ist er kostenlos."
HOURS = "Wir haben Montag bis Freitag von 9 bis 18 Uhr geöffnet."


@pytest.fixture
async def channel(runtime: Runtime) -> ChannelRow:
    """A WhatsApp channel with the test knowledge base, consent first on."""
    runtime.settings = runtime.settings.with_overrides(consent_first=True)
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
    client: httpx.AsyncClient, channel: ChannelRow, text: str, ts: int | None = None
) -> None:
    body = helpers.dumps(
        helpers.wa_envelope(
            messages=[helpers.wa_text(new_id(), CUSTOMER, text, ts=ts)],
            contacts=[{"profile": {"name": "Jana"}, "wa_id": CUSTOMER}],
        )
    )
    answer = await client.post(
        f"/webhooks/whatsapp/{channel.id}", content=body, headers=helpers.wa_sign(body)
    )
    assert answer.status_code == 200


async def _outbound(runtime: Runtime) -> list[tuple[str, str]]:
    """(sender kind, text) of everything queued to the customer, in order."""
    async with runtime.sessions() as session:
        rows = await session.execute(
            select(Message.sender_kind, Message.body)
            .where(Message.direction == "outbound")
            .order_by(Message.created_at, Message.id)
        )
        return [(str(kind), str(body)) for kind, body in rows.all()]


async def _conversation(runtime: Runtime) -> Conversation:
    async with runtime.sessions() as session:
        return (await session.scalars(select(Conversation))).one()


async def test_questions_before_the_yes_are_answered_after_it_in_order(
    runtime: Runtime, channel: ChannelRow
) -> None:
    async with helpers.client_for(runtime) as client:
        await _writes(client, channel, "Was kostet der Versand?")
        await _process(runtime)
        await _writes(client, channel, "Und wann habt ihr geöffnet?")
        await _process(runtime)
        before = await _outbound(runtime)
        assert len(before) == 1 and "Datenschutz" in before[0][1], "one notice, nothing else"
        await _writes(client, channel, "Ja")
        await _process(runtime)
    said = await _outbound(runtime)
    assert said[1] == ("system", "Danke!")
    bot = [text for kind, text in said if kind == "bot"]
    assert bot == [SHIPPING, HOURS]
    async with runtime.sessions() as session:
        held = await session.scalar(select(func.count()).where(Message.consent_held.is_(True)))
    assert held == 0
    assert (await _conversation(runtime)).queued_at is None, "the bot has it, not the queue"


async def test_a_retried_yes_answers_each_question_once(
    runtime: Runtime, channel: ChannelRow, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = live.handle
    calls = {"n": 0}

    async def crash_on_second(*args: Any, **kwargs: Any) -> live.Outcome:
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("worker died in the middle")
        return await real(*args, **kwargs)

    async with helpers.client_for(runtime) as client:
        await _writes(client, channel, "Was kostet der Versand?")
        await _writes(client, channel, "Habt ihr samstags auf?")
        await _process(runtime)
        await _writes(client, channel, "ja")
        monkeypatch.setattr(live, "handle", crash_on_second)
        with pytest.raises(RuntimeError):
            await _process(runtime)
        assert [k for k, _ in await _outbound(runtime)] == ["system"], "rolled back whole"
        monkeypatch.setattr(live, "handle", real)
        await _expire_leases(runtime)
        await _process(runtime)
    said = await _outbound(runtime)
    assert [k for k, _ in said] == ["system", "system", "bot", "bot"]
    assert said[2][1] == SHIPPING


async def _expire_leases(runtime: Runtime) -> None:
    """Make the job a crashed worker held claimable again (as its lease would lapse)."""
    async with runtime.sessions() as session, session.begin():
        for job in await session.scalars(select(Job).where(Job.state == "running")):
            job.lease_until = job.updated_at - timedelta(seconds=1)


async def test_after_no_nothing_is_processed_nobody_can_write_and_the_data_goes(
    runtime: Runtime, channel: ChannelRow
) -> None:
    async with runtime.sessions() as session, session.begin():
        await accounts.add_user(
            session, channel.workspace_id, "kim@laden.de", "admin", PASSWORD, language="de"
        )
    token = await helpers.seed_token(runtime, channel.workspace_id)
    async with helpers.client_for(runtime) as client:
        await _writes(client, channel, "Was kostet der Versand?")
        await _process(runtime)
        await _writes(client, channel, "Nein")
        await _process(runtime)
        await _writes(client, channel, "Und die Öffnungszeiten?")
        await _process(runtime)
        said = await _outbound(runtime)
        assert [k for k, _ in said] == ["system", "system"], "no bot, no second notice"
        assert "löschen Ihre Daten innerhalb von 30 Tagen" in said[1][1]
        conversation = await _conversation(runtime)
        assert conversation.queued_at is None and conversation.assignee_id is None

        answer = await client.post(
            f"/api/v1/conversations/{conversation.id}/messages",
            json={"kind": "text", "body": "Hallo?"},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert answer.status_code == 422 and answer.json()["error"]["code"] == "consent_refused"
        page = await client.get("/inbox/login")
        await client.post(
            "/inbox/login",
            data={"email": "kim@laden.de", "password": PASSWORD, "_csrf_token": _csrf(page.text)},
        )
        page = await client.get(f"/inbox/c/{conversation.id}")
        assert "Sie können hier nicht schreiben: Der Datenschutzhinweis" in page.text
        assert (
            'name="body" rows="3"' in page.text
            and "disabled" in page.text.split('id="reply-body"', 1)[1].split(">", 1)[0]
        )
        sent = await client.post(
            f"/inbox/c/{conversation.id}/reply",
            data={"body": "Hallo?", "_csrf_token": _csrf(page.text)},
        )
        assert sent.status_code == 422
    assert len(await _outbound(runtime)) == 2
    async with runtime.sessions() as session:
        held = await session.scalar(select(func.count()).where(Message.consent_held.is_(True)))
    assert held == 0, "after a no nothing waits to be handled"

    # As the answer promised: retention erases the contact after 30 days, not before.
    async def retention_in(days: int) -> int:
        await retention.run(
            runtime.sessions,
            runtime.settings.secret_key,
            runtime.files,
            now=utcnow() + timedelta(days=days),
        )
        async with runtime.sessions() as session:
            return int(await session.scalar(select(func.count(Contact.id))) or 0)

    assert await retention_in(29) == 1
    assert await retention_in(31) == 0


async def test_a_message_after_the_window_reaches_the_queue_without_a_retry_storm(
    runtime: Runtime, channel: ChannelRow
) -> None:
    two_days_ago = int(time.time()) - 2 * 24 * 3600
    async with helpers.client_for(runtime) as client:
        await _writes(client, channel, "Was kostet der Versand?", ts=two_days_ago)
        await _process(runtime)
    assert await _outbound(runtime) == [], "the notice cannot be sent outside the window"
    async with runtime.sessions() as session:
        states = list(await session.scalars(select(Job.state).where(Job.kind == PROCESS_JOB)))
        note = await session.scalar(select(Note.body))
        contact_state = await session.scalar(select(Contact.consent_state))
    assert states == [], "finished at once, not left to retry"
    assert note is not None and "Antwortfenster" in note
    assert contact_state == "unknown", "nobody was asked, so nobody answered"
    assert (await _conversation(runtime)).queued_at is not None, "a person takes it up"


async def test_on_telegram_the_question_before_the_yes_button_is_answered(
    runtime: Runtime,
) -> None:
    runtime.settings = runtime.settings.with_overrides(consent_first=True)
    async with telegram_stack(runtime) as stack:
        await import_kb(runtime, stack.channel.workspace_id)
        await stack.customer_writes("Was kostet der Versand?")
        await until(lambda: len(stack.sim.ledger) == 1)
        notice = stack.sim.ledger[0].payload
        assert "Datenschutz" in notice["text"]
        buttons = [b["callback_data"] for [b] in notice["reply_markup"]["inline_keyboard"]]
        assert buttons == ["consent_yes", "consent_no"]
        await stack.sim.customer_presses(TELEGRAM_CHAT, "consent_yes")
        await until(lambda: len(stack.sim.ledger) == 3)
        await asyncio.sleep(0.3)
        texts = [e.payload["text"] for e in stack.sim.ledger]
    assert texts[1:] == ["Danke!", SHIPPING], "thanks, then the question asked before the yes"
