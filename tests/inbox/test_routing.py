"""Routing: channel → team rules, round-robin and least-busy, limits, availability, the queue."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import datetime, timedelta

import pytest
from sqlalchemy import func, select, update

from tests import helpers
from tests.inbox.test_pages import _csrf, _login
from tresen.db.tables import (
    ChannelRow,
    Contact,
    ContactIdentity,
    Conversation,
    Job,
    User,
)
from tresen.db.types import utcnow
from tresen.domain.ids import new_id
from tresen.handlers.process import PROCESS_JOB, process_job
from tresen.inbox import accounts, routing, service
from tresen.inbox.permissions import actor_for
from tresen.jobs import queue as jobs
from tresen.runtime import Runtime

PASSWORD = "richtig-langes-passwort"


@pytest.fixture
async def channel(runtime: Runtime) -> ChannelRow:
    """The shop's WhatsApp channel (and so its workspace)."""
    _, row = await helpers.seed_whatsapp(runtime)
    return row


async def _team(
    runtime: Runtime,
    channel: ChannelRow,
    mode: str,
    agents: int = 3,
    *,
    limits: list[int | None] | None = None,
    availability: list[str] | None = None,
) -> tuple[str, list[str]]:
    """A team with `agents` members (ids in sorting order) that gets the channel by `mode`."""
    async with runtime.sessions() as session, session.begin():
        team = await routing.add_team(session, channel.workspace_id, "Verkauf")
        ids = []
        for i in range(agents):
            user = await accounts.add_user(
                session, channel.workspace_id, f"agent{i}@laden.example", "agent", PASSWORD
            )
            ids.append(user.id)
            await routing.add_member(session, team.id, user.id)
            await routing.set_limit(session, user.id, (limits or [None] * agents)[i])
            state = (availability or ["available"] * agents)[i]
            await session.execute(update(User).where(User.id == user.id).values(availability=state))
        await routing.set_rule(session, channel.workspace_id, channel.id, team.id, mode)
    return team.id, sorted(ids)


async def _conversations(runtime: Runtime, channel: ChannelRow, n: int) -> list[str]:
    """`n` unassigned open conversations on the channel."""
    ids = []
    async with runtime.sessions() as session, session.begin():
        for i in range(n):
            contact = Contact(id=new_id(), workspace_id=channel.workspace_id, display_name=f"K{i}")
            identity = ContactIdentity(
                id=new_id(),
                workspace_id=channel.workspace_id,
                contact_id=contact.id,
                channel_id=channel.id,
                address=f"49151{new_id()[-8:]}",
            )
            conv = Conversation(
                id=new_id(),
                workspace_id=channel.workspace_id,
                channel_id=channel.id,
                contact_id=contact.id,
                identity_id=identity.id,
                status="open",
            )
            session.add(contact)
            await session.flush()
            session.add(identity)
            await session.flush()
            session.add(conv)
            await session.flush()
            ids.append(conv.id)
    return ids


async def _route(runtime: Runtime, cid: str, now: datetime | None = None) -> str | None:
    async with runtime.sessions() as session, session.begin():
        return await routing.route_conversation(session, cid, now=now)


async def _assignees(runtime: Runtime, ids: list[str]) -> dict[str, str | None]:
    async with runtime.sessions() as session:
        rows = await session.execute(
            select(Conversation.id, Conversation.assignee_id).where(Conversation.id.in_(ids))
        )
        return {cid: who for cid, who in rows.all()}


async def _availability(runtime: Runtime, user_id: str, new: str) -> list[str]:
    async with runtime.sessions() as session, session.begin():
        user = await session.get_one(User, user_id)
        return await routing.on_availability_change(session, user, new)


async def test_round_robin_takes_turns(runtime: Runtime, channel: ChannelRow) -> None:
    team_id, agents = await _team(runtime, channel, "round_robin")
    convs = await _conversations(runtime, channel, 7)
    picked = [await _route(runtime, cid) for cid in convs]
    assert picked == [agents[0], agents[1], agents[2]] * 2 + [agents[0]]
    assigned = await _assignees(runtime, convs)
    assert [assigned[c] for c in convs] == picked
    async with runtime.sessions() as session:
        teams = await session.scalars(
            select(Conversation.team_id).where(Conversation.id.in_(convs))
        )
        assert set(teams) == {team_id}, "the rule's team is set on the conversation"


