"""The inbox over HTTP: login with CSRF, security headers, escaping, replies and notes, the permission matrix."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, update

from tests import helpers
from tresen.db.tables import (
    CannedReply,
    ChannelRow,
    Contact,
    Conversation,
    ConversationLabel,
    Label,
    Message,
    Note,
    Team,
    TeamMember,
)
from tresen.db.types import utcnow
from tresen.domain.ids import new_id
from tresen.events import CONVERSATION_UPDATED, TYPING
from tresen.handlers import events as dispatch
from tresen.handlers.worker import Worker
from tresen.inbox import accounts
from tresen.runtime import Runtime

PASSWORD = "richtig-langes-passwort"
XSS = (
    '<script>alert(1)</script><img src=x onerror=alert(2)> <a href="javascript:alert(3)">klick</a>'
)


def _csrf(html: str) -> str:
    found = re.search(r'name="_csrf_token" value="([^"]+)"', html)
    assert found, "the form carries a CSRF token"
    return found.group(1)


async def _login(client: httpx.AsyncClient, email: str, password: str = PASSWORD) -> httpx.Response:
    page = await client.get("/inbox/login")
    return await client.post(
        "/inbox/login", data={"email": email, "password": password, "_csrf_token": _csrf(page.text)}
    )


@pytest.fixture
async def channel(runtime: Runtime) -> ChannelRow:
    """The shop's WhatsApp channel (and so its workspace)."""
    _, row = await helpers.seed_whatsapp(runtime)
    return row


async def _seed(
    runtime: Runtime,
    channel: ChannelRow,
    client: httpx.AsyncClient,
    text: str = "Hallo",
    sender: str = "4915100000001",
) -> str:
    body = helpers.dumps(
        helpers.wa_envelope(
            messages=[helpers.wa_text(new_id(), sender, text)],
            contacts=[{"profile": {"name": "Jana <b>Müller</b>"}, "wa_id": sender}],
        )
    )
    assert (
        await client.post(
            f"/webhooks/whatsapp/{channel.id}", content=body, headers=helpers.wa_sign(body)
        )
    ).status_code == 200
    async with runtime.sessions() as session:
        return str(
            await session.scalar(
                select(Conversation.id).order_by(Conversation.created_at.desc()).limit(1)
            )
        )


async def _user(
    runtime: Runtime, channel: ChannelRow, email: str, role: str, language: str = "de"
) -> str:
    async with runtime.sessions() as session, session.begin():
        user = await accounts.add_user(
            session, channel.workspace_id, email, role, PASSWORD, language=language
        )
    return user.id


async def test_login_flow_cookies_and_headers(runtime: Runtime, channel: ChannelRow) -> None:
    await _user(runtime, channel, "admin@laden.example", "admin")
    async with helpers.client_for(runtime) as client:
        first = await client.get("/inbox")
        assert first.status_code == 303 and first.headers["location"] == "/inbox/login"
        no_csrf = await client.post(
            "/inbox/login", data={"email": "admin@laden.example", "password": PASSWORD}
        )
        assert no_csrf.status_code == 403
        wrong = await _login(client, "admin@laden.example", "falsch-falsch-falsch")
        assert wrong.status_code == 401 and "Passwort ist falsch" in wrong.text
        ok = await _login(client, "admin@laden.example")
        assert ok.status_code == 303 and ok.headers["location"] == "/inbox"
        cookie = ok.headers["set-cookie"]
        assert "tresen_session=" in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie
        page = await client.get("/inbox")
        assert page.status_code == 200 and "Abmelden" in page.text
        csp = page.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
        assert (
            page.headers["x-content-type-options"] == "nosniff"
            and page.headers["x-frame-options"] == "DENY"
        )
        out = await client.post("/inbox/logout", data={"_csrf_token": _csrf(page.text)})
        assert out.status_code == 303
        assert (await client.get("/inbox")).status_code == 303


async def test_customer_text_is_shown_inert(runtime: Runtime, channel: ChannelRow) -> None:
    await _user(runtime, channel, "admin@laden.example", "admin")
    async with helpers.client_for(runtime) as client:
        conv = await _seed(runtime, channel, client, XSS)
        await _login(client, "admin@laden.example")
        page = (await client.get(f"/inbox/c/{conv}")).text
    assert (
        "<script>alert(1)" not in page
        and "<img src=x" not in page
        and 'href="javascript:' not in page
    )
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "Jana &lt;b&gt;Müller&lt;/b&gt;" in page


