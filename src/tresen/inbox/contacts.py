"""One person, many channels: merge contacts (and undo), their whole history, reply channels, panel.

Merge rules (B merged into A):
- B's identities and conversations move to A; B's row stays, marked `merged_into_id = A`, with
  its own name, attributes and consent state untouched, so an undo restores it exactly.
- Custom attributes: A's values win; keys only B has fill A's gaps (recorded in `filled_keys`).
  A's display name is kept; when A has none, B's fills it.
- Consent: the stricter state wins, in the order refused > unknown > asked > granted. A refusal
  on any channel stays a refusal; "granted" only survives when both were granted (consent was
  given for the channel it was asked on); unknown beats asked so the merged person is asked
  again where they write next. The append-only consent proof stays under the contact it was
  recorded for.

An undo is refused when it can no longer restore what was: the merge was undone already; A was
merged into yet another contact since (undo that first); an identity that moved is gone or
belongs to someone else now (e.g. erased); consent was asked, given or refused for A since the
merge (that proof is recorded under A and cannot move back).
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from tresen.channels.base import Capabilities, ChannelRef
from tresen.channels.registry import channel_factory
from tresen.db import outbox
from tresen.db.tables import (
    ChannelRow,
    ConsentEvent,
    Contact,
    ContactIdentity,
    ContactMerge,
    Conversation,
    Message,
    Note,
    User,
)
from tresen.db.types import utcnow
from tresen.domain.errors import DomainError
from tresen.domain.events import ContactChanged, ContactsMerged, ConversationAssigned
from tresen.domain.ids import new_id
from tresen.domain.message import ContentKind, SenderKind
from tresen.inbox.access import Forbidden, NotFound, load_conversation, withhold_item
from tresen.inbox.permissions import Action, Actor, may
from tresen.inbox.search import find_contacts
from tresen.pipeline.inbound import conversation_for
from tresen.pipeline.outbound import OutboundContent, OutboundRefused, check_window
from tresen.privacy import audit

MAX_ATTRIBUTES = 50
MAX_KEY = 40
MAX_VALUE = 500
HISTORY_LIMIT = 500
CONSENT_STRICTNESS = ("refused", "unknown", "asked", "granted")


class ContactRefused(DomainError):
    """A contact action that breaks a rule (answered with 422; nothing changes)."""


# ---------------------------------------------------------------- loading and permissions


async def _contact(
    session: AsyncSession, workspace_id: str, contact_id: str, *, lock: bool = False
) -> Contact:
    stmt = select(Contact).where(Contact.id == contact_id, Contact.workspace_id == workspace_id)
    if lock:
        stmt = stmt.with_for_update()
    contact = await session.scalar(stmt)
    if contact is None:
        raise NotFound(contact_id)
    return contact


async def _conversations_of(session: AsyncSession, contact_id: str) -> list[Conversation]:
    return list(
        await session.scalars(
            select(Conversation)
            .where(Conversation.contact_id == contact_id)
            .order_by(Conversation.id)
        )
    )


async def may_see_contact(session: AsyncSession, actor: Actor, contact_id: str) -> bool:
    """Whether the actor may view every conversation of the contact."""
    return all(may(actor, Action.VIEW, c) for c in await _conversations_of(session, contact_id))


# ---------------------------------------------------------------- merge and undo


def merged_consent(target: str, source: str) -> str:
    """The stricter of two consent states (see the module docstring)."""

    def rank(state: str) -> int:
        return CONSENT_STRICTNESS.index(state) if state in CONSENT_STRICTNESS else 1

    return target if rank(target) <= rank(source) else source


def _snapshot(contact: Contact) -> dict[str, Any]:
    return {
        "display_name": contact.display_name,
        "attributes": dict(contact.attributes or {}),
        "consent_state": contact.consent_state,
    }


async def merge(
    session: AsyncSession,
    workspace_id: str,
    target_id: str,
    source_id: str,
    *,
    actor: Actor | None = None,
    token_id: str | None = None,
) -> ContactMerge:
    """Merge contact `source_id` into `target_id`; `actor` None means a workspace API token."""
    # Lock both rows in id order, so two merges of the same pair cannot interleave.
    first, second = sorted((target_id, source_id))
    locked = {
        c.id: c
        for c in [
            await _contact(session, workspace_id, first, lock=True),
            await _contact(session, workspace_id, second, lock=True),
        ]
    }
    if target_id == source_id:
        raise ContactRefused("merge_self", "a contact cannot be merged with itself")
    target, source = locked[target_id], locked[source_id]
    for contact in (target, source):
        if contact.merged_into_id is not None:
            raise ContactRefused(
                "merged_already",
                "contact {contact} was merged into {target}; use that one",
                params={"contact": contact.id, "target": contact.merged_into_id or ""},
            )
    if actor is not None and not (
        await may_see_contact(session, actor, target.id)
        and await may_see_contact(session, actor, source.id)
    ):
        raise Forbidden("you may only merge contacts whose conversations you may all see")
    identity_ids = list(
        await session.scalars(
            select(ContactIdentity.id)
            .where(ContactIdentity.contact_id == source.id)
            .order_by(ContactIdentity.id)
        )
    )
    conversation_ids = [c.id for c in await _conversations_of(session, source.id)]
    target_before, source_before = _snapshot(target), _snapshot(source)
    filled = {
        k: v for k, v in (source.attributes or {}).items() if k not in (target.attributes or {})
    }
    consent = merged_consent(target.consent_state, source.consent_state)
    values: dict[str, Any] = {
        "attributes": {**(source.attributes or {}), **(target.attributes or {})},
        "consent_state": consent,
    }
    name_filled = not target.display_name and bool(source.display_name)
    if name_filled:
        values["display_name"] = source.display_name
    if identity_ids:
        await session.execute(
            update(ContactIdentity)
            .where(ContactIdentity.id.in_(identity_ids))
            .values(contact_id=target.id)
        )
    if conversation_ids:
        await session.execute(
            update(Conversation)
            .where(Conversation.id.in_(conversation_ids))
            .values(contact_id=target.id)
        )
    await session.execute(update(Contact).where(Contact.id == target.id).values(**values))
    await session.execute(
        update(Contact).where(Contact.id == source.id).values(merged_into_id=target.id)
    )
    record = ContactMerge(
        id=new_id(),
        workspace_id=workspace_id,
        target_id=target.id,
        source_id=source.id,
        actor_id=actor.user.id if actor else None,
        identity_ids={"ids": identity_ids},
        conversation_ids={"ids": conversation_ids},
        target_before={**target_before, "name_filled": name_filled},
        source_before=source_before,
        filled_keys=filled,
        consent_state=consent,
        created_at=utcnow(),
    )
    session.add(record)
    outbox.record(
        session,
        ContactsMerged(workspace_id, target.id, source.id),
        ContactChanged(workspace_id, target.id, tuple(sorted(values))),
    )
    await session.flush()
    await audit.record(
        session,
        workspace_id,
        "contact.merged",
        actor_id=actor.user.id if actor else None,
        subject_type="contact",
        subject_id=target.id,
        details={
            "merge_id": record.id,
            "source_id": source.id,
            "identity_ids": identity_ids,
            "conversation_ids": conversation_ids,
            "attribute_keys_filled": sorted(filled),
            "consent_state": consent,
            **({"token_id": token_id} if token_id else {}),
        },
    )
    return record


async def undo_merge(
    session: AsyncSession,
    workspace_id: str,
    merge_id: str,
    *,
    actor: Actor | None = None,
    token_id: str | None = None,
) -> ContactMerge:
    """Restore the merged-away contact as it was, if nothing since makes that impossible."""
    record = await session.scalar(
        select(ContactMerge)
        .where(ContactMerge.id == merge_id, ContactMerge.workspace_id == workspace_id)
        .with_for_update()
    )
    if record is None:
        raise NotFound(merge_id)
    if record.undone_at is not None:
        raise ContactRefused("undone_already", "this merge was undone already")
    first, second = sorted((record.target_id, record.source_id))
    locked = {
        c.id: c
        for c in [
            await _contact(session, workspace_id, first, lock=True),
            await _contact(session, workspace_id, second, lock=True),
        ]
    }
    target, source = locked[record.target_id], locked[record.source_id]
    if actor is not None and not await may_see_contact(session, actor, target.id):
        raise Forbidden("you may only undo a merge when you may see all its conversations")
    if target.merged_into_id is not None:
        raise ContactRefused(
            "undo_merged_since",
            "the merged contact was itself merged into another contact since; undo that merge first",
        )
    identity_ids: list[str] = list(record.identity_ids.get("ids", []))
    owners = dict(
        (
            await session.execute(
                select(ContactIdentity.id, ContactIdentity.contact_id).where(
                    ContactIdentity.id.in_(identity_ids or [""])
                )
            )
        ).all()
    )
    gone = [i for i in identity_ids if owners.get(i) != target.id]
    if gone:
        raise ContactRefused(
            "undo_identities_gone",
            "{count} of the channel identities that moved are gone or belong to another "
            "contact now (erased or merged elsewhere); the merge can no longer be undone",
            params={"count": len(gone)},
        )
    consent_since = await session.scalar(
        select(ConsentEvent.id)
        .where(
            ConsentEvent.workspace_id == workspace_id,
            ConsentEvent.contact_id == target.id,
            ConsentEvent.occurred_at >= record.created_at,
        )
        .limit(1)
    )
    if consent_since is not None or target.consent_state != record.consent_state:
        raise ContactRefused(
            "undo_consent_since",
            "consent was asked, given or refused since the merge; that proof is recorded for the "
            "merged contact, so the merge can no longer be undone",
        )
    if identity_ids:
        await session.execute(
            update(ContactIdentity)
            .where(ContactIdentity.id.in_(identity_ids))
            .values(contact_id=source.id)
        )
    conversation_ids: list[str] = list(record.conversation_ids.get("ids", []))
    moved_back = or_(
        Conversation.id.in_(conversation_ids or [""]),
        Conversation.identity_id.in_(identity_ids or [""]),
    )
    await session.execute(
        update(Conversation)
        .where(Conversation.contact_id == target.id, moved_back)
        .values(contact_id=source.id)
    )
    attributes = dict(target.attributes or {})
    for key, value in (record.filled_keys or {}).items():
        if key in attributes and attributes[key] == value:  # not edited since the merge
            del attributes[key]
    values: dict[str, Any] = {
        "attributes": attributes,
        "consent_state": record.target_before.get("consent_state", target.consent_state),
    }
    if record.target_before.get("name_filled") and target.display_name == record.source_before.get(
        "display_name"
    ):
        values["display_name"] = record.target_before.get("display_name")
    await session.execute(update(Contact).where(Contact.id == target.id).values(**values))
    await session.execute(
        update(Contact).where(Contact.id == source.id).values(merged_into_id=None)
    )
    outbox.record(
        session,
        ContactChanged(target.workspace_id, target.id, tuple(sorted(values))),
        ContactChanged(target.workspace_id, source.id, ("merged_into_id",)),
    )
    now = utcnow()
    await session.execute(
        update(ContactMerge)
        .where(ContactMerge.id == record.id)
        .values(undone_at=now, undone_by=actor.user.id if actor else None)
    )
    await audit.record(
        session,
        workspace_id,
        "contact.merge_undone",
        actor_id=actor.user.id if actor else None,
        subject_type="contact",
        subject_id=source.id,
        details={
            "merge_id": record.id,
            "target_id": target.id,
            "identity_ids": identity_ids,
            **({"token_id": token_id} if token_id else {}),
        },
    )
    return await session.get_one(ContactMerge, merge_id, populate_existing=True)


# ---------------------------------------------------------------- finding merge candidates


@dataclass(frozen=True)
class Candidate:
    """A contact the actor could merge into the current one."""

    id: str
    name: str | None
    addresses: tuple[str, ...]
    conversations: int


async def merge_candidates(
    session: AsyncSession, actor: Actor, contact_id: str, query: str
) -> list[Candidate]:
    """Contacts matching a name or address that the actor may merge with `contact_id`."""

    found = await find_contacts(session, actor.user.workspace_id, query)
    out: list[Candidate] = []
    for hit in found:
        if hit.id == contact_id or not await may_see_contact(session, actor, hit.id):
            continue
        count = len(await _conversations_of(session, hit.id))
        out.append(Candidate(hit.id, hit.name, hit.addresses, count))
    return out


async def candidate(session: AsyncSession, actor: Actor, contact_id: str) -> Candidate:
    """One contact as the merge confirmation shows it."""
    contact = await _contact(session, actor.user.workspace_id, contact_id)
    if contact.merged_into_id is not None:
        raise ContactRefused("merged_already", "this contact was merged into another already")
    if not await may_see_contact(session, actor, contact.id):
        raise Forbidden("you may not see all conversations of this contact")
    addresses = tuple(
        await session.scalars(
            select(ContactIdentity.address)
            .where(ContactIdentity.contact_id == contact.id)
            .order_by(ContactIdentity.created_at)
        )
    )
    count = len(await _conversations_of(session, contact.id))
    return Candidate(contact.id, contact.display_name, addresses, count)


# ---------------------------------------------------------------- attributes


def _clean_attribute(key: str, value: str) -> tuple[str, str]:
    k = unicodedata.normalize("NFC", key).strip()
    v = unicodedata.normalize("NFC", value).strip()
    if not k:
        raise ContactRefused("attribute_name_empty", "an attribute needs a name")
    if len(k) > MAX_KEY:
        raise ContactRefused(
            "attribute_name_too_long",
            "an attribute name has at most {max} characters",
            params={"max": MAX_KEY},
        )
    if len(v) > MAX_VALUE:
        raise ContactRefused(
            "attribute_value_too_long",
            "an attribute value has at most {max} characters",
            params={"max": MAX_VALUE},
        )
    if any(unicodedata.category(ch).startswith("C") for ch in k) or any(
        unicodedata.category(ch).startswith("C") and ch not in "\n\t" for ch in v
    ):
        raise ContactRefused("attribute_control", "attributes must not contain control characters")
    return k, v


async def _editable_contact(session: AsyncSession, actor: Actor, conversation_id: str) -> Contact:
    conv = await load_conversation(session, actor, conversation_id)
    if not may(actor, Action.EDIT_CONTACT, conv):
        raise Forbidden("you may not edit this contact")
    return await _contact(session, conv.workspace_id, conv.contact_id, lock=True)


async def set_attribute(
    session: AsyncSession, actor: Actor, conversation_id: str, key: str, value: str
) -> dict[str, Any]:
    """Set (or with an empty value remove) a custom attribute of the conversation's contact."""
    contact = await _editable_contact(session, actor, conversation_id)
    k, v = _clean_attribute(key, value)
    attributes = dict(contact.attributes or {})
    if not v:
        attributes.pop(k, None)
    else:
        if k not in attributes and len(attributes) >= MAX_ATTRIBUTES:
            raise ContactRefused(
                "too_many_attributes",
                "a contact has at most {max} attributes",
                params={"max": MAX_ATTRIBUTES},
            )
        attributes[k] = v
    await session.execute(
        update(Contact).where(Contact.id == contact.id).values(attributes=attributes)
    )
    outbox.record(session, ContactChanged(contact.workspace_id, contact.id, ("attributes",)))
    await audit.record(
        session,
        contact.workspace_id,
        "contact.attribute_set" if v else "contact.attribute_removed",
        actor_id=actor.user.id,
        subject_type="contact",
        subject_id=contact.id,
        details={"key": k},
    )
    return attributes


