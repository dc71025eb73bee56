"""Canned replies (Textbausteine): a shortcut, a title, a text per language with variables, an
optional file; for the whole workspace, one team or one person."""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, and_, false, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from tresen.db.tables import CannedReply, ChannelRow, Conversation, Media, Team
from tresen.db.types import utcnow
from tresen.domain.ids import new_id
from tresen.domain.message import ContentKind, SenderKind
from tresen.inbox.accounts import Role
from tresen.inbox.permissions import Action, Actor, may
from tresen.media import store
from tresen.media.sniff import INLINE_TYPES
from tresen.pipeline.outbound import OutboundContent, queue_message
from tresen.storage import FileStore

SHORTCUT = re.compile(r"^[\w-]{1,40}$")
VARIABLES = ("first_name", "name", "agent_name", "business")
"""What `{...}` in a canned reply may name (filled in when the agent sends it)."""
MAX_BODY = 4000
SCOPES = ("workspace", "team", "personal")
LANGUAGES = ("de", "en")
USE = re.compile(r"^/([\w-]{1,40})\s*$")
"""A reply box holding only "/shortcut" sends that canned reply."""


class CannedError(ValueError):
    """A canned reply that cannot be stored, with a message naming the field."""


@dataclass(frozen=True)
class Draft:
    """What the form sends for one canned reply."""

    shortcut: str
    title: str
    body: str
    scope: str = "workspace"
    team_id: str | None = None
    texts: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Files:
    """Where attachments live and how the customer's app fetches them."""

    store: FileStore
    base_url: str
    secret: str
    max_bytes: int


def _check_text(body: str) -> str:
    if not body.strip() or len(body) > MAX_BODY:
        raise CannedError("a text has 1 to 4000 characters")
    unknown = sorted(set(re.findall(r"\{(\w+)\}", body)) - set(VARIABLES))
    if unknown:
        raise CannedError(f"unknown variable {{{unknown[0]}}}")
    return body.strip()


def _check(draft: Draft) -> Draft:
    key = draft.shortcut.strip().lstrip("/").lower()
    if not SHORTCUT.match(key):
        raise CannedError("a shortcut has 1 to 40 letters, digits, - or _")
    if not draft.title.strip() or len(draft.title) > 200:
        raise CannedError("a title has 1 to 200 characters")
    if draft.scope not in SCOPES:
        raise CannedError("the scope is workspace, team or personal")
    if draft.scope == "team" and not draft.team_id:
        raise CannedError("choose the team that may use this canned reply")
    texts = {
        lang: _check_text(text)
        for lang, text in draft.texts.items()
        if lang in LANGUAGES and text.strip()
    }
    return Draft(
        key,
        draft.title.strip(),
        _check_text(draft.body),
        draft.scope,
        draft.team_id if draft.scope == "team" else None,
        texts,
    )


def visible(actor: Actor) -> ColumnElement[bool]:
    """The canned replies this person may see and use: the workspace's, their teams' (every
    team's for admins and supervisors), and their own personal ones."""
    teams: ColumnElement[bool]
    if actor.role in (Role.ADMIN, Role.SUPERVISOR):
        teams = CannedReply.scope == "team"
    elif actor.team_ids:
        teams = and_(CannedReply.scope == "team", CannedReply.team_id.in_(actor.team_ids))
    else:
        teams = false()
    return and_(
        CannedReply.workspace_id == actor.user.workspace_id,
        or_(
            CannedReply.scope == "workspace",
            teams,
            and_(CannedReply.scope == "personal", CannedReply.owner_id == actor.user.id),
        ),
    )


def may_manage(actor: Actor, scope: str, owner_id: str | None = None) -> bool:
    """Personal replies are their owner's; the others need the canned-reply permission."""
    if scope == "personal":
        return owner_id in (None, actor.user.id)
    return may(actor, Action.MANAGE_CANNED)


