"""Routing: channel → team rules, assignment round-robin or least-busy, the waiting queue.

A conversation waits (``queued_at`` set, no assignee) until an available agent of its team has
room under their limit of open conversations. Concurrency: on PostgreSQL the candidate agents'
rows are locked (``FOR UPDATE``, always in id order) before their load is counted, so two routing
transactions never both fill an agent's last slot; SQLite serialises writers (``BEGIN IMMEDIATE``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from tresen.db import outbox
from tresen.db.tables import (
    ChannelRow,
    Contact,
    ContactIdentity,
    Conversation,
    Message,
    RoutingRule,
    Team,
    TeamMember,
    User,
)
from tresen.db.types import utcnow
from tresen.db.upsert import rowcount
from tresen.domain.conversation import ConversationStatus
from tresen.domain.events import ConversationAssigned
from tresen.domain.ids import new_id
from tresen.jobs import queue as jobs
from tresen.jobs.queue import ClaimedJob
from tresen.runtime import Runtime

log = logging.getLogger(__name__)

ROUTE_JOB = "conversation.route"
ACTIVE = (ConversationStatus.OPEN.value, ConversationStatus.PENDING.value)
"""Statuses that count against an agent's limit, wait in the queue and return to it."""
FILL_WITHOUT_LIMIT = 5
"""How many waiting conversations an agent without a limit gets on becoming available."""


class Mode(StrEnum):
    """How a team's conversations find an agent."""

    MANUAL = "manual"
    ROUND_ROBIN = "round_robin"
    LEAST_BUSY = "least_busy"


class Availability(StrEnum):
    """An agent's status; only available agents get conversations."""

    AVAILABLE = "available"
    AWAY = "away"
    OFFLINE = "offline"


@dataclass(frozen=True)
class Waiting:
    """One conversation in the waiting queue."""

    conversation_id: str
    name: str | None
    address: str
    channel_kind: str
    team_name: str | None
    queued_at: datetime
    wait: timedelta


# --- the queue -----------------------------------------------------------------------------


async def queue(
    session: AsyncSession,
    workspace_id: str,
    *,
    where: Any = None,
    now: datetime | None = None,
    limit: int = 200,
) -> list[Waiting]:
    """Waiting conversations, longest-waiting first (`where`: e.g. `permissions.visible(actor)`)."""
    now = now or utcnow()
    stmt = (
        select(
            Conversation.id,
            func.coalesce(ContactIdentity.display_name, Contact.display_name),
            ContactIdentity.address,
            ChannelRow.kind,
            Team.name,
            Conversation.queued_at,
        )
        .join(ContactIdentity, ContactIdentity.id == Conversation.identity_id)
        .join(Contact, Contact.id == Conversation.contact_id)
        .join(ChannelRow, ChannelRow.id == Conversation.channel_id)
        .outerjoin(Team, Team.id == Conversation.team_id)
        .where(
            Conversation.workspace_id == workspace_id,
            Conversation.assignee_id.is_(None),
            Conversation.queued_at.is_not(None),
            Conversation.status.in_(ACTIVE),
            Contact.restricted_at.is_(None),
        )
        .order_by(Conversation.queued_at, Conversation.id)
        .limit(limit)
    )
    if where is not None:
        stmt = stmt.where(where)
    rows = (await session.execute(stmt)).all()
    return [
        Waiting(cid, name, address, kind, team, since, max(now - since, timedelta(0)))
        for cid, name, address, kind, team, since in rows
        if since is not None
    ]


# --- routing one conversation -----------------------------------------------------------------


async def route_for_message(session: AsyncSession, message_id: str) -> str | None:
    """After a new inbound message: queue its conversation if nobody has it, then route it.

    Returns the conversation's id when it got an agent.
    """
    row = (
        await session.execute(
            select(Message.created_at, Conversation.id, Conversation.assignee_id, User.availability)
            .join(Conversation, Conversation.id == Message.conversation_id)
            .outerjoin(User, User.id == Conversation.assignee_id)
            .where(Message.id == message_id)
        )
    ).first()
    if row is None:
        return None
    arrived, conversation_id, assignee_id, availability = row
    if assignee_id is not None and availability != Availability.OFFLINE.value:
        return None
    # Unassigned, or (e.g. reopened) with an assignee who went offline since: back to the queue.
    same_assignee = (
        Conversation.assignee_id.is_(None)
        if assignee_id is None
        else Conversation.assignee_id == assignee_id
    )
    queued = await session.execute(
        update(Conversation)
        .where(Conversation.id == conversation_id, same_assignee)
        .values(assignee_id=None, queued_at=func.coalesce(Conversation.queued_at, arrived))
    )
    if assignee_id is not None and rowcount(queued):
        workspace_id = await session.scalar(
            select(Conversation.workspace_id).where(Conversation.id == conversation_id)
        )
        outbox.record(
            session, ConversationAssigned(str(workspace_id), conversation_id, None, "routing")
        )
    return conversation_id if await route_conversation(session, conversation_id) else None