# ---------------------------------------------------------------- one timeline


async def contact_timeline(
    session: AsyncSession, actor: Actor, contact_id: str, limit: int = HISTORY_LIMIT
) -> list[dict[str, Any]]:
    """Messages and notes of every conversation of the contact the actor may see, oldest first."""
    convs = {
        c.id: c for c in await _conversations_of(session, contact_id) if may(actor, Action.VIEW, c)
    }
    if not convs:
        return []
    kinds = dict(
        (
            await session.execute(
                select(Conversation.id, ChannelRow.kind)
                .join(ChannelRow, ChannelRow.id == Conversation.channel_id)
                .where(Conversation.id.in_(list(convs)))
            )
        ).all()
    )
    messages = list(
        await session.scalars(
            select(Message)
            .where(Message.conversation_id.in_(list(convs)))
            .order_by(Message.created_at.desc(), Message.id.desc())
            .limit(limit)
        )
    )
    notes = (
        await session.execute(
            select(Note, User.display_name)
            .outerjoin(User, User.id == Note.author_id)
            .where(Note.conversation_id.in_(list(convs)))
            .order_by(Note.created_at.desc())
            .limit(limit)
        )
    ).all()
    contact = await session.get(Contact, contact_id)
    state = contact.consent_state if contact else None
    restricted = contact is not None and contact.restricted_at is not None
    timeline: list[dict[str, Any]] = [
        withhold_item(
            {
                "kind": "message",
                "message": m,
                "at": m.created_at,
                "channel_kind": kinds.get(m.conversation_id, ""),
                "conversation_id": m.conversation_id,
            },
            actor.withholding.reason(state, restricted, m.direction),
        )
        for m in messages
    ]
    timeline += [
        {
            "kind": "note",
            "body": n.body,
            "author": name,
            "at": n.created_at,
            "channel_kind": kinds.get(n.conversation_id, ""),
            "conversation_id": n.conversation_id,
        }
        for n, name in notes
    ]
    timeline.sort(key=lambda item: (item["at"], item["message"].id if "message" in item else ""))
    return timeline[-limit:]