async def replies(session: AsyncSession, actor: Actor) -> list[CannedReply]:
    """The canned replies this person sees, by shortcut."""
    return list(
        await session.scalars(
            select(CannedReply).where(visible(actor)).order_by(CannedReply.shortcut)
        )
    )


async def teams(session: AsyncSession, workspace_id: str) -> list[Team]:
    """The teams a canned reply may be meant for."""
    return list(
        await session.scalars(
            select(Team).where(Team.workspace_id == workspace_id).order_by(Team.name)
        )
    )


async def _taken(session: AsyncSession, workspace_id: str, key: str, other_than: str = "") -> bool:
    found = await session.scalar(
        select(CannedReply.id).where(
            CannedReply.workspace_id == workspace_id, CannedReply.shortcut == key
        )
    )
    return found is not None and found != other_than


async def _own(session: AsyncSession, actor: Actor, reply_id: str) -> CannedReply:
    found = await session.get(CannedReply, reply_id)
    if found is None or found.workspace_id != actor.user.workspace_id:
        raise CannedError("no such canned reply")
    if found.scope == "personal" and found.owner_id != actor.user.id:
        raise CannedError("no such canned reply")
    return found


async def save(
    session: AsyncSession, actor: Actor, draft: Draft, reply_id: str | None = None
) -> CannedReply:
    """Create a canned reply, or change the one with `reply_id`; PermissionError if this person
    may not manage replies of that scope."""
    checked = _check(draft)
    if checked.team_id is not None:
        team = await session.get(Team, checked.team_id)
        if team is None or team.workspace_id != actor.user.workspace_id:
            raise CannedError("choose the team that may use this canned reply")
    if not may_manage(actor, checked.scope):
        raise PermissionError("only admins and supervisors manage shared canned replies")
    workspace_id = actor.user.workspace_id
    if await _taken(session, workspace_id, checked.shortcut, reply_id or ""):
        raise CannedError(f"the shortcut /{checked.shortcut} exists already")
    if reply_id is None:
        row = CannedReply(id=new_id(), workspace_id=workspace_id, created_at=utcnow(), use_count=0)
        session.add(row)
    else:
        row = await _own(session, actor, reply_id)
        if not may_manage(actor, row.scope, row.owner_id):
            raise PermissionError("only admins and supervisors manage shared canned replies")
    row.shortcut, row.title, row.body = checked.shortcut, checked.title, checked.body
    row.scope, row.team_id, row.texts = checked.scope, checked.team_id, checked.texts
    row.owner_id = actor.user.id if checked.scope == "personal" else None
    await session.flush()
    return row


async def attach(
    session: AsyncSession,
    actor: Actor,
    reply_id: str,
    files: Files,
    content: bytes,
    declared: str | None,
    filename: str | None,
) -> None:
    """Store a file (checked like every media upload) to be sent with the canned reply."""
    row = await _own(session, actor, reply_id)
    if not may_manage(actor, row.scope, row.owner_id):
        raise PermissionError("only admins and supervisors manage shared canned replies")
    saved = await asyncio.to_thread(
        store.save, files.store, row.workspace_id, new_id(), content, declared, files.max_bytes
    )
    _forget_file(files, row.attachment)
    row.attachment = {
        "path": saved.path,
        "content_type": saved.content_type,
        "size": saved.size,
        "filename": store.stored_filename(filename, saved.content_type) or "",
    }
    await session.flush()


def _forget_file(files: Files, attachment: dict[str, Any] | None) -> None:
    key = str((attachment or {}).get("path") or "")
    if store.is_media_key(key):
        files.store.delete(key)


async def detach(session: AsyncSession, actor: Actor, reply_id: str, files: Files) -> None:
    """Remove the file of a canned reply."""
    row = await _own(session, actor, reply_id)
    if not may_manage(actor, row.scope, row.owner_id):
        raise PermissionError("only admins and supervisors manage shared canned replies")
    _forget_file(files, row.attachment)
    row.attachment = None
    await session.flush()