async def test_reply_queues_a_message_and_a_note_never_becomes_one(
    runtime: Runtime, channel: ChannelRow
) -> None:
    await _user(runtime, channel, "kim@laden.example", "agent", language="en")
    async with helpers.client_for(runtime) as client:
        conv = await _seed(runtime, channel, client)
        await _login(client, "kim@laden.example")
        page = await client.get(f"/inbox/c/{conv}")
        assert "Sign out" in page.text, "the user's language is English"
        token = _csrf(page.text)
        assert (
            await client.post(f"/inbox/c/{conv}/take", data={"_csrf_token": token})
        ).status_code == 303
        sent = await client.post(
            f"/inbox/c/{conv}/reply", data={"body": "Ist da!", "_csrf_token": token}
        )
        assert sent.status_code == 303
        note = await client.post(
            f"/inbox/c/{conv}/note", data={"body": "Kundin ist Stammkundin", "_csrf_token": token}
        )
        assert note.status_code == 303
        stale = await client.post(f"/inbox/c/{conv}/reply", data={"body": "ohne Token"})
        assert stale.status_code == 403
    async with runtime.sessions() as session:
        outbound = list(
            await session.scalars(select(Message).where(Message.direction == "outbound"))
        )
        notes = list(await session.scalars(select(Note)))
    assert [(m.body, m.sender_kind) for m in outbound] == [("Ist da!", "agent")]
    assert [n.body for n in notes] == ["Kundin ist Stammkundin"]


async def test_canned_reply_with_variables(runtime: Runtime, channel: ChannelRow) -> None:

    await _user(runtime, channel, "kim@laden.example", "agent")
    async with helpers.client_for(runtime) as client:
        conv = await _seed(runtime, channel, client)
        async with runtime.sessions() as session, session.begin():
            session.add(
                CannedReply(
                    id=new_id(),
                    workspace_id=channel.workspace_id,
                    shortcut="gruss",
                    title="Gruß",
                    body="Hallo {first_name}, hier ist {agent_name} von {business}!",
                    created_at=utcnow(),
                )
            )
        await _login(client, "kim@laden.example")
        token = _csrf((await client.get(f"/inbox/c/{conv}")).text)
        await client.post(f"/inbox/c/{conv}/reply", data={"body": "/gruss", "_csrf_token": token})
    async with runtime.sessions() as session:
        body = await session.scalar(select(Message.body).where(Message.direction == "outbound"))
    assert body == "Hallo Jana, hier ist kim von Testladen!"


ROLES = ["admin", "supervisor", "agent"]
# (situation, action) -> roles allowed. Situations: the conversation is unassigned in my team,
# unassigned in another team, or assigned to someone else in my team.
MATRIX: dict[tuple[str, str], set[str]] = {
    ("mine_team", "view"): {"admin", "supervisor", "agent"},
    ("mine_team", "reply"): {"admin", "supervisor", "agent"},
    ("mine_team", "note"): {"admin", "supervisor", "agent"},
    ("mine_team", "take"): {"admin", "supervisor", "agent"},
    ("mine_team", "status"): {"admin", "supervisor", "agent"},
    ("mine_team", "typing"): {"admin", "supervisor", "agent"},
    ("other_team", "view"): {"admin"},
    ("other_team", "reply"): {"admin"},
    ("other_team", "note"): {"admin"},
    ("other_team", "take"): {"admin"},
    ("other_team", "status"): {"admin"},
    ("other_team", "typing"): {"admin"},
    ("someone_elses", "view"): {"admin", "supervisor"},
    ("someone_elses", "reply"): {"admin", "supervisor"},
    ("someone_elses", "note"): {"admin", "supervisor"},
    ("someone_elses", "take"): {"admin", "supervisor"},
    ("someone_elses", "status"): {"admin", "supervisor"},
    ("someone_elses", "typing"): {"admin", "supervisor"},
}
# Contact and label actions on a conversation follow the same rule as viewing and replying.
for _situation in ("mine_team", "other_team", "someone_elses"):
    MATRIX[(_situation, "all-channels")] = MATRIX[(_situation, "view")]
    for _action in ("label", "unlabel", "attributes"):
        MATRIX[(_situation, _action)] = MATRIX[(_situation, "reply")]


