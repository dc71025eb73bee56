"""Who may see a conversation: loading one for an actor, and the errors that say no."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tresen.db.tables import Conversation
from tresen.inbox.permissions import Action, Actor, may


class Forbidden(Exception):
    """The actor may not do this (answered with 403; nothing changes)."""


class NotFound(Exception):
    """No such conversation in the actor's workspace."""


async def load_conversation(
    session: AsyncSession, actor: Actor, conversation_id: str
) -> Conversation:
    """A conversation the actor may see, or NotFound/Forbidden."""
    conv = await session.scalar(
        select(Conversation).where(
            Conversation.id == conversation_id, Conversation.workspace_id == actor.user.workspace_id
        )
    )
    if conv is None:
        raise NotFound(conversation_id)
    if not may(actor, Action.VIEW, conv):
        raise Forbidden("you may not see this conversation")
    return conv


def withhold_item(item: dict[str, Any], reason: str | None) -> dict[str, Any]:
    """A timeline item whose message content is replaced by the reason it is withheld."""
    if reason is None:
        return item
    return {**item, "withheld": reason, "media": []}
