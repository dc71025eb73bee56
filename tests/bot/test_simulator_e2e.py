"""The whole way through the WhatsApp simulator: consent, greeting, FAQ, a slot, "Mitarbeiter", the queue."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import select

from tests.bot.kbdata import import_kb
from tests.pipeline.stack import running_stack
from tresen.db.tables import BotConversation, Note
from tresen.inbox import routing
from tresen.runtime import Runtime

CUSTOMER = "4915100000555"


def _text(entry: Any) -> str:
    payload = entry.payload
    if entry.type == "interactive":
        return str(payload["interactive"]["body"]["text"])
    return str(payload["text"]["body"])


async def _replies(stack: Any, n: int, timeout: float = 30.0) -> list[str]:
    """Wait until the customer got `n` messages; return their texts in order."""
    for _ in range(int(timeout / 0.05)):
        mine = [e for e in stack.sim.ledger if e.to.endswith(CUSTOMER[-6:])]
        if len(mine) >= n:
            return [_text(e) for e in mine]
        await asyncio.sleep(0.05)
    raise AssertionError(f"the customer did not get {n} messages in time")


async def test_greeting_faq_slot_then_mitarbeiter_lands_in_the_queue(runtime: Runtime) -> None:
    runtime.settings = runtime.settings.with_overrides(consent_first=True)
    async with running_stack(runtime) as stack:
        await import_kb(runtime, stack.channel.workspace_id)
        say = stack.sim.customer_sends
        await say(CUSTOMER, name="Jana", body="Hallo!")
        assert "Datenschutz" in (await _replies(stack, 1))[0]
        await say(CUSTOMER, name="Jana", body="ja")
        await _replies(stack, 2)
        await say(CUSTOMER, name="Jana", body="Hallo!")
        assert "Radladen Test" in (await _replies(stack, 3))[2]
        await say(CUSTOMER, name="Jana", body="Habt ihr die Radschuhe in 42?")
        assert (await _replies(stack, 4))[3] == (
            "Unsere Radschuhe gibt es in vielen Größen.\n\nGröße 42 haben wir vorrätig."
        )
        await say(CUSTOMER, name="Jana", body="und in 43?")
        assert (await _replies(stack, 5))[4] == "Größe 43 haben wir vorrätig."
        await say(CUSTOMER, name="Jana", body="Mitarbeiter bitte")
        assert (await _replies(stack, 6))[5].startswith("Ich gebe Sie an unser Team weiter")
        async with runtime.sessions() as session:
            waiting = await routing.queue(session, stack.channel.workspace_id)
            assert [w.address for w in waiting] == [CUSTOMER]
            memory = await session.get_one(BotConversation, waiting[0].conversation_id)
            note = await session.scalar(
                select(Note.body).where(Note.conversation_id == waiting[0].conversation_id)
            )
        assert memory.handover_reason == "asked_for_person"
        assert note is not None and "schuhe" in note and "size=43" in note
        await say(CUSTOMER, name="Jana", body="Hallo?")
        await asyncio.sleep(1.0)
        assert len(await _replies(stack, 6)) == 6, "the bot is silent after the hand-over"