# ---------------------------------------------------------------- reply channels


@dataclass(frozen=True)
class ReplyOption:
    """A channel identity of the contact a reply could go out on."""

    identity_id: str
    channel_kind: str
    channel_name: str
    address: str
    conversation_id: str | None
    last_inbound_at: datetime | None
    can_send: bool
    reason: str | None
    code: str | None = None  # why not: forbidden, disabled, unreachable or window_closed
    capabilities: Capabilities | None = None
    """What the channel can do (the reply box offers what fits)."""


def _window_reason(channel: ChannelRow, last_inbound_at: datetime | None) -> str | None:
    caps = channel_factory(channel.kind).capabilities
    probe = Conversation(last_inbound_at=last_inbound_at)
    try:
        check_window(
            caps, channel.kind, probe, OutboundContent(ContentKind.TEXT, "x"), SenderKind.AGENT
        )
    except OutboundRefused as refused:
        return refused.message
    return None


async def reply_options(
    session: AsyncSession, actor: Actor, conversation: Conversation
) -> list[ReplyOption]:
    """Every identity of the conversation's contact, whether a reply can go out there now."""
    rows = (
        await session.execute(
            select(ContactIdentity, ChannelRow, Conversation)
            .join(ChannelRow, ChannelRow.id == ContactIdentity.channel_id)
            .outerjoin(
                Conversation,
                (Conversation.identity_id == ContactIdentity.id)
                & (Conversation.channel_id == ChannelRow.id),
            )
            .where(ContactIdentity.contact_id == conversation.contact_id)
            .order_by(ChannelRow.kind, ContactIdentity.id)
        )
    ).all()
    out: list[ReplyOption] = []
    for identity, channel, conv in rows:
        reason: str | None = None
        code: str | None = None
        if conv is not None and not may(actor, Action.REPLY, conv):
            code, reason = "forbidden", "another agent or team handles this channel's conversation"
        elif not channel.enabled:
            code, reason = "disabled", "this channel is switched off"
        elif identity.unreachable:
            code, reason = (
                "unreachable",
                "the customer cannot be reached here (e.g. blocked the bot)",
            )
        else:
            reason = _window_reason(channel, conv.last_inbound_at if conv else None)
            code = "window_closed" if reason else None
        out.append(
            ReplyOption(
                identity_id=identity.id,
                channel_kind=channel.kind,
                channel_name=channel.name,
                address=identity.address,
                conversation_id=conv.id if conv else None,
                last_inbound_at=conv.last_inbound_at if conv else None,
                can_send=reason is None,
                reason=reason,
                code=code,
                capabilities=channel_factory(channel.kind).capabilities,
            )
        )
    return out


