"""What the inbox pages show and do: lists, a conversation's timeline, replies, notes, assignment."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from tresen.bot.live import reset
from tresen.channels.messenger import STANDBY
from tresen.channels.registry import channel_factory
from tresen.db import outbox
from tresen.db.tables import (
    BotConversation,
    CannedReply,
    ChannelRow,
    Contact,
    ContactIdentity,
    Conversation,
    Media,
    Message,
    MessageTemplate,
    Note,
    User,
    Workspace,
)
from tresen.db.types import utcnow
from tresen.domain.conversation import ConversationStatus, window_open
from tresen.domain.errors import DomainError
from tresen.domain.events import ConversationAssigned, ConversationStatusChanged
from tresen.domain.ids import new_id
from tresen.domain.message import ContentKind, SenderKind
from tresen.inbox import canned as canned_replies
from tresen.inbox import contacts, labels, routing

# Re-exported: the web layer reaches these through the service.
from tresen.inbox.access import Forbidden as Forbidden
from tresen.inbox.access import NotFound as NotFound
from tresen.inbox.access import load_conversation as load_conversation
from tresen.inbox.access import withhold_item as withhold_item
from tresen.inbox.contacts import reply_target
from tresen.inbox.labels import labels_for
from tresen.inbox.permissions import Action, Actor, may, visible
from tresen.pipeline import templates
from tresen.pipeline.outbound import OutboundContent, OutboundRefused, queue_message
from tresen.privacy.visibility import REFUSED, WAITING_FOR_CONSENT

if TYPE_CHECKING:
    from tresen.inbox.contacts import ContactPanel, ReplyOption
    from tresen.inbox.labels import LabelView

VIEWS = ("mine", "unassigned", "all")


class NoteRefused(DomainError):
    """A note that cannot be added (empty or too long)."""


@dataclass(frozen=True)
class ListRow:
    """One line of the conversation list."""

    id: str
    name: str | None
    address: str
    channel_kind: str
    last_message_at: datetime | None
    assignee: str | None
    preview: str | None
    labels: tuple[LabelView, ...] = ()
    withheld: str | None = None
    """Why the preview is hidden: "consent" (waiting for consent) or "restricted"."""


@dataclass
class ConversationView:
    """Everything the conversation pane shows."""

    conversation: Conversation
    contact_name: str | None
    address: str
    channel_kind: str
    assignee_name: str | None
    window_open: bool
    timeline: list[dict[str, Any]]
    canned: list[CannedReply]
    can_reply: bool
    can_take: bool
    business: str = ""
    language: str = ""
    """The workspace's language (a canned reply's text is picked by the contact's, else this)."""
    first_name: str = field(default="")
    identities: list[tuple[str, str, bool]] = field(default_factory=list)
    attributes: dict[str, Any] = field(default_factory=dict)
    earlier: list[tuple[str, str, datetime | None]] = field(default_factory=list)
    templates: list[tuple[MessageTemplate, int]] = field(default_factory=list)
    """Approved templates of the channel with how many values each needs (window closed)."""
    panel: ContactPanel | None = None
    labels: list[LabelView] = field(default_factory=list)
    workspace_labels: list[LabelView] = field(default_factory=list)
    reply_options: list[ReplyOption] = field(default_factory=list)
    reply_default: str | None = None  # the identity a reply goes to unless the agent picks
    reply_open: bool = False  # some channel of the contact can take a free reply now
    all_channels: bool = False  # the timeline shows every conversation of the contact
    bot_handover: tuple[str, str, datetime] | None = None
    """(reason, summary, when) while the bot has handed this conversation over."""
    withheld: str | None = None
    """"consent" while the customer has not agreed, "restricted" under Art. 18; else None."""
    thread_elsewhere: bool = False
    thread_owner: str | None = None
    """The app that owns the thread when another one does: a Meta app id, or "standby"."""
    consent_refused: bool = False
    """The customer said no to the privacy notice: nothing may be sent to them."""
    """The customer's last message came on Meta's standby channel: another app owns the thread."""


