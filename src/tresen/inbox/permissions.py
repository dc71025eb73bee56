"""One permission check for pages and API alike."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from tresen.db.tables import Conversation, TeamMember, User
from tresen.inbox.accounts import Role
from tresen.privacy.visibility import Withholding, withholding


class Action(StrEnum):
    """Things a person can try to do."""

    VIEW = "view"
    REPLY = "reply"
    NOTE = "note"
    TAKE = "take"
    ASSIGN_OTHERS = "assign_others"
    SET_STATUS = "set_status"
    LABEL = "label"
    EDIT_CONTACT = "edit_contact"
    MANAGE_LABELS = "manage_labels"
    MANAGE_CANNED = "manage_canned"
    VIEW_REPORTS = "view_reports"
    MANAGE_USERS = "manage_users"
    MANAGE_SETTINGS = "manage_settings"
    MANAGE_PRIVACY = "manage_privacy"  # export and erase a contact's data


_WORKSPACE_ACTIONS = {
    Role.ADMIN: set(Action),
    Role.SUPERVISOR: {
        Action.MANAGE_CANNED,
        Action.VIEW_REPORTS,
        Action.ASSIGN_OTHERS,
        Action.MANAGE_LABELS,
    },
    Role.AGENT: set(),
}
_CONVERSATION_ACTIONS = {
    Action.VIEW,
    Action.REPLY,
    Action.NOTE,
    Action.TAKE,
    Action.SET_STATUS,
    Action.LABEL,
    Action.EDIT_CONTACT,
}


@dataclass(frozen=True)
class Actor:
    """A signed-in user with the teams they belong to."""

    user: User
    team_ids: frozenset[str]
    withholding: Withholding = field(default_factory=lambda: withholding(None))
    """Whose message content stays hidden (before consent, restricted); strictest by default."""

    @property
    def role(self) -> Role:
        """The user's role."""
        return Role(self.user.role)


async def actor_for(session: AsyncSession, user: User, settings: Any = None) -> Actor:
    """Load the teams of a user; `settings` say whose messages are withheld (strictest if None)."""
    teams = await session.scalars(select(TeamMember.team_id).where(TeamMember.user_id == user.id))
    return Actor(user=user, team_ids=frozenset(teams), withholding=withholding(settings))


def may(actor: Actor, action: Action, conversation: Conversation | None = None) -> bool:
    """Whether the actor may do this, on this conversation if one is named."""
    if conversation is not None and conversation.workspace_id != actor.user.workspace_id:
        return False
    if actor.role == Role.ADMIN:
        return True
    if action in _CONVERSATION_ACTIONS or (
        action == Action.ASSIGN_OTHERS and conversation is not None
    ):
        if conversation is None:
            return action in _CONVERSATION_ACTIONS
        if not _in_scope(actor, conversation):
            return False
        if action == Action.ASSIGN_OTHERS:
            return actor.role == Role.SUPERVISOR
        return True
    return action in _WORKSPACE_ACTIONS[actor.role]


def _in_scope(actor: Actor, conversation: Conversation) -> bool:
    in_team = conversation.team_id is None or conversation.team_id in actor.team_ids
    if actor.role == Role.SUPERVISOR:
        return in_team
    return conversation.assignee_id == actor.user.id or (
        conversation.assignee_id is None and in_team
    )


async def may_view(session: AsyncSession, actor: Actor, conversation_id: str) -> bool:
    """Whether the actor may see this conversation now (the list's rule, for one id)."""
    found = await session.scalar(
        select(Conversation.id).where(Conversation.id == conversation_id, visible(actor))
    )
    return found is not None


def visible(actor: Actor) -> Any:
    """A WHERE clause selecting the conversations the actor may see (same rule as `may`)."""
    same_workspace = Conversation.workspace_id == actor.user.workspace_id
    if actor.role == Role.ADMIN:
        return same_workspace
    in_team = or_(Conversation.team_id.is_(None), Conversation.team_id.in_(actor.team_ids or {""}))
    if actor.role == Role.SUPERVISOR:
        return and_(same_workspace, in_team)
    return and_(
        same_workspace,
        or_(
            Conversation.assignee_id == actor.user.id,
            and_(Conversation.assignee_id.is_(None), in_team),
        ),
    )
