"""The whole way through the WhatsApp simulator: consent, greeting, FAQ, a slot, "Mitarbeiter", the queue."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from sqlalchemy import select

from tests.bot.kbdata import import_kb, shop_kb_data
from tests.pipeline.stack import running_stack
from tresen.bot import store
from tresen.bot.products import read_catalog
from tresen.db.tables import BotConversation, Note
from tresen.inbox import routing
from tresen.runtime import Runtime
from tresen.sim.shop import DEMO_TOKEN, run_shop_simulator

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
        # The greeting written before the yes is answered after it, once.
        thanks, greeting = (await _replies(stack, 3))[1:3]
        assert thanks == "Danke!" and "Radladen Test" in greeting
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
        assert note is not None and "Radschuh" in note and "Angaben: Schuhgröße 43" in note
        await say(CUSTOMER, name="Jana", body="Hallo?")
        await asyncio.sleep(1.0)
        assert len(await _replies(stack, 6)) == 6, "the bot is silent after the hand-over"


async def test_greeting_faq_product_order_then_mitarbeiter_with_summary(runtime: Runtime) -> None:

    catalog = read_catalog(
        Path(__file__).parents[2] / "src" / "tresen" / "bot" / "data" / "demo_products.json"
    )
    async with run_shop_simulator() as shop, running_stack(runtime) as stack:
        runtime.settings = runtime.settings.with_overrides(
            shop_url=shop.base_url, shop_token=DEMO_TOKEN
        )
        workspace = stack.channel.workspace_id
        await import_kb(runtime, workspace, shop_kb_data())
        async with runtime.sessions() as session, session.begin():
            await store.import_products(session, workspace, catalog)
        say = stack.sim.customer_sends
        await say(CUSTOMER, name="Jana", body="Hallo!")
        assert "Radladen Test" in (await _replies(stack, 1))[0]
        await say(CUSTOMER, name="Jana", body="Was kostet der Versand?")
        assert (await _replies(stack, 2))[
            1
        ] == "Der Versand kostet 4,90 €, ab 50 € ist er kostenlos."
        await say(CUSTOMER, name="Jana", body="Habt ihr den Radschuh Tour in 42?")
        assert (await _replies(stack, 3))[2] == (
            "Pedalo Radschuh Tour gibt es in Größe 42: vorrätig, 89,95 €. "
            "https://radhaus-demo.example/p/rs-4100"
        )
        await say(CUSTOMER, name="Jana", body="und in 41?")
        assert (await _replies(stack, 4))[3].startswith(
            "Pedalo Radschuh Tour in Größe 41 ist gerade"
        )
        await say(CUSTOMER, name="Jana", body="Wo ist meine Bestellung RH-100234?")
        assert (await _replies(stack, 5))[4].endswith(
            "Wie lautet die Postleitzahl der Lieferadresse oder Ihre E-Mail-Adresse?"
        )
        await say(CUSTOMER, name="Jana", body="jana@example.com")
        assert (await _replies(stack, 6))[5] == (
            "Ihre Bestellung RH-100234: versandt. "
            "Sendungsverfolgung: https://tracking.example/dhl/00340434161094012345"
        )
        assert shop.requests == ["RH-100234"]
        await say(CUSTOMER, name="Jana", body="Mitarbeiter bitte")
        assert (await _replies(stack, 7))[6].startswith("Ich gebe Sie an unser Team weiter")
        async with runtime.sessions() as session:
            waiting = await routing.queue(session, workspace)
            assert [w.address for w in waiting] == [CUSTOMER]
            memory = await session.get_one(BotConversation, waiting[0].conversation_id)
            note = await session.scalar(
                select(Note.body).where(Note.conversation_id == waiting[0].conversation_id)
            )
    assert memory.handover_reason == "asked_for_person"
    assert note is not None and note == memory.handover_summary
    assert "Beantwortete Fragen: Was kostet der Versand?" in note
    assert "Wo ist meine Bestellung?" in note
    assert "Angesehene Produkte: Pedalo Radschuh Tour (RS-4100)" in note
    assert "Bestellung RH-100234: versandt" in note
    assert "jana@example.com" not in note, "the second factor is not in the summary"