async def conversation_list(
    session: AsyncSession, actor: Actor, view: str, limit: int = 100
) -> list[ListRow]:
    """Conversations the actor may see, newest activity first."""
    assignee = aliased(User)
    last_body = (
        select(Message.body)
        .where(Message.conversation_id == Conversation.id)
        .order_by(Message.created_at.desc())
        .limit(1)
        .scalar_subquery()
    )
    stmt = (
        select(
            Conversation.id,
            func.coalesce(ContactIdentity.display_name, Contact.display_name),
            ContactIdentity.address,
            ChannelRow.kind,
            Conversation.last_message_at,
            assignee.display_name,
            last_body,
            Contact.consent_state,
            Contact.restricted_at,
        )
        .join(ContactIdentity, ContactIdentity.id == Conversation.identity_id)
        .join(Contact, Contact.id == Conversation.contact_id)
        .join(ChannelRow, ChannelRow.id == Conversation.channel_id)
        .outerjoin(assignee, assignee.id == Conversation.assignee_id)
        .where(visible(actor))
        .order_by(Conversation.last_message_at.desc().nulls_last(), Conversation.id.desc())
        .limit(limit)
    )
    if view == "mine":
        stmt = stmt.where(Conversation.assignee_id == actor.user.id)
    elif view == "unassigned":
        stmt = stmt.where(Conversation.assignee_id.is_(None))
    if view != "all":
        stmt = stmt.where(Conversation.status != ConversationStatus.RESOLVED.value)
    rows = (await session.execute(stmt)).all()

    labelled = await labels_for(session, [row[0] for row in rows])
    out = []
    for cid, name, address, kind, at, assignee_name, preview, state, restricted_at in rows:
        withheld = actor.withholding.conversation_reason(state, restricted_at is not None)
        if withheld == WAITING_FOR_CONSENT and state == "refused":
            withheld = REFUSED  # said no: nothing is waiting any more
        out.append(
            ListRow(
                id=cid,
                name=name,
                address=address,
                channel_kind=kind,
                last_message_at=at,
                assignee=assignee_name,
                preview=None if withheld else preview,
                labels=tuple(labelled.get(cid, ())),
                withheld=withheld,
            )
        )
    return out


async def media_of(session: AsyncSession, message_ids: list[str]) -> dict[str, list[Media]]:
    """The files of these messages, per message, in arrival order."""
    found: dict[str, list[Media]] = {}
    if not message_ids:
        return found
    for row in await session.scalars(
        select(Media).where(Media.message_id.in_(message_ids)).order_by(Media.id)
    ):
        found.setdefault(row.message_id, []).append(row)
    return found


async def conversation_view(
    session: AsyncSession, actor: Actor, conversation_id: str
) -> ConversationView:
    """The conversation pane: contact, window, messages and notes in order, canned replies."""
    conv = await load_conversation(session, actor, conversation_id)
    identity = await session.get_one(ContactIdentity, conv.identity_id)
    contact = await session.get_one(Contact, conv.contact_id)
    channel = await session.get_one(ChannelRow, conv.channel_id)
    assignee = await session.get(User, conv.assignee_id) if conv.assignee_id else None
    messages = list(
        await session.scalars(
            select(Message)
            .where(Message.conversation_id == conv.id)
            .order_by(Message.id.desc())
            .limit(200)
        )
    )
    notes = (
        await session.execute(
            select(Note, User.display_name)
            .outerjoin(User, User.id == Note.author_id)
            .where(Note.conversation_id == conv.id)
            .order_by(Note.id.desc())
            .limit(200)
        )
    ).all()
    files = await media_of(session, [m.id for m in messages])
    restricted = contact.restricted_at is not None
    timeline: list[dict[str, Any]] = [
        withhold_item(
            {"kind": "message", "message": m, "at": m.created_at, "media": files.get(m.id, [])},
            actor.withholding.reason(contact.consent_state, restricted, m.direction),
        )
        for m in messages
    ]
    timeline += [
        {"kind": "note", "body": n.body, "author": name, "at": n.created_at} for n, name in notes
    ]
    timeline.sort(key=lambda item: item["at"])
    canned = await canned_replies.replies(session, actor)
    caps = channel_factory(channel.kind).capabilities
    workspace = await session.get_one(Workspace, conv.workspace_id)
    identities = (
        await session.execute(
            select(ChannelRow.kind, ContactIdentity.address, ContactIdentity.unreachable)
            .join(ChannelRow, ChannelRow.id == ContactIdentity.channel_id)
            .where(ContactIdentity.contact_id == contact.id)
            .order_by(ChannelRow.kind)
        )
    ).all()
    earlier = (
        await session.execute(
            select(Conversation.id, ChannelRow.kind, Conversation.last_message_at)
            .join(ChannelRow, ChannelRow.id == Conversation.channel_id)
            .where(
                Conversation.contact_id == contact.id, Conversation.id != conv.id, visible(actor)
            )
            .order_by(Conversation.last_message_at.desc())
            .limit(20)
        )
    ).all()
    name = identity.display_name or contact.display_name
    withheld = actor.withholding.conversation_reason(contact.consent_state, restricted)
    memory = await session.get(BotConversation, conv.id) if withheld is None else None
    handover = (
        (memory.handover_reason or "", memory.handover_summary or "", memory.handed_over_at)
        if memory is not None and memory.handed_over_at is not None
        else None
    )
    view = ConversationView(
        conversation=conv,
        contact_name=name,
        address=identity.address,
        channel_kind=channel.kind,
        assignee_name=assignee.display_name if assignee else None,
        window_open=window_open(conv.last_inbound_at, caps.window, utcnow()),
        timeline=timeline,
        canned=canned,
        can_reply=may(actor, Action.REPLY, conv),
        can_take=may(actor, Action.TAKE, conv) and conv.assignee_id != actor.user.id,
        business=workspace.name,
        language=str((workspace.settings or {}).get("language") or ""),
        first_name=(name or "").split(" ")[0],
        identities=[(k, a, u) for k, a, u in identities],
        attributes=dict(contact.attributes or {}),
        earlier=[(i, k, t) for i, k, t in earlier],
        templates=await _templates_offered(session, channel, caps, conv),
        bot_handover=handover,
        withheld=withheld,
        thread_elsewhere=_thread_elsewhere(conv, messages),
        thread_owner=conv.thread_owner,
        consent_refused=contact.consent_state == "refused",
    )
    await _contact_extras(session, actor, view)
    return view