async def test_least_busy_picks_the_agent_with_fewest_open(
    runtime: Runtime, channel: ChannelRow
) -> None:
    _, agents = await _team(runtime, channel, "least_busy")
    busy = await _conversations(runtime, channel, 4)
    async with runtime.sessions() as session, session.begin():
        for cid, who in zip(busy, [agents[0], agents[0], agents[0], agents[2]], strict=True):
            await session.execute(
                update(Conversation).where(Conversation.id == cid).values(assignee_id=who)
            )
        # A resolved conversation does not count against an agent.
        await session.execute(
            update(Conversation).where(Conversation.id == busy[3]).values(status="resolved")
        )
    convs = await _conversations(runtime, channel, 5)
    picked = [await _route(runtime, cid) for cid in convs]
    # loads 3/0/0 → agents 1 and 2 first until they catch up, then turns in id order
    assert picked[:4] == [agents[1], agents[2], agents[1], agents[2]]
    loads = Counter(picked)
    assert loads[agents[0]] == 0 and loads[agents[1]] + loads[agents[2]] == 5


async def test_the_limit_holds_and_the_rest_waits(runtime: Runtime, channel: ChannelRow) -> None:
    _, agents = await _team(runtime, channel, "round_robin", 2, limits=[1, 2])
    convs = await _conversations(runtime, channel, 5)
    start = utcnow() - timedelta(minutes=10)
    picked = [
        await _route(runtime, cid, now=start + timedelta(minutes=i)) for i, cid in enumerate(convs)
    ]
    assert Counter(picked) == {agents[0]: 1, agents[1]: 2, None: 2}
    async with runtime.sessions() as session:
        waiting = await routing.queue(session, channel.workspace_id)
    assert [w.conversation_id for w in waiting] == [
        c for c, p in zip(convs, picked, strict=True) if p is None
    ]
    assert waiting[0].wait > waiting[1].wait > timedelta(minutes=5)
    assert waiting[0].team_name == "Verkauf" and waiting[0].channel_kind == "whatsapp"


async def test_away_and_offline_agents_get_nothing(runtime: Runtime, channel: ChannelRow) -> None:
    _, agents = await _team(
        runtime, channel, "least_busy", availability=["away", "offline", "available"]
    )
    convs = await _conversations(runtime, channel, 3)
    assert [await _route(runtime, cid) for cid in convs] == [agents[2]] * 3
    await _availability(runtime, agents[2], "away")
    later = await _conversations(runtime, channel, 1)
    assert await _route(runtime, later[0]) is None, "nobody available: it waits"
    assigned = await _assignees(runtime, convs)
    assert set(assigned.values()) == {agents[2]}, "away keeps what one has"


async def test_manual_mode_and_no_rule_assign_nobody(runtime: Runtime, channel: ChannelRow) -> None:
    convs = await _conversations(runtime, channel, 2)
    assert await _route(runtime, convs[0]) is None
    async with runtime.sessions() as session:
        conv = await session.get_one(Conversation, convs[0])
        assert conv.team_id is None and conv.queued_at is None, "no rule: nothing happens"
    team_id, _ = await _team(runtime, channel, "manual")
    assert await _route(runtime, convs[1]) is None
    async with runtime.sessions() as session:
        conv = await session.get_one(Conversation, convs[1])
        assert conv.team_id == team_id and conv.assignee_id is None and conv.queued_at
        assert [w.conversation_id for w in await routing.queue(session, channel.workspace_id)] == [
            convs[1]
        ]


async def test_offline_returns_conversations_to_the_queue(
    runtime: Runtime, channel: ChannelRow
) -> None:
    _, agents = await _team(
        runtime, channel, "round_robin", 2, availability=["available", "offline"]
    )
    convs = await _conversations(runtime, channel, 3)
    for cid in convs:
        assert await _route(runtime, cid) == agents[0]
    async with runtime.sessions() as session, session.begin():
        await session.execute(
            update(Conversation).where(Conversation.id == convs[2]).values(status="resolved")
        )
    await _availability(runtime, agents[1], "available")
    returned = await _availability(runtime, agents[0], "offline")
    assert sorted(returned) == sorted(convs[:2]), "open ones return, resolved ones stay"
    assigned = await _assignees(runtime, convs)
    assert assigned[convs[0]] is None and assigned[convs[1]] is None
    assert assigned[convs[2]] == agents[0]
    async with runtime.sessions() as session:
        assert {
            w.conversation_id for w in await routing.queue(session, channel.workspace_id)
        } == set(convs[:2])
    # The routing jobs queued with the change give them to the agent still available.
    claimed = await jobs.claim(runtime.engine, "w1", 10, timedelta(seconds=5), [routing.ROUTE_JOB])
    assert len(claimed) == 2
    for job in claimed:
        await routing.route_job(runtime, job, "w1")
    assigned = await _assignees(runtime, convs)
    assert assigned[convs[0]] == agents[1] and assigned[convs[1]] == agents[1]
    async with runtime.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Job)) == 0


