"""Order status through the fake shop: never without the second factor, limited attempts."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import select

from tests import helpers
from tests.bot.kbdata import import_kb, shop_kb_data
from tresen.bot import orders
from tresen.db.tables import BotConversation, ChannelRow, Conversation, Message
from tresen.domain.ids import new_id
from tresen.handlers.bot_turn import ACTION_JOB
from tresen.handlers.process import HANDLERS, PROCESS_JOB
from tresen.inbox import routing
from tresen.jobs import queue as jobs
from tresen.runtime import Runtime
from tresen.sim.shop import DEMO_TOKEN, ShopSimulator, run_shop_simulator

CUSTOMER = "4915100000321"


@pytest.fixture
def shop() -> ShopSimulator:
    return ShopSimulator()


def _client(shop: ShopSimulator) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=shop.app()))


@pytest.mark.parametrize("factor", ["70173", "jana@example.com", "JANA@Example.com ", "701 73"])
async def test_the_right_second_factor_gives_status_and_tracking(
    shop: ShopSimulator, factor: str
) -> None:
    async with _client(shop) as http:
        found = await orders.lookup(http, "http://shop", DEMO_TOKEN, "RH-100234", factor)
    assert found == orders.Order(
        "RH-100234", "shipped", "https://tracking.example/dhl/00340434161094012345"
    )


async def test_a_wrong_factor_and_an_unknown_order_look_the_same(shop: ShopSimulator) -> None:
    async with _client(shop) as http:
        wrong = await orders.lookup(http, "http://shop", DEMO_TOKEN, "RH-100234", "10115")
        wrong_mail = await orders.lookup(
            http, "http://shop", DEMO_TOKEN, "RH-100234", "max@example.com"
        )
        unknown = await orders.lookup(http, "http://shop", DEMO_TOKEN, "RH-999999", "70173")
        missing = await orders.lookup(http, "http://shop", DEMO_TOKEN, "RH-100234", None)
    assert wrong == wrong_mail == unknown == missing == "not_found"
    assert shop.requests == ["RH-100234", "RH-100234", "RH-999999"], (
        "no factor: the shop is not asked"
    )


@pytest.mark.parametrize("problem", ["status", "token", "slow"])
async def test_a_broken_shop_is_unavailable(shop: ShopSimulator, problem: str) -> None:
    token = DEMO_TOKEN
    if problem == "status":
        shop.fail_with = 502
    elif problem == "token":
        token = "wrong"
    else:
        shop.delay_seconds = 5.0
    async with run_shop_simulator(shop) as running, httpx.AsyncClient() as http:
        found = await orders.lookup(
            http, running.base_url, token, "RH-100234", "70173", timeout=0.3
        )
    assert found == "unavailable"


@pytest.fixture
async def channel(runtime: Runtime) -> AsyncIterator[ChannelRow]:
    """A WhatsApp channel with the shop knowledge base; the fake shop runs over HTTP."""
    _, row = await helpers.seed_whatsapp(runtime)
    await import_kb(runtime, row.workspace_id, shop_kb_data())
    async with run_shop_simulator() as shop:
        runtime.settings = runtime.settings.with_overrides(
            shop_url=shop.base_url, shop_token=DEMO_TOKEN
        )
        yield row


async def _process(runtime: Runtime) -> None:
    await helpers.hand_on_events(runtime)
    while claimed := await jobs.claim(
        runtime.engine, "w1", 10, timedelta(seconds=5), [PROCESS_JOB, ACTION_JOB]
    ):
        for job in claimed:
            await HANDLERS[job.kind](runtime, job, "w1")


async def _says(runtime: Runtime, client: httpx.AsyncClient, channel: ChannelRow, text: str) -> str:
    body = helpers.dumps(helpers.wa_envelope(messages=[helpers.wa_text(new_id(), CUSTOMER, text)]))
    response = await client.post(
        f"/webhooks/whatsapp/{channel.id}", content=body, headers=helpers.wa_sign(body)
    )
    assert response.status_code == 200
    await _process(runtime)
    async with runtime.sessions() as session:
        said = list(
            await session.scalars(
                select(Message.body)
                .where(Message.sender_kind == "bot")
                .order_by(Message.created_at.desc(), Message.id.desc())
            )
        )
    return str(said[0]) if said else ""


async def _memory(runtime: Runtime) -> BotConversation:
    async with runtime.sessions() as session:
        return (await session.scalars(select(BotConversation))).one()


async def test_order_status_after_verification_and_the_factor_is_not_kept(
    runtime: Runtime, channel: ChannelRow
) -> None:
    async with helpers.client_for(runtime) as client:
        asked = await _says(runtime, client, channel, "Wo ist meine Bestellung?")
        assert asked == "Ich schaue nach Ihrer Bestellung.\n\nWie lautet Ihre Bestellnummer?"
        assert (await _says(runtime, client, channel, "RH-100234")).startswith(
            "Wie lautet die Postleitzahl"
        )
        answer = await _says(runtime, client, channel, "70173")
    assert answer == (
        "Ihre Bestellung RH-100234: versandt. "
        "Sendungsverfolgung: https://tracking.example/dhl/00340434161094012345"
    )
    memory = await _memory(runtime)
    assert "70173" not in str(memory.state), "the second factor is not stored"
    assert memory.state["slots"]["order"] == "RH-100234"


async def test_number_and_factor_in_one_message(runtime: Runtime, channel: ChannelRow) -> None:
    async with helpers.client_for(runtime) as client:
        answer = await _says(
            runtime,
            client,
            channel,
            "Wo ist meine Bestellung RH-100235? Meine Mail: max@example.com",
        )
    assert (
        answer == "Ich schaue nach Ihrer Bestellung.\n\nIhre Bestellung RH-100235: in Bearbeitung."
    )


async def test_three_failed_attempts_hand_over_and_nothing_leaks(
    runtime: Runtime, channel: ChannelRow
) -> None:
    async with helpers.client_for(runtime) as client:
        await _says(runtime, client, channel, "Wo ist meine Bestellung?")
        await _says(runtime, client, channel, "RH-100234")
        wrong_factor = await _says(runtime, client, channel, "10115")
        await _says(runtime, client, channel, "RH-999999")
        unknown_order = await _says(runtime, client, channel, "70173")
        assert wrong_factor == unknown_order, "a wrong factor and a missing order look the same"
        assert wrong_factor.startswith("Zu dieser Bestellnummer und dieser Angabe finde ich keine")
        assert "versandt" not in wrong_factor and "RH-100234" not in wrong_factor
        await _says(runtime, client, channel, "RH-100234")
        last = await _says(runtime, client, channel, "12345")
    assert last.startswith("Ich gebe Sie an unser Team weiter")
    memory = await _memory(runtime)
    assert memory.handover_reason == "order_verification"
    assert "12345" not in str(memory.state)
    async with runtime.sessions() as session:
        queued = await routing.queue(session, channel.workspace_id)
        conv = await session.scalar(select(Conversation.id))
    assert [w.conversation_id for w in queued] == [conv]


async def test_a_shop_outage_hands_over(runtime: Runtime, channel: ChannelRow) -> None:
    runtime.settings = runtime.settings.with_overrides(shop_url="http://127.0.0.1:9")
    async with helpers.client_for(runtime) as client:
        answer = await _says(
            runtime, client, channel, "Wo ist meine Bestellung RH-100234, PLZ 70173"
        )
    assert answer.startswith(
        "Ich schaue nach Ihrer Bestellung.\n\nIch komme gerade nicht an den Bestellstatus."
    )
    assert (await _memory(runtime)).handover_reason == "shop_unavailable"
