"""Bad input on the way in: control characters, NUL on PostgreSQL, and any text to the live bot."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from sqlalchemy import func, select

from tests import helpers
from tests.bot.kbdata import import_kb
from tests.examples import examples
from tresen.channels.base import InboundMessage, ParsedWebhook, StatusUpdate
from tresen.db.migrate import upgrade_to_head
from tresen.db.tables import BotTurn, ChannelRow, ContactIdentity, Conversation, Job, Message
from tresen.domain.ids import new_id
from tresen.domain.message import ContentKind, DeliveryState
from tresen.domain.text import strip_control
from tresen.handlers.process import PROCESS_JOB, process_job
from tresen.jobs import queue as jobs
from tresen.pipeline.inbound import storable
from tresen.runtime import Runtime
from tresen.settings import Settings

CUSTOMER = "4915100000123"
_customers = itertools.count(1)


def test_strip_control_keeps_text_emoji_and_line_breaks() -> None:
    assert strip_control("a\x00b\x07c\x1b[0m\x7f\x85") == "abc[0m"
    assert strip_control("Zeile 1\nZeile 2\tTab\r\n") == "Zeile 1\nZeile 2\tTab\r\n"
    assert strip_control("👩‍👩‍👧 ❤️ Größe 42½") == "👩‍👩‍👧 ❤️ Größe 42½"
    assert strip_control("x\ud800y") == "xy"


def test_storable_cleans_every_text_of_messages_and_statuses() -> None:
    now = datetime.now(UTC)
    parsed = ParsedWebhook(
        [
            InboundMessage(
                "wamid.\x00a",
                "49151\x00",
                "Ja\x00na",
                now,
                ContentKind.TEXT,
                "Hallo\x00 Welt",
                {"text": {"body": "Hallo\x00 Welt"}, "k\x00": ["\x01x"]},
            )
        ],
        [StatusUpdate("wamid.b", DeliveryState.FAILED, now, error_reason="bad\x00reason")],
    )
    out = storable(parsed)
    message = out.messages[0]
    assert (message.provider_message_id, message.sender_address, message.sender_name) == (
        "wamid.a",
        "49151",
        "Jana",
    )
    assert message.body == "Hallo Welt"
    assert message.payload == {"text": {"body": "Hallo Welt"}, "k": ["x"]}
    assert out.statuses[0].error_reason == "badreason"


async def _post(client: Any, channel: ChannelRow, text: str, sender: str = CUSTOMER) -> int:
    body = helpers.dumps(
        helpers.wa_envelope(
            messages=[helpers.wa_text(new_id(), sender, text)],
            contacts=[{"profile": {"name": "Ja\x00na"}, "wa_id": sender}],
        )
    )
    response = await client.post(
        f"/webhooks/whatsapp/{channel.id}", content=body, headers=helpers.wa_sign(body)
    )
    return int(response.status_code)


async def _process(runtime: Runtime) -> None:
    await helpers.hand_on_events(runtime)
    while claimed := await jobs.claim(
        runtime.engine, "w1", 10, timedelta(seconds=5), [PROCESS_JOB]
    ):
        for job in claimed:
            await process_job(runtime, job, "w1")


async def test_nul_in_a_whatsapp_text_is_stored_without_it(runtime: Runtime) -> None:
    """On PostgreSQL a NUL in text or jsonb is refused: it used to make the webhook answer 503."""
    _, channel = await helpers.seed_whatsapp(runtime)
    await import_kb(runtime, channel.workspace_id)
    async with helpers.client_for(runtime) as client:
        assert await _post(client, channel, "Was kostet\x00 der Versand?\x00") == 200
        await _process(runtime)
    async with runtime.sessions() as session:
        stored = list(await session.scalars(select(Message).order_by(Message.created_at)))
    assert stored[0].body == "Was kostet der Versand?"
    assert stored[0].payload["text"]["body"] == "Was kostet der Versand?"
    assert [m.body for m in stored[1:]] == ["Der Versand kostet 4,90 €, ab 50 € ist er kostenlos."]


@pytest.fixture
def live(settings: Settings) -> Iterator[tuple[asyncio.Runner, Runtime, ChannelRow]]:
    """A runtime with the test bot, driven from a synchronous (hypothesis) test."""
    with asyncio.Runner() as runner:
        runtime = Runtime.create(settings)

        async def prepare() -> ChannelRow:
            await upgrade_to_head(runtime.engine)
            _, channel = await helpers.seed_whatsapp(runtime)
            await import_kb(runtime, channel.workspace_id)
            return channel

        channel = runner.run(prepare())
        try:
            yield runner, runtime, channel
        finally:
            runner.run(runtime.close())


_MESSAGES = st.one_of(
    st.text(max_size=200),
    st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=40).map(lambda s: s * 300),
    st.lists(st.sampled_from(["🚲", "😡", "👍🏽", "❤️", "🙈", "\u200d", "\ufe0f"]), max_size=30).map(
        "".join
    ),
    st.lists(
        st.sampled_from(
            ["Hallo", "shipping", "Versand", "cost", "kostet", "please", "bitte", "42", "???"]
        ),
        max_size=12,
    ).map(" ".join),
)


@hsettings(
    max_examples=examples(30),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(text=_MESSAGES)
def test_the_live_bot_answers_any_text_or_hands_over(
    live: tuple[asyncio.Runner, Runtime, ChannelRow], text: str
) -> None:
    runner, runtime, channel = live

    customer = f"49151{next(_customers):08d}"

    async def one() -> tuple[int, int, list[str], list[str]]:
        async with helpers.client_for(runtime) as client:
            status = await _post(client, channel, text, customer)
        await _process(runtime)
        async with runtime.sessions() as session:
            failed = await session.scalar(
                select(func.count(Job.id)).where(Job.state.in_(["dead", "failed"]))
            )
            conversation = await session.scalar(
                select(Conversation.id)
                .join(ContactIdentity, ContactIdentity.id == Conversation.identity_id)
                .where(ContactIdentity.address == customer)
            )
            outcomes = list(
                await session.scalars(
                    select(BotTurn.outcome).where(BotTurn.conversation_id == conversation)
                )
            )
            said = list(
                await session.scalars(
                    select(Message.body).where(
                        Message.conversation_id == conversation, Message.sender_kind == "bot"
                    )
                )
            )
        return status, int(failed or 0), outcomes, [str(s) for s in said]

    status, failed, outcomes, said = runner.run(one())
    assert status == 200
    assert failed == 0, "the process job crashed on this text"
    assert len(outcomes) == 1 and outcomes[0] in {
        "answered",
        "fallback",
        "greeting",
        "handover",
        "flow",
    }
    assert len(said) == 1 and said[0].strip() and "\x00" not in said[0]