async def route_conversation(
    session: AsyncSession, conversation_id: str, *, now: datetime | None = None
) -> str | None:
    """Give an unassigned conversation its team by rule and an agent by mode; the assignee id or None."""
    row = (
        await session.execute(
            select(
                Conversation.workspace_id,
                Conversation.status,
                Conversation.assignee_id,
                Conversation.team_id,
                RoutingRule.team_id,
                RoutingRule.mode,
            )
            .outerjoin(RoutingRule, RoutingRule.channel_id == Conversation.channel_id)
            .where(Conversation.id == conversation_id)
        )
    ).first()
    if row is None:
        return None
    workspace_id, status, assignee_id, team_id, rule_team, mode = row
    if assignee_id is not None or status not in ACTIVE or rule_team is None:
        return None
    team_id = team_id or rule_team
    waiting = (
        update(Conversation)
        .where(Conversation.id == conversation_id, Conversation.assignee_id.is_(None))
        .values(team_id=team_id, queued_at=func.coalesce(Conversation.queued_at, now or utcnow()))
    )
    if mode == Mode.MANUAL.value:
        await session.execute(waiting)
        return None
    agent = await _pick(session, workspace_id, team_id, Mode(mode))
    if agent is None:
        await session.execute(waiting)
        return None
    assigned = await session.execute(
        update(Conversation)
        .where(Conversation.id == conversation_id, Conversation.assignee_id.is_(None))
        .values(team_id=team_id, assignee_id=agent, queued_at=None)
    )
    if rowcount(assigned):
        outbox.record(
            session, ConversationAssigned(workspace_id, conversation_id, agent, "routing")
        )
    if not rowcount(assigned):
        return None
    if mode == Mode.ROUND_ROBIN.value:
        await session.execute(update(Team).where(Team.id == team_id).values(rr_cursor=agent))
    log.info("conversation %s routed to %s (%s)", conversation_id, agent, mode)
    return agent


async def _lock_agents(session: AsyncSession, stmt: Any) -> list[tuple[str, int | None]]:
    """Run a select of (User.id, User.max_open), locking the rows on PostgreSQL, in id order."""
    stmt = stmt.order_by(User.id)
    if session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update(of=User)
    return [(uid, limit) for uid, limit in (await session.execute(stmt)).all()]


async def _loads(session: AsyncSession, user_ids: list[str]) -> dict[str, int]:
    """Open conversations per agent (read after the agents' rows are locked)."""
    if not user_ids:
        return {}
    rows = await session.execute(
        select(Conversation.assignee_id, func.count())
        .where(Conversation.assignee_id.in_(user_ids), Conversation.status.in_(ACTIVE))
        .group_by(Conversation.assignee_id)
    )
    return {str(uid): int(n) for uid, n in rows.all()}


async def _pick(session: AsyncSession, workspace_id: str, team_id: str, mode: Mode) -> str | None:
    """An available team member under their limit, chosen by mode; None when all are busy."""
    agents = await _lock_agents(
        session,
        select(User.id, User.max_open)
        .join(TeamMember, TeamMember.user_id == User.id)
        .where(
            TeamMember.team_id == team_id,
            User.workspace_id == workspace_id,
            User.availability == Availability.AVAILABLE.value,
            User.disabled.is_(False),
        ),
    )
    loads = await _loads(session, [uid for uid, _ in agents])
    free = [uid for uid, limit in agents if limit is None or loads.get(uid, 0) < limit]
    if not free:
        return None
    if mode == Mode.LEAST_BUSY:
        return min(free, key=lambda uid: (loads.get(uid, 0), uid))
    cursor = await session.scalar(select(Team.rr_cursor).where(Team.id == team_id))
    after = [uid for uid in free if cursor is None or uid > cursor]
    return (after or free)[0]


# --- agents coming and going ------------------------------------------------------------------


async def on_availability_change(
    session: AsyncSession, user: User, new: str, *, now: datetime | None = None
) -> list[str]:
    """Set the agent's status and route accordingly; the conversations that changed.

    Offline: their open conversations return to the queue and a routing job is queued for each
    (jobs, so this transaction locks no other agent). Available: they get the longest-waiting
    conversations of their teams up to their limit. Away: they keep what they have, get nothing new.
    """
    status = Availability(new)
    now = now or utcnow()
    await session.execute(update(User).where(User.id == user.id).values(availability=status.value))
    if status == Availability.OFFLINE:
        return await release(session, user.id, now=now)
    if status == Availability.AVAILABLE:
        return await fill(session, user.id, now=now)
    return []


async def release(session: AsyncSession, user_id: str, *, now: datetime | None = None) -> list[str]:
    """Return an agent's open conversations to the queue and queue a routing job for each."""
    now = now or utcnow()
    rows = (
        await session.execute(
            select(Conversation.id, Conversation.workspace_id).where(
                Conversation.assignee_id == user_id, Conversation.status.in_(ACTIVE)
            )
        )
    ).all()
    if not rows:
        return []
    await session.execute(
        update(Conversation)
        .where(Conversation.id.in_([cid for cid, _ in rows]), Conversation.assignee_id == user_id)
        .values(assignee_id=None, queued_at=now)
    )
    for cid, workspace_id in rows:
        jobs.enqueue(session, ROUTE_JOB, {"conversation_id": cid}, workspace_id=workspace_id)
        outbox.record(session, ConversationAssigned(workspace_id, cid, None, "routing"))
    return [cid for cid, _ in rows]