async def _count(runtime: Runtime) -> tuple[int, int, Any, int, Any]:

    async with runtime.sessions() as session:
        messages = await session.scalar(select(func.count()).select_from(Message))
        notes = await session.scalar(select(func.count()).select_from(Note))
        convs = tuple(
            (
                await session.execute(
                    select(Conversation.assignee_id, Conversation.status).order_by(Conversation.id)
                )
            ).all()
        )
        labelled = await session.scalar(select(func.count()).select_from(ConversationLabel))
        attributes = tuple(await session.scalars(select(Contact.attributes).order_by(Contact.id)))
    return messages or 0, notes or 0, convs, labelled or 0, attributes


@pytest.mark.parametrize("role", ROLES)
async def test_permission_matrix(runtime: Runtime, channel: ChannelRow, role: str) -> None:
    me = await _user(runtime, channel, f"{role}@laden.example", role)
    colleague = await _user(runtime, channel, "kollege@laden.example", "agent")
    ws = channel.workspace_id
    async with runtime.sessions() as session, session.begin():
        label = Label(id=new_id(), workspace_id=ws, name="VIP", colour="red", created_at=utcnow())
        mine, other = (
            Team(id=new_id(), workspace_id=ws, name="Werkstatt"),
            Team(id=new_id(), workspace_id=ws, name="Verkauf"),
        )
        session.add(label)
        session.add_all([mine, other])
        await session.flush()
        session.add_all(
            [
                TeamMember(team_id=mine.id, user_id=me),
                TeamMember(team_id=mine.id, user_id=colleague),
            ]
        )
    async with helpers.client_for(runtime) as client:
        convs = {
            "mine_team": await _seed(runtime, channel, client, sender="4915100000011"),
            "other_team": await _seed(runtime, channel, client, sender="4915100000012"),
            "someone_elses": await _seed(runtime, channel, client, sender="4915100000013"),
        }
        async with runtime.sessions() as session, session.begin():
            await session.execute(
                update(Conversation)
                .where(Conversation.id == convs["mine_team"])
                .values(team_id=mine.id)
            )
            await session.execute(
                update(Conversation)
                .where(Conversation.id == convs["other_team"])
                .values(team_id=other.id)
            )
            await session.execute(
                update(Conversation)
                .where(Conversation.id == convs["someone_elses"])
                .values(team_id=mine.id, assignee_id=colleague)
            )
        await _login(client, f"{role}@laden.example")
        token = _csrf((await client.get("/inbox")).text)
        listed = (await client.get("/inbox?view=all")).text
        for (situation, action), allowed in MATRIX.items():
            conv = convs[situation]
            before = await _count(runtime)
            if action == "view":
                response = await client.get(f"/inbox/c/{conv}")
            elif action == "all-channels":
                response = await client.get(f"/inbox/c/{conv}/all-channels")
            else:
                data = {
                    "_csrf_token": token,
                    "body": "Test",
                    "status": "pending",
                    "label_id": label.id,
                    "key": "Kundennr",
                    "value": f"{role}-{situation}",
                }
                response = await client.post(f"/inbox/c/{conv}/{action}", data=data)
            expected = role in allowed
            assert (response.status_code < 400) == expected, (
                role,
                situation,
                action,
                response.status_code,
            )
            if not expected:
                assert response.status_code == 403
                assert await _count(runtime) == before, f"a refused {action} changed something"
            if action == "view":
                assert (f"/inbox/c/{conv}" in listed) == expected, ("list", role, situation)


async def test_search_finds_only_what_the_agent_may_see(
    runtime: Runtime, channel: ChannelRow
) -> None:
    me = await _user(runtime, channel, "kim@laden.example", "agent")
    other = await _user(runtime, channel, "lea@laden.example", "agent")
    async with helpers.client_for(runtime) as client:
        open_conv = await _seed(
            runtime, channel, client, "Ist die Größe 42 noch da?", sender="4915100000021"
        )
        hidden = await _seed(
            runtime, channel, client, "Größe 43 bitte reservieren", sender="4915100000022"
        )
        async with runtime.sessions() as session, session.begin():
            await session.execute(
                update(Conversation).where(Conversation.id == hidden).values(assignee_id=other)
            )
        await _login(client, "kim@laden.example")
        found = await client.get("/inbox/search", params={"q": "grösse"})
        too_long = await client.get("/inbox/search", params={"q": "x" * 300})
    assert found.status_code == 200
    assert f"/inbox/c/{open_conv}" in found.text and f"/inbox/c/{hidden}" not in found.text
    assert too_long.status_code == 200 and "200" in too_long.text
    assert me


