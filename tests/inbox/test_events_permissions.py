"""Live inbox events follow the list's permission rule: no other team's ids or activity."""

from __future__ import annotations

import asyncio

import httpx
from sqlalchemy import update

from tests import helpers
from tests.inbox.test_pages import PASSWORD, _csrf, _user
from tests.web.test_api import _inbound
from tresen.app import create_app
from tresen.db.tables import Conversation, Team, TeamMember
from tresen.domain.ids import new_id
from tresen.events import MESSAGE_NEW, Event
from tresen.runtime import Runtime
from tresen.sim.server import serve_asgi


async def _conversation_of(
    client: httpx.AsyncClient, runtime: Runtime, channel_id: str, sender: str
) -> str:
    await _inbound(client, channel_id, sender=sender)
    async with runtime.sessions() as session:
        rows = await session.execute(
            Conversation.__table__.select().order_by(Conversation.created_at.desc()).limit(1)
        )
        return str(rows.first().id)  # type: ignore[union-attr]


async def test_an_agent_gets_no_events_of_another_teams_conversation(runtime: Runtime) -> None:
    ws, channel = await helpers.seed_whatsapp(runtime)
    agent = await _user(runtime, channel, "kim@laden.example", "agent")
    mine_team, other_team = new_id(), new_id()
    async with runtime.sessions() as session, session.begin():
        session.add_all(
            [
                Team(id=mine_team, workspace_id=ws, name="Werkstatt"),
                Team(id=other_team, workspace_id=ws, name="Verkauf"),
            ]
        )
        await session.flush()
        session.add(TeamMember(team_id=mine_team, user_id=agent))
    app = create_app(runtime.settings, runtime=runtime, embedded_worker=False, migrate=False)
    async with serve_asgi(app) as base, httpx.AsyncClient(base_url=base, timeout=5) as client:
        mine = await _conversation_of(client, runtime, channel.id, "4915100000001")
        other = await _conversation_of(client, runtime, channel.id, "4915100000002")
        async with runtime.sessions() as session, session.begin():
            await session.execute(
                update(Conversation).where(Conversation.id == mine).values(team_id=mine_team)
            )
            await session.execute(
                update(Conversation).where(Conversation.id == other).values(team_id=other_team)
            )
        page = await client.get("/inbox/login")
        login = await client.post(
            "/inbox/login",
            data={
                "email": "kim@laden.example",
                "password": PASSWORD,
                "_csrf_token": _csrf(page.text),
            },
        )
        assert login.status_code == 303
        async with client.stream("GET", "/inbox/events") as stream:
            lines = stream.aiter_lines()

            async def next_event() -> tuple[str, str]:
                name = data = ""
                async for line in lines:
                    if line.startswith("event:"):
                        name = line.split(":", 1)[1].strip()
                    elif line.startswith("data:"):
                        data = line.split(":", 1)[1].strip()
                    elif not line and name:
                        return name, data
                raise AssertionError("the event stream ended")

            assert (await asyncio.wait_for(next_event(), 5))[0] == "ready"
            await asyncio.sleep(0.2)
            for conversation_id in (other, other, mine):
                await runtime.events.publish(Event(ws, MESSAGE_NEW, conversation_id, {}))
            name, data = await asyncio.wait_for(next_event(), 5)
            assert (name, data) == ("conversation", mine), "the other team's events were left out"
