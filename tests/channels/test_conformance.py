"""Every channel's webhook endpoint against the same table of good and bad input."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from tests import helpers
from tests.channels.conformance import CASES, ChannelCase
from tresen.channels.manage import add_channel, default_workspace
from tresen.db.tables import Conversation, Message, PendingStatus
from tresen.domain.message import ContentKind, DeliveryState
from tresen.pipeline.outbound import OutboundContent, queue_message
from tresen.pipeline.sender import record_sent
from tresen.runtime import Runtime

PUBLIC = "http://testserver"

pytestmark = pytest.mark.parametrize("case", CASES, ids=[c.kind for c in CASES])


async def _setup(runtime: Runtime, case: ChannelCase) -> str:
    async with runtime.sessions() as session, session.begin():
        ws = await default_workspace(session, "Konformität")
        row = await add_channel(session, ws.id, case.kind, f"{case.kind} test", case.config)
    return f"/webhooks/{case.kind}/{row.id}"


async def _messages(runtime: Runtime) -> list[Message]:
    async with runtime.sessions() as session:
        return list(await session.scalars(select(Message).order_by(Message.created_at)))


async def test_good_signature_is_stored(runtime: Runtime, case: ChannelCase) -> None:
    url = await _setup(runtime, case)
    body = case.inbound_text(
        "pid-good-1", "4915100000001", "Grüß Gott <script>alert(1)</script> 🚲"
    )
    async with helpers.client_for(runtime) as client:
        response = await client.post(url, content=body, headers=case.sign(body, PUBLIC + url))
    assert response.status_code == 200, response.text
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
    assert response.status_code in (401, 403)
    assert response.status_code == (401 if how == "missing" else 403)
    assert response.json()["error"]["message"]
    assert await helpers.count_rows(runtime) == before


async def test_duplicate_delivery_stores_once(runtime: Runtime, case: ChannelCase) -> None:
    url = await _setup(runtime, case)
    body = case.inbound_text("pid-dup-1", "4915100000001", "zweimal")
    async with helpers.client_for(runtime) as client:
        for _ in range(3):
            response = await client.post(url, content=body, headers=case.sign(body, PUBLIC + url))
            assert response.status_code == 200
    assert len(await _messages(runtime)) == 1


async def _outbound(runtime: Runtime, case: ChannelCase, url: str) -> Message:
    body = case.inbound_text("pid-open-window", "4915100000009", "Hallo")
    async with helpers.client_for(runtime) as client:
        assert (
            await client.post(url, content=body, headers=case.sign(body, PUBLIC + url))
        ).status_code == 200
    async with runtime.sessions() as session, session.begin():
        conv = (await session.scalars(select(Conversation))).one()
        from tresen.db.tables import ChannelRow

        channel = await session.get_one(ChannelRow, conv.channel_id)
        return await queue_message(
            session, conv, channel, OutboundContent(ContentKind.TEXT, "Antwort")
        )


async def test_statuses_out_of_order_only_move_forward(runtime: Runtime, case: ChannelCase) -> None:
    if case.status is None:
        pytest.skip(f"{case.kind} sends no delivery statuses")
    url = await _setup(runtime, case)
    message = await _outbound(runtime, case, url)
    async with runtime.sessions() as session, session.begin():
        await record_sent(session, message.id, message.channel_id, "pid-out-1")
    async with helpers.client_for(runtime) as client:
        for state in ["read", "delivered", "sent", "read"]:
            body = case.status(  # type: ignore[misc]
                "pid-out-1", state
            )
            assert (
                await client.post(url, content=body, headers=case.sign(body, PUBLIC + url))
            ).status_code == 200
    async with runtime.sessions() as session:
        stored = await session.get_one(Message, message.id)
    assert stored.state == DeliveryState.READ.value
    assert stored.read_at is not None


async def test_status_before_send_completes_is_kept_and_applied(
    runtime: Runtime, case: ChannelCase
) -> None:
    if case.status is None:
        pytest.skip(f"{case.kind} sends no delivery statuses")
    url = await _setup(runtime, case)
    message = await _outbound(runtime, case, url)
    async with helpers.client_for(runtime) as client:
        for state in ["delivered", "sent"]:
            body = case.status(  # type: ignore[misc]
                "pid-early-1", state
            )
            assert (
                await client.post(url, content=body, headers=case.sign(body, PUBLIC + url))
            ).status_code == 200
    async with runtime.sessions() as session:
        assert len(list(await session.scalars(select(PendingStatus)))) == 2
    async with runtime.sessions() as session, session.begin():
        await record_sent(session, message.id, message.channel_id, "pid-early-1")
    async with runtime.sessions() as session:
        stored = await session.get_one(Message, message.id)
        assert list(await session.scalars(select(PendingStatus))) == []
    assert stored.state == DeliveryState.DELIVERED.value


async def test_unknown_type_is_stored_as_unsupported(runtime: Runtime, case: ChannelCase) -> None:
    url = await _setup(runtime, case)
    body = case.unknown_type("pid-unknown-1")
    async with helpers.client_for(runtime) as client:
        response = await client.post(url, content=body, headers=case.sign(body, PUBLIC + url))
    assert response.status_code == 200
    [message] = await _messages(runtime)
    assert message.content_kind == ContentKind.UNSUPPORTED.value
    assert message.payload, "the full provider payload is kept"


async def test_oversized_body_is_refused(runtime: Runtime, case: ChannelCase) -> None:
    url = await _setup(runtime, case)
    body = case.inbound_text(
        "pid-big-1", "4915100000001", "x" * (runtime.settings.max_webhook_bytes + 10)
    )
    async with helpers.client_for(runtime) as client:
        response = await client.post(url, content=body, headers=case.sign(body, PUBLIC + url))
    assert response.status_code == 413
    assert await _messages(runtime) == []


async def test_malformed_bodies_get_400_and_store_nothing(
    runtime: Runtime, case: ChannelCase
) -> None:
    url = await _setup(runtime, case)
    before = await helpers.count_rows(runtime)
    async with helpers.client_for(runtime) as client:
        for name, body in case.malformed.items():
            response = await client.post(url, content=body, headers=case.sign(body, PUBLIC + url))
            assert response.status_code == 400, (name, response.text)
            assert response.json()["error"]["message"], name
    assert await helpers.count_rows(runtime) == before


async def test_empty_arrays_are_fine(runtime: Runtime, case: ChannelCase) -> None:
    url = await _setup(runtime, case)
    async with helpers.client_for(runtime) as client:
        for body in case.empty:
            assert (
                await client.post(url, content=body, headers=case.sign(body, PUBLIC + url))
            ).status_code == 200
    assert await _messages(runtime) == []


async def test_huge_number_of_entries(runtime: Runtime, case: ChannelCase) -> None:
    if case.many_entries is None:
        pytest.skip(f"{case.kind} carries one message per webhook")
    url = await _setup(runtime, case)
    body = case.many_entries(600)
    assert len(body) < runtime.settings.max_webhook_bytes
    async with helpers.client_for(runtime) as client:
        response = await client.post(url, content=body, headers=case.sign(body, PUBLIC + url))
    assert response.status_code == 200, response.text
    assert len(await _messages(runtime)) == 600


async def test_recorded_payloads(runtime: Runtime, case: ChannelCase) -> None:
    url = await _setup(runtime, case)
    async with helpers.client_for(runtime) as client:
        for name in case.recorded:
            body = helpers.fixture_bytes(name)
            response = await client.post(url, content=body, headers=case.sign(body, PUBLIC + url))
            assert response.status_code == 200, (name, response.text)
    kinds = sorted(m.content_kind for m in await _messages(runtime))
    assert kinds == sorted(k.value for k in case.recorded.values())


async def test_unknown_channel_is_404(runtime: Runtime, case: ChannelCase) -> None:
    await _setup(runtime, case)
    body = case.inbound_text("pid-x", "4915100000001", "hi")
    url = f"/webhooks/{case.kind}/01nosuchchannel"
    async with helpers.client_for(runtime) as client:
        response = await client.post(url, content=body, headers=case.sign(body, PUBLIC + url))
    assert response.status_code == 404
