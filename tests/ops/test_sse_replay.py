"""A live inbox page that reconnects with Last-Event-ID gets the conversations it missed."""

from __future__ import annotations

import asyncio
import re

import httpx
from sqlalchemy import select

from tests import helpers
from tresen.db.tables import ContactIdentity, Conversation
from tresen.inbox import accounts, missed
from tresen.runtime import Runtime

PASSWORD = "richtig-langes-passwort"


async def _write(client: httpx.AsyncClient, channel_id: str, sender: str, wamid: str) -> None:
    body = helpers.dumps(helpers.wa_envelope(messages=[helpers.wa_text(wamid, sender, "Hallo")]))
    response = await client.post(
        f"/webhooks/whatsapp/{channel_id}", content=body, headers=helpers.wa_sign(body)
    )
    assert response.status_code == 200


async def test_reconnect_with_last_event_id_replays_missed_conversations(
    runtime: Runtime,
) -> None:
    ws, channel = await helpers.seed_whatsapp(runtime)
    async with runtime.sessions() as session, session.begin():
        await accounts.add_user(session, ws, "chef@laden.example", "admin", PASSWORD)
    async with helpers.client_for(runtime) as client:
        stopped = asyncio.Event()
        stopped.set()  # the stream ends after what it replays (as at a server's SIGTERM)
        client._transport.app.state.stopping = stopped  # type: ignore[attr-defined]
        page = await client.get("/inbox/login")
        token = re.search(r'name="_csrf_token" value="([^"]+)"', page.text)
        assert token
        await client.post(
            "/inbox/login",
            data={
                "email": "chef@laden.example",
                "password": PASSWORD,
                "_csrf_token": token.group(1),
            },
        )
        await _write(client, channel.id, "4915100000001", "wamid.seen")
        await asyncio.sleep(2.5)  # beyond the replay's margin
        last_seen = missed.stamp()
        await _write(client, channel.id, "4915100000002", "wamid.missed")
        fresh = await client.get("/inbox/events")
        again = await client.get("/inbox/events", headers={"Last-Event-ID": last_seen})
    assert fresh.status_code == 200 and "event: ready" in fresh.text
    assert "replay" not in fresh.text
    replayed = re.findall(r"event: conv-(\w+)\r?\ndata: replay", again.text)
    assert len(replayed) == 1, again.text
    async with runtime.sessions() as session:
        missed_id = await session.scalar(
            select(Conversation.id)
            .join(ContactIdentity, ContactIdentity.id == Conversation.identity_id)
            .where(ContactIdentity.address == "4915100000002")
        )
    assert replayed == [missed_id]
    assert missed.parse_stamp("not-a-stamp") is None


async def test_a_page_first_connecting_late_gets_what_changed_since_it_was_rendered(
    runtime: Runtime,
) -> None:
    """The flake of the first-run journey: a message stored between the page's render and its
    live connection must still reach the list."""
    ws, channel = await helpers.seed_whatsapp(runtime)
    async with runtime.sessions() as session, session.begin():
        await accounts.add_user(session, ws, "kim@laden.example", "agent", PASSWORD)
    async with helpers.client_for(runtime) as client:
        stopped = asyncio.Event()
        stopped.set()
        client._transport.app.state.stopping = stopped  # type: ignore[attr-defined]
        page = await client.get("/inbox/login")
        token = re.search(r'name="_csrf_token" value="([^"]+)"', page.text)
        assert token
        await client.post(
            "/inbox/login",
            data={"email": "kim@laden.example", "password": PASSWORD, "_csrf_token": token[1]},
        )
        inbox = await client.get("/inbox")
        connect = re.search(r'sse-connect="([^"]+)"', inbox.text)
        assert connect, inbox.text
        await _write(client, channel.id, "4915100000003", "wamid.between")
        live = await client.get(connect[1].replace("&amp;", "&"))
    replayed = re.findall(r"event: conv-(\w+)\r?\ndata: replay", live.text)
    assert len(replayed) == 1, live.text
