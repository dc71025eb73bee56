"""Every channel's inbound path (webhook, stanza handler or mail ingest) against one table."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from tests import helpers
from tests.channels.conformance import CASES, ChannelCase, Outcome
from tresen.channels.manage import add_channel, default_workspace
from tresen.db.tables import ChannelRow, Conversation, Message, PendingStatus
from tresen.domain.message import ContentKind, DeliveryState
from tresen.handlers.send import record_sent
from tresen.pipeline.outbound import OutboundContent, queue_message
from tresen.runtime import Runtime

PUBLIC = "http://testserver"

pytestmark = pytest.mark.parametrize("case", CASES, ids=[c.kind for c in CASES])

Post = Callable[[str, bytes], Awaitable[Outcome]]


async def _setup(runtime: Runtime, case: ChannelCase) -> str:
    async with runtime.sessions() as session, session.begin():
        ws = await default_workspace(session, "Konformität")
        row = await add_channel(session, ws.id, case.kind, f"{case.kind} test", case.config)
    return f"/webhooks/{case.kind}/{row.id}"


@asynccontextmanager
async def _inbound(runtime: Runtime, case: ChannelCase) -> AsyncIterator[Post]:
    """Deliver bodies the way the provider does: a signed webhook, or the channel's feed."""
    if case.feed is not None:
        feed = case.feed

        async def fed(url: str, body: bytes) -> Outcome:
            return await feed(runtime, url.rsplit("/", 1)[-1], body)

        yield fed
        return
    async with helpers.client_for(runtime) as client:

        async def posted(url: str, body: bytes) -> Outcome:
            response = await client.post(url, content=body, headers=case.sign(body, PUBLIC + url))
            if response.status_code < 400:
                return Outcome(response.status_code)
            return Outcome(response.status_code, response.json()["error"]["message"])

        yield posted


async def _messages(runtime: Runtime) -> list[Message]:
    async with runtime.sessions() as session:
        return list(await session.scalars(select(Message).order_by(Message.created_at)))


async def test_good_signature_is_stored(runtime: Runtime, case: ChannelCase) -> None:
    url = await _setup(runtime, case)
    body = case.inbound_text(
        "pid-good-1", "4915100000001", "Grüß Gott <script>alert(1)</script> 🚲"
    )
    async with _inbound(runtime, case) as post:
        outcome = await post(url, body)
    assert outcome.status_code == 200, outcome.message
    [message] = await _messages(runtime)
    assert message.body == "Grüß Gott <script>alert(1)</script> 🚲"
    assert message.content_kind == ContentKind.TEXT.value
    assert message.direction == "inbound" and message.sender_kind == "customer"
    async with runtime.sessions() as session:
        conv = await session.get_one(Conversation, message.conversation_id)
    assert conv.last_inbound_at is not None


@pytest.mark.parametrize("how", ["forged", "missing", "garbage"])
async def test_bad_or_missing_signature_stores_nothing(
    runtime: Runtime, case: ChannelCase, how: str
) -> None:
    url = await _setup(runtime, case)
    body = case.inbound_text("pid-forged-1", "4915100000001", "hi")
    headers = {
        "forged": case.forge(body, PUBLIC + url),
        "missing": {"Content-Type": case.content_type},
        "garbage": {
            k: (v if k.lower() == "content-type" else "sha256=zz")
            for k, v in case.sign(body, PUBLIC + url).items()
        },
    }[how]
    before = await helpers.count_rows(runtime)
    async with helpers.client_for(runtime) as client:
        response = await client.post(url, content=body, headers=headers)
    assert response.json()["error"]["message"]
    if case.feed is not None:
        # No webhook to sign: its URL refuses every call; spoofed input on the feed is not trusted.
        assert response.status_code == 405
        assert case.spoofed, f"{case.kind} names no spoofed input"
        async with _inbound(runtime, case) as post:
            for name, spoof in case.spoofed.items():
                assert (await post(url, spoof)).status_code in (200, 400), name
    else:
        assert response.status_code in (401, 403)
        assert response.status_code == (401 if how == "missing" else 403)
    assert await helpers.count_rows(runtime) == before