async def test_admin_resets_a_password_agents_may_not(
    runtime: Runtime, channel: ChannelRow
) -> None:
    await _user(runtime, channel, "chefin@laden.example", "admin")
    agent = await _user(runtime, channel, "kim@laden.example", "agent")
    async with helpers.client_for(runtime) as client:
        await _login(client, "kim@laden.example")
        token = _csrf((await client.get("/inbox")).text)
        assert (await client.get("/inbox/admin/users")).status_code == 403
        assert (
            await client.post(f"/inbox/admin/users/{agent}/reset", data={"_csrf_token": token})
        ).status_code == 403
    async with helpers.client_for(runtime) as client:
        await _login(client, "chefin@laden.example")
        page = await client.get("/inbox/admin/users")
        assert page.status_code == 200 and "kim@laden.example" in page.text
        reset = await client.post(
            f"/inbox/admin/users/{agent}/reset", data={"_csrf_token": _csrf(page.text)}
        )
        new_password = re.search(r"<code>([^<]+)</code>", reset.text).group(1)  # type: ignore[union-attr]
    async with helpers.client_for(runtime) as client:
        assert (await _login(client, "kim@laden.example")).status_code == 401, (
            "the old password is gone"
        )
        assert (await _login(client, "kim@laden.example", new_password)).status_code == 303


async def test_sms_reply_shows_encoding_and_parts(runtime: Runtime, channel: ChannelRow) -> None:
    await _user(runtime, channel, "kim@laden.example", "agent")
    async with helpers.client_for(runtime) as client:
        conv = await _seed(runtime, channel, client)
        await _login(client, "kim@laden.example")
        token = _csrf((await client.get(f"/inbox/c/{conv}")).text)
        gsm = await client.post(
            f"/inbox/c/{conv}/segments", data={"body": "Grüße aus Köln " * 12, "_csrf_token": token}
        )
        emoji = await client.post(
            f"/inbox/c/{conv}/segments", data={"body": "Danke 🚲", "_csrf_token": token}
        )
    assert gsm.text == "2 Teile · GSM-7 · 180"
    assert emoji.text == "1 Teil · UCS-2 · 7"


async def test_typing_reaches_the_bus_but_not_the_inbox_stream(
    runtime: Runtime, channel: ChannelRow
) -> None:
    """An agent typing publishes a typing hint for the widget; the inbox lists ignore it."""

    await _user(runtime, channel, "kim@laden.example", "agent")
    async with helpers.client_for(runtime) as client:
        conv = await _seed(runtime, channel, client)
        await _login(client, "kim@laden.example")
        token = _csrf((await client.get(f"/inbox/c/{conv}")).text)
        async with runtime.events.subscribe(channel.workspace_id) as received:
            answer = await client.post(
                f"/inbox/c/{conv}/typing", data={"typing": "1", "_csrf_token": token}
            )
            assert answer.status_code == 204
            event = await received.get()
        assert (event.kind, event.conversation_id, event.data) == (TYPING, conv, {"typing": True})
        refused = await client.post(f"/inbox/c/{conv}/typing", data={"typing": "1"})
        assert refused.status_code == 403, "no CSRF token, no typing hint"


async def test_taking_and_resolving_reach_other_inboxes_through_the_event_consumer(
    runtime: Runtime, channel: ChannelRow
) -> None:
    """Take and resolve write their events; the `live` consumer, not the request, tells inboxes."""
    await _user(runtime, channel, "kim@laden.example", "agent")
    worker = Worker(runtime, dict(dispatch.HANDLERS), pollers=[dispatch.dispatch_poller])
    async with helpers.client_for(runtime) as client:
        conv = await _seed(runtime, channel, client)
        await _login(client, "kim@laden.example")
        token = _csrf((await client.get(f"/inbox/c/{conv}")).text)
        async with runtime.events.subscribe(channel.workspace_id) as received:
            take = await client.post(f"/inbox/c/{conv}/take", data={"_csrf_token": token})
            resolve = await client.post(
                f"/inbox/c/{conv}/status", data={"status": "resolved", "_csrf_token": token}
            )
            assert (take.status_code, resolve.status_code) == (303, 303)
            task = asyncio.create_task(worker.run())
            try:
                hints: list[dict[str, object]] = []
                wanted = {"conversation.assigned", "conversation.status_changed"}
                while {str(h.get("event")) for h in hints} < wanted:
                    event = await asyncio.wait_for(received.get(), 10)
                    if event.kind == CONVERSATION_UPDATED and event.conversation_id == conv:
                        hints.append(event.data)
            finally:
                worker.stop()
                await asyncio.wait_for(task, 10)
    assert sorted(str(h["event"]) for h in hints) == sorted(wanted), "each change told once"
