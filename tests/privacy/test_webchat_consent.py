"""The web chat's consent step over HTTP: the widget's notice, its acceptance, and without it."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import select

from tests.channels.test_webchat import PNG, SHOP, Chat, running_chat
from tresen.db.tables import ConsentEvent, Contact, Message
from tresen.runtime import Runtime


async def _settled(runtime: Runtime, want: int) -> list[Message]:
    """Messages once `want` of them exist and the contact's consent is no longer unknown."""
    for _ in range(200):
        async with runtime.sessions() as session:
            rows = list(await session.scalars(select(Message).order_by(Message.created_at)))
            state = await session.scalar(select(Contact.consent_state))
        if len(rows) >= want and state not in (None, "unknown"):
            return rows
        await asyncio.sleep(0.05)
    raise AssertionError(f"not settled: {len(rows)} messages, consent {state}")


async def _session(chat: Chat) -> dict[str, Any]:
    r = await chat.web.post(
        f"/chat/{chat.channel.id}/session", json={"token": None}, headers={"origin": SHOP}
    )
    assert r.status_code == 200
    return dict(r.json())


async def test_the_session_carries_the_notice_in_the_workspace_language(runtime: Runtime) -> None:
    runtime.settings = runtime.settings.with_overrides(consent_first=True)
    async with running_chat(runtime, privacy_notice="", privacy_link="") as chat:
        started = await _session(chat)
    assert started["language"] == "de" and started["colour"] == "#1d4ed8"
    assert started["privacy_notice"].startswith("Testladen verarbeitet Ihre Nachrichten")
    assert started["privacy_accept"] == "Einverstanden"
    assert started["privacy_link"] == "", "no policy in the profile: no link"


async def test_accepted_in_the_widget_means_no_question_in_the_chat(runtime: Runtime) -> None:
    runtime.settings = runtime.settings.with_overrides(consent_first=True)
    async with running_chat(runtime) as chat:
        token = (await _session(chat))["token"]
        upload = await chat.web.post(
            f"/chat/{chat.channel.id}/upload?consent=1",
            content=PNG,
            headers={
                "origin": SHOP,
                "x-tresen-visitor": token,
                "content-type": "image/png",
                "x-file-name": "rad.png",
            },
        )
        assert upload.status_code == 201, upload.text
        rows = await _settled(runtime, 1)
        resumed = await chat.web.post(
            f"/chat/{chat.channel.id}/session", json={"token": token}, headers={"origin": SHOP}
        )
        fresh = await _session(chat)
    assert [m.direction for m in rows] == ["inbound"], "no privacy question sent"
    async with runtime.sessions() as session:
        events = list(await session.scalars(select(ConsentEvent)))
    assert [(e.action, e.source) for e in events] == [("granted", "webchat widget")]
    assert resumed.json()["privacy_accepted"] is True, "consent on record: not asked again"
    assert fresh["privacy_accepted"] is False, "a new visitor accepts first"


async def test_without_the_widget_acceptance_the_chat_asks(runtime: Runtime) -> None:
    runtime.settings = runtime.settings.with_overrides(consent_first=True)
    async with running_chat(runtime) as chat:
        token = (await _session(chat))["token"]
        said = await chat.say(token, "Hallo, eine Frage")
        assert said.status_code == 201
        rows = await _settled(runtime, 2)
    assert rows[1].direction == "outbound" and "einverstanden" in (rows[1].body or "")
    async with runtime.sessions() as session:
        assert await session.scalar(select(Contact.consent_state)) == "asked"


async def test_a_malformed_consent_mark_is_refused(runtime: Runtime) -> None:
    async with running_chat(runtime) as chat:
        token = (await _session(chat))["token"]
        r = await chat.web.post(
            f"/chat/{chat.channel.id}/messages",
            json={"id": "abcdefgh1", "text": "Hallo", "consent": "ja bitte"},
            headers={"origin": SHOP, "x-tresen-visitor": token},
        )
    assert r.status_code == 400 and "consent" in r.json()["error"]["message"]