async def test_becoming_available_takes_the_longest_waiting_first(
    runtime: Runtime, channel: ChannelRow
) -> None:
    _, agents = await _team(
        runtime, channel, "round_robin", 2, limits=[2, None], availability=["offline", "away"]
    )
    convs = await _conversations(runtime, channel, 4)
    start = utcnow() - timedelta(hours=1)
    # queued in the order 2, 0, 3, 1
    for minute, cid in zip([10, 30, 0, 20], convs, strict=True):
        assert await _route(runtime, cid, now=start + timedelta(minutes=minute)) is None
    taken = await _availability(runtime, agents[0], "available")
    assert taken == [convs[2], convs[0]], "longest waiting first, up to the limit of 2"
    async with runtime.sessions() as session:
        waiting = await routing.queue(session, channel.workspace_id)
    assert [w.conversation_id for w in waiting] == [convs[3], convs[1]]
    assert await _availability(runtime, agents[0], "available") == [], "full: nothing more"


async def test_a_new_message_is_routed_by_the_process_job(
    runtime: Runtime, channel: ChannelRow
) -> None:
    _, agents = await _team(runtime, channel, "round_robin", 1)
    async with helpers.client_for(runtime) as client:
        body = helpers.dumps(
            helpers.wa_envelope(messages=[helpers.wa_text(new_id(), "4915100000001", "Hallo")])
        )
        response = await client.post(
            f"/webhooks/whatsapp/{channel.id}", content=body, headers=helpers.wa_sign(body)
        )
        assert response.status_code == 200
    await helpers.hand_on_events(runtime)
    claimed = await jobs.claim(runtime.engine, "w1", 10, timedelta(seconds=5), [PROCESS_JOB])
    assert len(claimed) == 1
    async with runtime.events.subscribe(channel.workspace_id) as received:
        await process_job(runtime, claimed[0], "w1")
        event = await asyncio.wait_for(anext(aiter(received)), 2)
    async with runtime.sessions() as session:
        conv = await session.scalar(select(Conversation))
    assert conv is not None and conv.assignee_id == agents[0] and conv.queued_at is None
    assert event.conversation_id == conv.id and event.kind == "conversation.updated"


async def test_an_offline_agent_who_takes_a_conversation_keeps_it(
    runtime: Runtime, channel: ChannelRow
) -> None:
    """Taking makes an offline agent away: the customer's next message leaves it with them."""
    _, [agent] = await _team(runtime, channel, "manual", 1, availability=["offline"])
    async with helpers.client_for(runtime) as client:
        for text in ("Habt ihr das Rad?", "Und in Blau?"):
            body = helpers.dumps(
                helpers.wa_envelope(messages=[helpers.wa_text(new_id(), "4915100000001", text)])
            )
            await client.post(
                f"/webhooks/whatsapp/{channel.id}", content=body, headers=helpers.wa_sign(body)
            )
            await helpers.hand_on_events(runtime)
            claimed = await jobs.claim(
                runtime.engine, "w1", 10, timedelta(seconds=5), [PROCESS_JOB]
            )
            await process_job(runtime, claimed[0], "w1")
            if text == "Habt ihr das Rad?":
                async with runtime.sessions() as session, session.begin():
                    cid = await session.scalar(select(Conversation.id))
                    user = await session.get_one(User, agent)
                    await service.take(session, await actor_for(session, user), str(cid))
    async with runtime.sessions() as session:
        conv = await session.get_one(Conversation, cid)
        user = await session.get_one(User, agent)
    assert (conv.assignee_id, conv.queued_at) == (agent, None)
    assert user.availability == "away", "present, but nothing new is routed to them"


async def test_a_message_without_rules_just_queues(runtime: Runtime, channel: ChannelRow) -> None:
    async with helpers.client_for(runtime) as client:
        body = helpers.dumps(
            helpers.wa_envelope(messages=[helpers.wa_text(new_id(), "4915100000001", "Hallo")])
        )
        await client.post(
            f"/webhooks/whatsapp/{channel.id}", content=body, headers=helpers.wa_sign(body)
        )
    await helpers.hand_on_events(runtime)
    claimed = await jobs.claim(runtime.engine, "w1", 10, timedelta(seconds=5), [PROCESS_JOB])
    await process_job(runtime, claimed[0], "w1")
    async with runtime.sessions() as session:
        waiting = await routing.queue(session, channel.workspace_id)
    assert len(waiting) == 1 and waiting[0].address == "4915100000001"