async def delete(session: AsyncSession, actor: Actor, reply_id: str, files: Files | None) -> None:
    """Delete a canned reply (and its file) this person may manage."""
    row = await _own(session, actor, reply_id)
    if not may_manage(actor, row.scope, row.owner_id):
        raise PermissionError("only admins and supervisors manage shared canned replies")
    if files is not None:
        _forget_file(files, row.attachment)
    await session.delete(row)
    await session.flush()


async def find(session: AsyncSession, actor: Actor, body: str) -> CannedReply | None:
    """The canned reply a reply box of only "/shortcut" names, if this person may use it."""
    found = USE.match(body.strip())
    if not found:
        return None
    return await session.scalar(
        select(CannedReply).where(visible(actor), CannedReply.shortcut == found.group(1).lower())
    )


async def workspace_reply(
    session: AsyncSession, workspace_id: str, shortcut: str
) -> CannedReply | None:
    """The workspace-wide canned reply with this shortcut ("/zeiten" or "zeiten"): what an API
    token, which belongs to no person or team, may use."""
    found = USE.match("/" + shortcut.strip().removeprefix("/"))
    if not found:
        return None
    return await session.scalar(
        select(CannedReply).where(
            CannedReply.workspace_id == workspace_id,
            CannedReply.scope == "workspace",
            CannedReply.shortcut == found.group(1).lower(),
        )
    )


def fill(reply: CannedReply, language: str | None, values: dict[str, str]) -> str:
    """The text in the customer's language (else the main one), variables filled in."""
    text = str((reply.texts or {}).get(language or "") or reply.body)
    return re.sub(r"\{(\w+)\}", lambda m: values.get(m.group(1), m.group(0)), text)


async def count_use(session: AsyncSession, reply_id: str) -> None:
    """One more use (counted in the database, so two agents at once both count)."""
    await session.execute(
        update(CannedReply)
        .where(CannedReply.id == reply_id)
        .values(use_count=CannedReply.use_count + 1)
    )


async def send_attachment(
    session: AsyncSession,
    conversation: Conversation,
    channel: ChannelRow,
    reply: CannedReply,
    files: Files,
) -> None:
    """Queue the canned reply's file as its own message (a copy, so erasing the conversation
    never removes the canned reply's file)."""
    attachment = reply.attachment or {}
    content = await asyncio.to_thread(store.load, files.store, str(attachment.get("path") or ""))
    if content is None:
        raise CannedError("the file of this canned reply is missing; attach it again")
    media_id = new_id()
    saved = await asyncio.to_thread(
        store.save,
        files.store,
        conversation.workspace_id,
        media_id,
        content,
        str(attachment.get("content_type") or ""),
        files.max_bytes,
    )
    kind = media_kind(saved.content_type)
    payload: dict[str, Any] = {
        "media_type": kind,
        "link": store.public_link(files.base_url, files.secret, media_id),
        "media_id": media_id,
    }
    if attachment.get("filename"):
        payload["filename"] = str(attachment["filename"])
    message = await queue_message(
        session,
        conversation,
        channel,
        OutboundContent(ContentKind.MEDIA, None, payload),
        sender_kind=SenderKind.AGENT,
    )
    session.add(
        Media(
            id=media_id,
            workspace_id=conversation.workspace_id,
            message_id=message.id,
            kind=kind,
            state=store.STORED,
            content_type=saved.content_type,
            size=saved.size,
            sha256=saved.sha256,
            filename=payload.get("filename"),
            path=saved.path,
            ref={},
        )
    )


def media_kind(content_type: str) -> str:
    """image, audio, video or document, as the channels name them."""
    if content_type in INLINE_TYPES:
        return "image"
    top = content_type.split("/", 1)[0]
    return top if top in ("audio", "video") else "document"