def _thread_elsewhere(conv: Conversation, newest_first: list[Message]) -> bool:
    """Whether another app owns the thread: as the handover events said, else as the customer's
    last message says (only read along)."""
    if conv.thread_owner is not None or conv.thread_changed_at is not None:
        return conv.thread_owner is not None
    last = next((m for m in newest_first if m.direction == "inbound"), None)
    return last is not None and (last.payload or {}).get(STANDBY) is True


async def _contact_extras(session: AsyncSession, actor: Actor, view: ConversationView) -> None:
    """The contact panel, labels and reply channels of a conversation view."""

    conv = view.conversation
    view.panel = await contacts.contact_panel(session, actor, conv)
    view.labels = (await labels.labels_for(session, [conv.id])).get(conv.id, [])
    view.workspace_labels = await labels.workspace_labels(session, conv.workspace_id)
    view.reply_options = await contacts.reply_options(session, actor, conv)
    chosen = contacts.preselected_option(view.reply_options, conv)
    view.reply_default = chosen.identity_id if chosen else None
    view.reply_open = (
        not view.consent_refused
        and not view.thread_elsewhere
        and (any(o.can_send for o in view.reply_options) or view.window_open)
    )


async def _templates_offered(
    session: AsyncSession, channel: ChannelRow, caps: Any, conv: Conversation
) -> list[tuple[MessageTemplate, int]]:
    if not caps.templates or window_open(conv.last_inbound_at, caps.window, utcnow()):
        return []
    return [(t, templates.variables(t.body)) for t in await templates.approved(session, channel.id)]


def canned_values(actor: Actor, view: ConversationView) -> dict[str, str]:
    """What the variables of a canned reply stand for in this conversation."""
    return {
        "first_name": view.first_name,
        "name": view.contact_name or "",
        "agent_name": actor.user.display_name,
        "business": view.business,
    }


async def expand_canned(
    session: AsyncSession, actor: Actor, body: str, view: ConversationView
) -> str:
    """Turn "/shortcut" into its canned reply with the variables filled in."""
    used = await canned_replies.find(session, actor, body)
    if used is None:
        return body
    language = str(view.attributes.get("language") or view.language or "")
    return canned_replies.fill(used, language, canned_values(actor, view))