def default_option(options: list[ReplyOption], conversation: Conversation) -> ReplyOption | None:
    """The channel the customer last wrote on, if a reply can go there; else this conversation's."""
    usable = [o for o in options if o.can_send and o.last_inbound_at is not None]
    if usable:
        return max(usable, key=lambda o: (o.last_inbound_at or datetime.min, o.identity_id))
    return next((o for o in options if o.identity_id == conversation.identity_id), None)


def preselected_option(
    options: list[ReplyOption], conversation: Conversation
) -> ReplyOption | None:
    """What the reply box offers first: the default, or else a channel that can send now."""
    chosen = default_option(options, conversation)
    if chosen is not None and chosen.can_send:
        return chosen
    return next((o for o in options if o.can_send), chosen)


async def reply_target(
    session: AsyncSession, actor: Actor, conversation: Conversation, identity_id: str | None
) -> Conversation:
    """The conversation a reply goes into: the picked identity's, found or opened."""
    options = await reply_options(session, actor, conversation)
    if identity_id is None:
        chosen = default_option(options, conversation)
        if chosen is None or chosen.conversation_id is None:
            return conversation
    else:
        found = next((o for o in options if o.identity_id == identity_id), None)
        if found is None:
            raise ContactRefused(
                "identity_not_of_contact",
                "this channel identity does not belong to the conversation's contact",
            )
        chosen = found
    if chosen.identity_id == conversation.identity_id:
        return conversation
    if chosen.code == "forbidden":
        raise Forbidden("you may not reply in that channel's conversation")
    if chosen.code == "window_closed":
        raise OutboundRefused("window_closed", chosen.reason or "the channel's window is closed")
    if not chosen.can_send:
        raise OutboundRefused("channel_unavailable", f"{chosen.channel_kind}: {chosen.reason}")
    if chosen.conversation_id is not None:
        return await session.get_one(Conversation, chosen.conversation_id)
    return await _open_conversation(session, conversation, chosen.identity_id)


