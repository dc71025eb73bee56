"""Workspace labels (a name and a colour from a fixed palette) on conversations."""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from tresen.db import outbox
from tresen.db.tables import ConversationLabel, Label
from tresen.db.types import utcnow
from tresen.domain.errors import DomainError
from tresen.domain.events import ConversationLabelAdded, ConversationLabelRemoved
from tresen.domain.ids import new_id
from tresen.inbox.access import Forbidden, NotFound, load_conversation
from tresen.inbox.permissions import Action, Actor, may

PALETTE = ("grey", "red", "orange", "yellow", "green", "teal", "blue", "purple", "pink")
MAX_NAME = 40
MAX_LABELS = 200


class LabelError(DomainError):
    """A label request breaks a rule (empty or long name, unknown colour, duplicate)."""


@dataclass(frozen=True)
class LabelView:
    """A label as pages show it."""

    id: str
    name: str
    colour: str


def _view(label: Label) -> LabelView:
    return LabelView(label.id, label.name, label.colour)


def clean_name(name: str) -> str:
    """The name without surrounding or repeated spaces; refused when empty, too long or odd."""
    text = " ".join(unicodedata.normalize("NFC", name).split())
    if not text:
        raise LabelError("label_name_empty", "a label needs a name")
    if len(text) > MAX_NAME:
        raise LabelError(
            "label_name_too_long",
            "a label name has at most {max} characters; this has {length}",
            params={"max": MAX_NAME, "length": len(text)},
        )
    if any(unicodedata.category(ch).startswith("C") for ch in text):
        raise LabelError("label_name_control", "a label name must not contain control characters")
    return text


async def workspace_labels(session: AsyncSession, workspace_id: str) -> list[LabelView]:
    """All labels of a workspace, by name."""
    rows = await session.scalars(
        select(Label).where(Label.workspace_id == workspace_id).order_by(Label.name, Label.id)
    )
    return [_view(label) for label in rows]


async def create_label(session: AsyncSession, actor: Actor, name: str, colour: str) -> LabelView:
    """A new workspace label (admins and supervisors)."""
    if not may(actor, Action.MANAGE_LABELS):
        raise Forbidden("only admins and supervisors manage labels")
    text = clean_name(name)
    if colour not in PALETTE:
        raise LabelError(
            "label_colour",
            "unknown colour {colour!r}; pick one of {palette}",
            params={"colour": colour[:20], "palette": ", ".join(PALETTE)},
        )
    ws = actor.user.workspace_id
    taken = await session.scalar(
        select(Label.id).where(Label.workspace_id == ws, func.lower(Label.name) == text.lower())
    )
    if taken is not None:
        raise LabelError(
            "label_exists", "there is already a label named {name!r}", 409, params={"name": text}
        )
    count = await session.scalar(select(func.count()).where(Label.workspace_id == ws)) or 0
    if count >= MAX_LABELS:
        raise LabelError(
            "too_many_labels", "a workspace has at most {max} labels", params={"max": MAX_LABELS}
        )
    label = Label(id=new_id(), workspace_id=ws, name=text, colour=colour, created_at=utcnow())
    session.add(label)
    await session.flush()
    return _view(label)


async def _label(session: AsyncSession, workspace_id: str, label_id: str) -> Label:
    label = await session.scalar(
        select(Label).where(Label.id == label_id, Label.workspace_id == workspace_id)
    )
    if label is None:
        raise NotFound(label_id)
    return label


async def delete_label(session: AsyncSession, actor: Actor, label_id: str) -> None:
    """Remove a label from the workspace and from every conversation."""
    if not may(actor, Action.MANAGE_LABELS):
        raise Forbidden("only admins and supervisors manage labels")
    label = await _label(session, actor.user.workspace_id, label_id)
    removed = await session.execute(
        delete(ConversationLabel)
        .where(ConversationLabel.label_id == label.id)
        .returning(ConversationLabel.conversation_id)
    )
    outbox.record(
        session,
        *(
            ConversationLabelRemoved(label.workspace_id, conversation_id, label.id)
            for (conversation_id,) in removed.all()
        ),
    )
    await session.delete(label)


async def add_label(
    session: AsyncSession, actor: Actor, conversation_id: str, label_id: str
) -> bool:
    """Put a label on a conversation; False when it was already there."""
    conv = await load_conversation(session, actor, conversation_id)
    if not may(actor, Action.LABEL, conv):
        raise Forbidden("you may not label this conversation")
    label = await _label(session, conv.workspace_id, label_id)
    there = await session.get(ConversationLabel, (conv.id, label.id))
    if there is not None:
        return False
    session.add(
        ConversationLabel(
            conversation_id=conv.id,
            label_id=label.id,
            workspace_id=conv.workspace_id,
            created_at=utcnow(),
        )
    )
    await session.flush()
    outbox.record(session, ConversationLabelAdded(conv.workspace_id, conv.id, label.id))
    return True


async def remove_label(
    session: AsyncSession, actor: Actor, conversation_id: str, label_id: str
) -> bool:
    """Take a label off a conversation; False when it was not there."""
    conv = await load_conversation(session, actor, conversation_id)
    if not may(actor, Action.LABEL, conv):
        raise Forbidden("you may not label this conversation")
    result = await session.execute(
        delete(ConversationLabel).where(
            ConversationLabel.conversation_id == conv.id, ConversationLabel.label_id == label_id
        )
    )
    removed = bool(getattr(result, "rowcount", 0))
    if removed:
        outbox.record(session, ConversationLabelRemoved(conv.workspace_id, conv.id, label_id))
    return removed


async def labels_for(
    session: AsyncSession, conversation_ids: Iterable[str]
) -> dict[str, list[LabelView]]:
    """The labels of each conversation, by name."""
    ids = list(dict.fromkeys(conversation_ids))
    if not ids:
        return {}
    rows = await session.execute(
        select(ConversationLabel.conversation_id, Label)
        .join(Label, Label.id == ConversationLabel.label_id)
        .where(ConversationLabel.conversation_id.in_(ids))
        .order_by(Label.name, Label.id)
    )
    out: dict[str, list[LabelView]] = {}
    for conversation_id, label in rows:
        out.setdefault(conversation_id, []).append(_view(label))
    return out