async def test_duplicate_delivery_stores_once(runtime: Runtime, case: ChannelCase) -> None:
    url = await _setup(runtime, case)
    body = case.inbound_text("pid-dup-1", "4915100000001", "zweimal")
    async with _inbound(runtime, case) as post:
        for _ in range(3):
            assert (await post(url, body)).status_code == 200
    assert len(await _messages(runtime)) == 1


async def test_inbound_out_of_order_keeps_the_customers_times(
    runtime: Runtime, case: ChannelCase
) -> None:
    if case.inbound_at is None:
        pytest.skip(f"{case.kind} does not say when the customer sent a message")
    url = await _setup(runtime, case)
    earlier = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=30)
    later = earlier + timedelta(minutes=20)
    async with _inbound(runtime, case) as post:
        for pid, text, at in (("pid-late-2", "zweite", later), ("pid-late-1", "erste", earlier)):
            body = case.inbound_at(pid, "4915100000001", text, at)
            assert (await post(url, body)).status_code == 200
    stored = {m.body: m for m in await _messages(runtime)}
    assert sorted(stored) == ["erste", "zweite"]
    assert stored["erste"].conversation_id == stored["zweite"].conversation_id
    for text, at in (("erste", earlier), ("zweite", later)):
        timestamp = stored[text].provider_timestamp
        assert timestamp is not None
        assert abs(timestamp.replace(tzinfo=UTC) - at) < timedelta(seconds=1), text
    async with runtime.sessions() as session:
        conv = await session.get_one(Conversation, stored["erste"].conversation_id)
    # The older message arriving last does not move the window back.
    assert conv.last_inbound_at is not None
    assert abs(conv.last_inbound_at.replace(tzinfo=UTC) - later) < timedelta(seconds=1)


async def _outbound(runtime: Runtime, case: ChannelCase, url: str) -> Message:
    body = case.inbound_text("pid-open-window", "4915100000009", "Hallo")
    async with _inbound(runtime, case) as post:
        assert (await post(url, body)).status_code == 200
    async with runtime.sessions() as session, session.begin():
        conv = (await session.scalars(select(Conversation))).one()

        channel = await session.get_one(ChannelRow, conv.channel_id)
        return await queue_message(
            session, conv, channel, OutboundContent(ContentKind.TEXT, "Antwort")
        )


async def test_statuses_out_of_order_only_move_forward(runtime: Runtime, case: ChannelCase) -> None:
    if case.status is None:
        pytest.skip(f"{case.kind} sends no delivery statuses")
    url = await _setup(runtime, case)
    message = await _outbound(runtime, case, url)
    pid = case.provider_id(message.id, "pid-out-1")
    async with runtime.sessions() as session, session.begin():
        await record_sent(session, message.id, message.channel_id, pid)
    fed = 0
    async with _inbound(runtime, case) as post:
        for state in ["read", "delivered", "sent", "read"]:
            body = case.status(pid, state)
            if body is not None:
                assert (await post(url, body)).status_code == 200
                fed += 1
    assert fed >= 3
    async with runtime.sessions() as session:
        stored = await session.get_one(Message, message.id)
    assert stored.state == DeliveryState.READ.value
    assert stored.read_at is not None
    # The delivered status came after read (stale), yet read implies delivered: it has a time.
    assert stored.delivered_at is not None and stored.delivered_at <= stored.read_at


async def test_status_before_send_completes_is_kept_and_applied(
    runtime: Runtime, case: ChannelCase
) -> None:
    if case.status is None:
        pytest.skip(f"{case.kind} sends no delivery statuses")
    url = await _setup(runtime, case)
    message = await _outbound(runtime, case, url)
    pid = case.provider_id(message.id, "pid-early-1")
    bodies = [b for b in (case.status(pid, s) for s in ["delivered", "sent"]) if b is not None]
    async with _inbound(runtime, case) as post:
        for body in bodies:
            assert (await post(url, body)).status_code == 200
    async with runtime.sessions() as session:
        pending = len(list(await session.scalars(select(PendingStatus))))
        early = await session.get_one(Message, message.id)
    if case.statuses_name_message:
        # The status names our message: it applies at once, the send record comes later.
        assert pending == 0 and early.state == DeliveryState.DELIVERED.value
    else:
        assert pending == len(bodies) == 2
    async with runtime.sessions() as session, session.begin():
        await record_sent(session, message.id, message.channel_id, pid)
    async with runtime.sessions() as session:
        stored = await session.get_one(Message, message.id)
        assert list(await session.scalars(select(PendingStatus))) == []
    assert stored.state == DeliveryState.DELIVERED.value