async def test_concurrent_routing_never_exceeds_a_limit(
    runtime: Runtime, channel: ChannelRow
) -> None:
    _, agents = await _team(runtime, channel, "least_busy", 3, limits=[2, 2, 2])
    convs = await _conversations(runtime, channel, 12)
    picked = await asyncio.gather(*(_route(runtime, cid) for cid in convs))
    counts = Counter(p for p in picked if p)
    assert all(n == 2 for n in counts.values()) and set(counts) == set(agents)
    async with runtime.sessions() as session:
        rows = await session.execute(
            select(Conversation.assignee_id, func.count())
            .where(Conversation.assignee_id.is_not(None))
            .group_by(Conversation.assignee_id)
        )
        assert {who: n for who, n in rows.all()} == {a: 2 for a in agents}
        assert len(await routing.queue(session, channel.workspace_id)) == 6


async def test_concurrent_availability_and_routing_respect_the_limit(
    runtime: Runtime, channel: ChannelRow
) -> None:
    _, agents = await _team(runtime, channel, "round_robin", 1, limits=[3], availability=["away"])
    waiting = await _conversations(runtime, channel, 4)
    for cid in waiting:
        assert await _route(runtime, cid) is None
    fresh = await _conversations(runtime, channel, 4)
    await asyncio.gather(
        _availability(runtime, agents[0], "available"), *(_route(runtime, c) for c in fresh)
    )
    assigned = await _assignees(runtime, waiting + fresh)
    assert Counter(assigned.values())[agents[0]] == 3


async def test_the_queue_page_shows_who_waits_longest(
    runtime: Runtime, channel: ChannelRow
) -> None:

    _, agents = await _team(runtime, channel, "manual", 1, availability=["available"])
    convs = await _conversations(runtime, channel, 2)
    start = utcnow() - timedelta(minutes=30)
    await _route(runtime, convs[1], now=start)
    await _route(runtime, convs[0], now=start + timedelta(minutes=20))
    async with helpers.client_for(runtime) as client:
        await _login(client, "agent0@laden.example")
        page = await client.get("/inbox/queue")
        assert page.status_code == 200
        text = page.text
        assert text.index("K1") < text.index("K0"), "longest waiting first"
        assert "Wartezeit: 30 Minuten" in text
        inbox = await client.get("/inbox")
        assert 'hx-get="/inbox/queue"' in inbox.text
        # Going offline through the page returns what one had to the queue.
        async with runtime.sessions() as session, session.begin():
            await session.execute(
                update(Conversation)
                .where(Conversation.id == convs[0])
                .values(assignee_id=agents[0])
            )
        changed = await client.post(
            "/inbox/me", data={"availability": "offline", "_csrf_token": _csrf(inbox.text)}
        )
        assert changed.status_code == 303
    assigned = await _assignees(runtime, convs)
    assert assigned[convs[0]] is None


async def test_the_queue_is_scoped_to_the_workspace(runtime: Runtime, channel: ChannelRow) -> None:
    await _team(runtime, channel, "manual", 1)
    convs = await _conversations(runtime, channel, 1)
    await _route(runtime, convs[0])
    async with runtime.sessions() as session:
        assert await routing.queue(session, new_id()) == []
        assert len(await routing.queue(session, channel.workspace_id)) == 1


async def test_resolving_frees_a_slot_for_the_longest_waiting(
    runtime: Runtime, channel: ChannelRow
) -> None:
    """An agent at their limit resolves one conversation and gets the next waiting one."""

    _, agents = await _team(runtime, channel, "round_robin", agents=1, limits=[1])
    convs = await _conversations(runtime, channel, 3)
    for minutes, cid in zip((3, 2, 1), convs, strict=True):
        await _route(runtime, cid, now=utcnow() - timedelta(minutes=minutes))
    assert (await _assignees(runtime, convs))[convs[0]] == agents[0]
    async with runtime.sessions() as session, session.begin():
        user = await session.get_one(User, agents[0])
        actor = await actor_for(session, user)
        routed = await service.set_status(session, actor, convs[0], "resolved")
    assert routed == [convs[1]], "the freed slot goes to the next one waiting"
    async with runtime.sessions() as session:
        queued = await session.scalar(
            select(Conversation.queued_at).where(Conversation.id == convs[0])
        )
    assert queued is None
    after = await _assignees(runtime, convs)
    assert after[convs[1]] == agents[0] and after[convs[2]] is None