async def reply(
    session: AsyncSession,
    actor: Actor,
    conversation_id: str,
    body: str,
    identity_id: str | None = None,
    files: canned_replies.Files | None = None,
) -> Message:
    """Queue an agent's reply (validated and window-checked like every send).

    It goes out on the identity the agent picked (another channel of the same contact: its
    conversation is found or opened), else on the channel the customer last wrote on. A
    "/shortcut" sends that canned reply (and its file, when `files` says where files live).
    """

    view = await conversation_view(session, actor, conversation_id)
    if not view.can_reply:
        raise Forbidden("you may not reply in this conversation")
    used = await canned_replies.find(session, actor, body)
    text = await expand_canned(session, actor, body, view)
    target = await reply_target(session, actor, view.conversation, identity_id)
    channel = await session.get_one(ChannelRow, target.channel_id)
    sent = await queue_message(
        session,
        target,
        channel,
        OutboundContent(ContentKind.TEXT, text),
        sender_kind=SenderKind.AGENT,
    )
    if used is not None:
        await canned_replies.count_use(session, used.id)
        if used.attachment and files is not None:
            if not channel_factory(channel.kind).capabilities.media:
                raise OutboundRefused(
                    "no_media", "{kind} cannot send files", params={"kind": channel.kind}
                )
            await canned_replies.send_attachment(session, target, channel, used, files)
    return sent


async def send_template(
    session: AsyncSession, actor: Actor, conversation_id: str, template_id: str, values: list[str]
) -> Message:
    """Queue an approved template with the agent's values (the way back in a closed window)."""
    conv = await load_conversation(session, actor, conversation_id)
    if not may(actor, Action.REPLY, conv):
        raise Forbidden("you may not reply in this conversation")
    template = await session.get(MessageTemplate, template_id)
    if template is None or template.channel_id != conv.channel_id:
        raise OutboundRefused("template_unknown", "this channel has no such template")
    channel = await session.get_one(ChannelRow, conv.channel_id)
    return await queue_message(
        session, conv, channel, templates.content(template, values), sender_kind=SenderKind.AGENT
    )


async def add_note(session: AsyncSession, actor: Actor, conversation_id: str, body: str) -> Note:
    """A private note; it never reaches the customer."""
    conv = await load_conversation(session, actor, conversation_id)
    if not may(actor, Action.NOTE, conv):
        raise Forbidden("you may not add notes here")
    text = body.strip()
    if not text:
        raise NoteRefused("note_empty", "a note must not be empty")
    if len(text) > 4000:
        raise NoteRefused(
            "note_too_long", "a note has at most {max} characters", params={"max": 4000}
        )
    note = Note(
        id=new_id(),
        workspace_id=conv.workspace_id,
        conversation_id=conv.id,
        author_id=actor.user.id,
        body=text,
        created_at=utcnow(),
    )
    session.add(note)
    return note


async def take(session: AsyncSession, actor: Actor, conversation_id: str) -> None:
    """Assign the conversation to the actor."""
    conv = await load_conversation(session, actor, conversation_id)
    if not may(actor, Action.TAKE, conv):
        raise Forbidden("you may not take this conversation")
    # Read before the UPDATE: the ORM writes the new values into `conv` as well.
    assigned_before = conv.assignee_id
    await session.execute(
        update(Conversation)
        .where(Conversation.id == conv.id)
        .values(assignee_id=actor.user.id, queued_at=None)
    )
    if actor.user.availability == routing.Availability.OFFLINE.value:
        # Taking shows the agent is here. Offline, the customer's next message would hand the
        # conversation back to the queue; away keeps it and routes nothing new to them.
        await routing.on_availability_change(session, actor.user, routing.Availability.AWAY.value)
    if assigned_before != actor.user.id:
        outbox.record(
            session, ConversationAssigned(conv.workspace_id, conv.id, actor.user.id, "agent")
        )


async def set_status(
    session: AsyncSession, actor: Actor, conversation_id: str, status: str
) -> list[str]:
    """Open, pending, snoozed or resolved; the conversations routing gave out in the freed slot."""
    conv = await load_conversation(session, actor, conversation_id)
    if not may(actor, Action.SET_STATUS, conv):
        raise Forbidden("you may not change this conversation")
    try:
        value = ConversationStatus(status)
    except ValueError as exc:
        raise ValueError(f"unknown status {status!r}") from exc
    active = value.value in routing.ACTIVE
    held_a_slot = conv.assignee_id is not None and conv.status in routing.ACTIVE
    assignee_id = conv.assignee_id
    status_before = conv.status  # read before the UPDATE: the ORM writes the new one into `conv`
    await session.execute(
        update(Conversation)
        .where(Conversation.id == conv.id)
        .values(status=value.value, **({} if active else {"queued_at": None}))
    )
    if status_before != value.value:
        outbox.record(session, ConversationStatusChanged(conv.workspace_id, conv.id, value.value))
    if value == ConversationStatus.RESOLVED:
        await reset(session, conv.id)
    if active or not held_a_slot or assignee_id is None:
        return []
    return await routing.fill(session, assignee_id)