async def _open_conversation(
    session: AsyncSession, source: Conversation, identity_id: str
) -> Conversation:
    """A new conversation on another identity, handled by the same team and agent."""
    identity = await session.get_one(ContactIdentity, identity_id)
    channel = await session.get_one(ChannelRow, identity.channel_id)
    conv_id = await conversation_for(
        session,
        ChannelRef(channel.id, channel.workspace_id, channel.kind),
        identity.id,
        identity.contact_id,
    )
    before = await session.scalar(
        select(Conversation.assignee_id).where(Conversation.id == conv_id)
    )
    handed = await session.execute(
        update(Conversation)
        .where(Conversation.id == conv_id, Conversation.last_message_at.is_(None))
        .values(team_id=source.team_id, assignee_id=source.assignee_id)
        .returning(Conversation.workspace_id)
    )
    if before != source.assignee_id:
        outbox.record(
            session,
            *(
                ConversationAssigned(ws, conv_id, source.assignee_id, "agent")
                for (ws,) in handed.all()
            ),
        )
    return await session.get_one(Conversation, conv_id, populate_existing=True)


# ---------------------------------------------------------------- the contact panel


@dataclass(frozen=True)
class PastConversation:
    """A conversation of the contact other than the one open."""

    id: str
    channel_kind: str
    status: str
    last_message_at: datetime | None
    messages: int