async def fill(session: AsyncSession, user_id: str, *, now: datetime | None = None) -> list[str]:
    """Give an available agent the longest-waiting conversations of their teams, up to their limit."""
    agents = await _lock_agents(
        session,
        select(User.id, User.max_open).where(
            User.id == user_id,
            User.availability == Availability.AVAILABLE.value,
            User.disabled.is_(False),
        ),
    )
    if not agents:
        return []
    _, limit = agents[0]
    room = (
        FILL_WITHOUT_LIMIT
        if limit is None
        else limit - (await _loads(session, [user_id])).get(user_id, 0)
    )
    if room <= 0:
        return []
    teams = select(TeamMember.team_id).where(TeamMember.user_id == user_id)
    pick = (
        select(Conversation.id, Conversation.workspace_id)
        .join(RoutingRule, RoutingRule.channel_id == Conversation.channel_id)
        .where(
            Conversation.assignee_id.is_(None),
            Conversation.queued_at.is_not(None),
            Conversation.status.in_(ACTIVE),
            Conversation.team_id.in_(teams),
            Conversation.contact_id.not_in(
                select(Contact.id).where(Contact.restricted_at.is_not(None))
            ),
            RoutingRule.mode != Mode.MANUAL.value,
        )
        .order_by(Conversation.queued_at, Conversation.id)
        .limit(room)
    )
    if session.get_bind().dialect.name == "postgresql":
        pick = pick.with_for_update(of=Conversation, skip_locked=True)
    taken: list[str] = []
    for cid, workspace_id in (await session.execute(pick)).all():
        done = await session.execute(
            update(Conversation)
            .where(Conversation.id == cid, Conversation.assignee_id.is_(None))
            .values(assignee_id=user_id, queued_at=None)
        )
        if rowcount(done):
            taken.append(cid)
            outbox.record(session, ConversationAssigned(workspace_id, cid, user_id, "routing"))
    return taken


# --- the job -------------------------------------------------------------------------------


async def route_job(runtime: Runtime, job: ClaimedJob, worker_id: str) -> None:
    """Route one conversation (queued when it returned to the queue or its rule changed)."""
    conversation_id = str(job.payload.get("conversation_id", ""))
    async with runtime.sessions() as session, session.begin():
        await route_conversation(session, conversation_id)  # announces conversation.assigned
        await jobs.finish(session, job.id, worker_id)


HANDLERS = {ROUTE_JOB: route_job}


# --- administration (for the CLI and settings pages) -------------------------------------------


async def add_team(session: AsyncSession, workspace_id: str, name: str) -> Team:
    """Create a team."""
    team = Team(
        id=new_id(), workspace_id=workspace_id, name=name.strip()[:100], created_at=utcnow()
    )
    session.add(team)
    await session.flush()
    return team


async def add_member(session: AsyncSession, team_id: str, user_id: str) -> None:
    """Put a person into a team (nothing happens when they are in it already)."""
    team = await session.get_one(Team, team_id)
    user = await session.get_one(User, user_id)
    if team.workspace_id != user.workspace_id:
        raise ValueError("team and user belong to different workspaces")
    if await session.get(TeamMember, (team_id, user_id)) is None:
        session.add(TeamMember(team_id=team_id, user_id=user_id))
        await session.flush()


async def set_rule(
    session: AsyncSession, workspace_id: str, channel_id: str, team_id: str, mode: str
) -> RoutingRule:
    """Route a channel's conversations to a team with a mode (replacing the channel's rule)."""
    chosen = Mode(mode)
    channel = await session.get_one(ChannelRow, channel_id)
    team = await session.get_one(Team, team_id)
    if channel.workspace_id != workspace_id or team.workspace_id != workspace_id:
        raise ValueError("channel and team must belong to the workspace")
    await session.execute(delete(RoutingRule).where(RoutingRule.channel_id == channel_id))
    rule = RoutingRule(
        id=new_id(),
        workspace_id=workspace_id,
        channel_id=channel_id,
        team_id=team_id,
        mode=chosen.value,
        created_at=utcnow(),
    )
    session.add(rule)
    await session.flush()
    return rule


async def remove_rule(session: AsyncSession, channel_id: str) -> None:
    """Stop routing a channel (its conversations stay where they are)."""
    await session.execute(delete(RoutingRule).where(RoutingRule.channel_id == channel_id))


async def set_limit(session: AsyncSession, user_id: str, max_open: int | None) -> None:
    """An agent's limit of open conversations (None: no limit)."""
    if max_open is not None and max_open < 0:
        raise ValueError("the limit must not be negative")
    await session.execute(update(User).where(User.id == user_id).values(max_open=max_open))
