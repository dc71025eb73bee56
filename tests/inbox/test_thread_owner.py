"""The conversation view marks a Meta thread another app owns (messages on the standby channel)."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import select

from tests import helpers
from tests.inbox.test_pages import PASSWORD, _csrf, _login
from tresen.channels.manage import add_channel, default_workspace
from tresen.db.tables import ChannelRow, Conversation
from tresen.inbox import accounts
from tresen.runtime import Runtime

PAGE = "300000000000001"
SECRET = "sim-app-secret"


@pytest.fixture
async def channel(runtime: Runtime) -> ChannelRow:
    """A Messenger page of the shop and an admin who reads the inbox."""
    async with runtime.sessions() as session, session.begin():
        ws = await default_workspace(session, "Radladen")
        row = await add_channel(
            session,
            ws.id,
            "messenger",
            "Seite",
            {
                "page_id": PAGE,
                "app_secret": SECRET,
                "verify_token": "v",
                "page_access_token": "t",
            },
        )
        await accounts.add_user(session, ws.id, "chefin@example.com", "admin", PASSWORD)
    return row


def _webhook(mid: str, *, standby: bool, at_ms: int | None = None) -> bytes:
    event = {
        "sender": {"id": "6945112233445566"},
        "recipient": {"id": PAGE},
        "timestamp": at_ms or int(time.time() * 1000),
        "message": {"mid": mid, "text": "Hallo?"},
    }
    entry = {"id": PAGE, "time": 1, ("standby" if standby else "messaging"): [event]}
    return helpers.dumps({"object": "page", "entry": [entry]})


async def test_thread_of_another_app_is_marked_until_the_customer_writes_to_us(
    runtime: Runtime, channel: ChannelRow
) -> None:
    async with helpers.client_for(runtime) as client:
        body = _webhook("m_standby_1", standby=True)
        url = f"/webhooks/messenger/{channel.id}"
        assert (
            await client.post(url, content=body, headers=helpers.wa_sign(body, SECRET))
        ).is_success
        async with runtime.sessions() as session:
            cid = await session.scalar(select(Conversation.id))
        await _login(client, "chefin@example.com")
        page = await client.get(f"/inbox/c/{cid}")
        assert page.status_code == 200
        assert "Unterhaltung liegt bei einer anderen App" in page.text
        assert ">mitgelesen<" in page.text
        # The other app passed the thread back: the customer's next message comes to us.
        body = _webhook("m_ours_1", standby=False)
        assert (
            await client.post(url, content=body, headers=helpers.wa_sign(body, SECRET))
        ).is_success
        page = await client.get(f"/inbox/c/{cid}")
    assert "Unterhaltung liegt bei einer anderen App" not in page.text
    assert page.text.count(">mitgelesen<") == 1


def _control(kind: str, at_ms: int, **detail: str) -> bytes:
    event = {
        "sender": {"id": "6945112233445566"},
        "recipient": {"id": PAGE},
        "timestamp": at_ms,
        kind: {"metadata": "von Hand übernommen", **detail},
    }
    return helpers.dumps(
        {"object": "page", "entry": [{"id": PAGE, "time": 1, "messaging": [event]}]}
    )


async def test_handover_events_say_who_owns_the_thread_and_close_the_reply_box(
    runtime: Runtime, channel: ChannelRow
) -> None:
    token = await helpers.seed_token(runtime, channel.workspace_id)
    url = f"/webhooks/messenger/{channel.id}"
    now = int(time.time() * 1000)

    async def post(body: bytes) -> None:
        answer = await client.post(url, content=body, headers=helpers.wa_sign(body, SECRET))
        assert answer.status_code == 200, answer.text

    async with helpers.client_for(runtime) as client:
        await post(_webhook("m_ours_2", standby=False))
        async with runtime.sessions() as session:
            cid = await session.scalar(select(Conversation.id))
        await _login(client, "chefin@example.com")
        page = await client.get(f"/inbox/c/{cid}")
        assert "Unterhaltung liegt bei einer anderen App" not in page.text
        assert 'name="body" rows="3"' in page.text

        # The Page inbox takes the thread: it owns it, nobody here can answer.
        await post(_control("take_thread_control", now + 1000, new_owner_app_id="263902037430900"))
        page = await client.get(f"/inbox/c/{cid}")
        assert "Unterhaltung liegt bei einer anderen App (das Postfach der Seite" in page.text
        assert "Sie können hier nicht antworten, solange eine andere App" in page.text
        reply_box = page.text.split('id="reply-body"', 1)[1].split(">", 1)[0]
        assert "disabled" in reply_box
        csrf = _csrf(page.text)
        sent = await client.post(
            f"/inbox/c/{cid}/reply", data={"body": "Hallo", "_csrf_token": csrf}
        )
        assert sent.status_code == 422
        api = await client.post(
            f"/api/v1/conversations/{cid}/messages",
            json={"kind": "text", "body": "Hallo"},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert api.status_code == 422 and api.json()["error"]["code"] == "thread_elsewhere"

        # The customer writes meanwhile: read along, and the named owner stays.
        await post(_webhook("m_standby_2", standby=True, at_ms=now + 1500))
        async with runtime.sessions() as session:
            conversation = await session.get_one(Conversation, cid)
        assert conversation.thread_owner == "263902037430900"

        # A late pass from before the take changes nothing; a newer pass gives it back.
        await post(_control("pass_thread_control", now + 500, new_owner_app_id="1"))
        async with runtime.sessions() as session:
            conversation = await session.get_one(Conversation, cid)
        assert conversation.thread_owner == "263902037430900"
        await post(_control("pass_thread_control", now + 2000, new_owner_app_id="1"))
        page = await client.get(f"/inbox/c/{cid}")
        assert "Unterhaltung liegt bei einer anderen App" not in page.text
        sent = await client.post(
            f"/inbox/c/{cid}/reply", data={"body": "Wieder da", "_csrf_token": _csrf(page.text)}
        )
        assert sent.status_code in (200, 303)