@dataclass(frozen=True)
class IdentityRow:
    """A contact's address on one channel."""

    id: str
    channel_kind: str
    channel_name: str
    address: str
    display_name: str | None
    unreachable: bool


@dataclass(frozen=True)
class MergeRow:
    """A merge into this contact that can be undone."""

    id: str
    source_id: str
    source_name: str | None
    at: datetime


@dataclass
class ContactPanel:
    """What the contact panel next to a conversation shows."""

    contact_id: str
    name: str | None
    consent_state: str
    consent_events: list[tuple[str, str | None, datetime]] = field(default_factory=list)
    identities: list[IdentityRow] = field(default_factory=list)
    attributes: dict[str, Any] = field(default_factory=dict)
    past: list[PastConversation] = field(default_factory=list)
    hidden_past: int = 0
    merges: list[MergeRow] = field(default_factory=list)
    can_edit: bool = False
    can_merge: bool = False
    max_attributes: int = MAX_ATTRIBUTES


async def contact_panel(
    session: AsyncSession, actor: Actor, conversation: Conversation
) -> ContactPanel:
    """Identities on all channels, attributes, consent, past conversations, undoable merges."""
    contact = await session.get_one(Contact, conversation.contact_id)
    identities = [
        IdentityRow(i.id, ch.kind, ch.name, i.address, i.display_name, i.unreachable)
        for i, ch in (
            await session.execute(
                select(ContactIdentity, ChannelRow)
                .join(ChannelRow, ChannelRow.id == ContactIdentity.channel_id)
                .where(ContactIdentity.contact_id == contact.id)
                .order_by(ChannelRow.kind, ContactIdentity.created_at)
            )
        ).all()
    ]
    counts = (
        select(Message.conversation_id, func.count().label("n"))
        .where(
            Message.conversation_id.in_(
                select(Conversation.id).where(Conversation.contact_id == contact.id)
            )
        )
        .group_by(Message.conversation_id)
        .subquery()
    )
    past_rows = (
        await session.execute(
            select(
                Conversation.id,
                ChannelRow.kind,
                Conversation.status,
                Conversation.last_message_at,
                counts.c.n,
            )
            .join(ChannelRow, ChannelRow.id == Conversation.channel_id)
            .outerjoin(counts, counts.c.conversation_id == Conversation.id)
            .where(Conversation.contact_id == contact.id, Conversation.id != conversation.id)
            .order_by(Conversation.last_message_at.desc().nulls_last(), Conversation.id.desc())
        )
    ).all()
    all_convs = await _conversations_of(session, contact.id)
    seen = {c.id for c in all_convs if may(actor, Action.VIEW, c)}
    past = [PastConversation(r[0], r[1], r[2], r[3], r[4] or 0) for r in past_rows if r[0] in seen]
    events = (
        await session.execute(
            select(ConsentEvent.action, ChannelRow.kind, ConsentEvent.occurred_at)
            .outerjoin(ChannelRow, ChannelRow.id == ConsentEvent.channel_id)
            .where(
                ConsentEvent.workspace_id == contact.workspace_id,
                ConsentEvent.contact_id.in_(
                    select(Contact.id).where(
                        or_(Contact.id == contact.id, Contact.merged_into_id == contact.id)
                    )
                ),
            )
            .order_by(ConsentEvent.id.desc())
            .limit(10)
        )
    ).all()
    merges = [
        MergeRow(m.id, m.source_id, name, m.created_at)
        for m, name in (
            await session.execute(
                select(ContactMerge, Contact.display_name)
                .join(Contact, Contact.id == ContactMerge.source_id)
                .where(ContactMerge.target_id == contact.id, ContactMerge.undone_at.is_(None))
                .order_by(ContactMerge.created_at.desc())
            )
        ).all()
    ]
    everything_visible = len(seen) == len(all_convs)
    return ContactPanel(
        contact_id=contact.id,
        name=contact.display_name,
        consent_state=contact.consent_state,
        consent_events=[(a, k, t) for a, k, t in events],
        identities=identities,
        attributes=dict(contact.attributes or {}),
        past=past,
        hidden_past=len(past_rows) - len(past),
        merges=merges,
        can_edit=may(actor, Action.EDIT_CONTACT, conversation),
        can_merge=everything_visible,
    )