async def test_unknown_type_is_stored_as_unsupported(runtime: Runtime, case: ChannelCase) -> None:
    url = await _setup(runtime, case)
    body = case.unknown_type("pid-unknown-1")
    async with _inbound(runtime, case) as post:
        outcome = await post(url, body)
    assert outcome.status_code == 200, outcome.message
    [message] = await _messages(runtime)
    assert message.content_kind == ContentKind.UNSUPPORTED.value
    assert message.payload, "the full provider payload is kept"


async def test_oversized_body_is_refused(runtime: Runtime, case: ChannelCase) -> None:
    url = await _setup(runtime, case)
    size = case.size_limit(runtime.settings) + 10
    body = case.inbound_text("pid-big-1", "4915100000001", "x" * size)
    async with _inbound(runtime, case) as post:
        outcome = await post(url, body)
    if case.oversized_marker is None:
        assert outcome.status_code == 413
        assert await _messages(runtime) == []
        return
    # A connection or a mailbox cannot answer 413: the message is kept cut, and says so.
    assert outcome.status_code == 200, outcome.message
    [message] = await _messages(runtime)
    assert len(message.body or "") < size
    assert message.payload[case.oversized_marker]


async def test_malformed_bodies_get_400_and_store_nothing(
    runtime: Runtime, case: ChannelCase
) -> None:
    url = await _setup(runtime, case)
    assert case.malformed
    before = await helpers.count_rows(runtime)
    async with _inbound(runtime, case) as post:
        for name, body in case.malformed.items():
            outcome = await post(url, body)
            assert outcome.status_code == 400, (name, outcome)
            assert outcome.message, name
    assert await helpers.count_rows(runtime) == before


async def test_damaged_input_is_stored_once_as_unsupported(
    runtime: Runtime, case: ChannelCase
) -> None:
    if not case.damaged:
        pytest.skip(f"{case.kind} refuses broken input (see the malformed test)")
    url = await _setup(runtime, case)
    async with _inbound(runtime, case) as post:
        for name, body in case.damaged.items():
            for _ in range(2):
                assert (await post(url, body)).status_code == 200, name
    messages = await _messages(runtime)
    assert len(messages) == len(case.damaged)
    assert {m.content_kind for m in messages} == {ContentKind.UNSUPPORTED.value}


async def test_empty_arrays_are_fine(runtime: Runtime, case: ChannelCase) -> None:
    if not case.empty:
        pytest.skip(f"{case.kind} carries no batches that could be empty")
    url = await _setup(runtime, case)
    async with _inbound(runtime, case) as post:
        for body in case.empty:
            assert (await post(url, body)).status_code == 200
    assert await _messages(runtime) == []


async def test_huge_number_of_entries(runtime: Runtime, case: ChannelCase) -> None:
    if case.many_entries is None:
        pytest.skip(f"{case.kind} carries one message per webhook")
    url = await _setup(runtime, case)
    body = case.many_entries(600)
    assert len(body) < runtime.settings.max_webhook_bytes
    async with _inbound(runtime, case) as post:
        outcome = await post(url, body)
    assert outcome.status_code == 200, outcome.message
    assert len(await _messages(runtime)) == 600


async def test_recorded_payloads(runtime: Runtime, case: ChannelCase) -> None:
    url = await _setup(runtime, case)
    async with _inbound(runtime, case) as post:
        for name in case.recorded:
            outcome = await post(url, helpers.fixture_bytes(name))
            assert outcome.status_code == 200, (name, outcome)
    kinds = sorted(m.content_kind for m in await _messages(runtime))
    assert kinds == sorted(k.value for k in case.recorded.values())


async def test_unknown_channel_is_404(runtime: Runtime, case: ChannelCase) -> None:
    await _setup(runtime, case)
    body = case.inbound_text("pid-x", "4915100000001", "hi")
    url = f"/webhooks/{case.kind}/01nosuchchannel"
    async with _inbound(runtime, case) as post:
        outcome = await post(url, body)
    assert outcome.status_code == 404
