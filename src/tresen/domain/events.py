"""Domain events: the typed announcement of every state change (a public, versioned contract).

Each class is one event type: its docstring says when it is written, `ABOUT` says more, and each
field carries its meaning; `docs/events.md` is generated from them (`python -m tresen.docsgen`).
Events carry ids, states and kinds only, never texts, names or addresses. A change of a field's
meaning, or a field removed, is a new `VERSION`; a field (or a value of a field) added is not.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

_NO_DEFAULT: Any = object()


def doc(meaning: str, default: Any = _NO_DEFAULT) -> Any:
    """A dataclass field that says what it means (the events page shows it)."""
    if default is _NO_DEFAULT:
        return field(metadata={"doc": meaning})
    return field(default=default, metadata={"doc": meaning})


@dataclass(frozen=True)
class DomainEvent:
    """Base of all event types: `TYPE` names it, `VERSION` its payload's shape."""

    TYPE: ClassVar[str] = ""
    VERSION: ClassVar[int] = 1
    ABOUT: ClassVar[str] = ""
    """When the event is written and by what (the events page shows it below the type)."""

    workspace_id: str

    @property
    def lane(self) -> str:
        """What the event is ordered with: its conversation, else its contact, else its workspace."""
        for name in ("conversation_id", "contact_id"):
            value = getattr(self, name, None)
            if value:
                return str(value)
        return self.workspace_id

    @property
    def conversation(self) -> str | None:
        """The conversation the event is about, if any."""
        value = getattr(self, "conversation_id", None)
        return str(value) if value else None

    def payload(self) -> dict[str, Any]:
        """The event's fields without the workspace (stored as the row's payload)."""
        data = asdict(self)
        data.pop("workspace_id")
        return data


@dataclass(frozen=True)
class MessageReceived(DomainEvent):
    """A customer's message was stored (once; duplicates of a webhook announce nothing)."""

    TYPE: ClassVar[str] = "message.received"
    ABOUT: ClassVar[str] = (
        "A customer's message was stored, once: a retried webhook announces nothing. Written by "
        "`pipeline/receive` for every channel (webhooks, web chat, mail, XMPP)."
    )
    message_id: str = doc("the stored message")
    conversation_id: str = doc("its conversation")
    contact_id: str = doc("the contact who wrote")
    channel_id: str = doc("the channel it came in on")
    content_kind: str = doc(
        "`text`, `media`, `location`, `contacts`, `interactive`, `button`, `template`, "
        "`reaction` or `unsupported`"
    )


@dataclass(frozen=True)
class MessageQueued(DomainEvent):
    """An outbound message (agent, bot, API, system) was stored with its send job."""

    TYPE: ClassVar[str] = "message.queued"
    ABOUT: ClassVar[str] = (
        "A single outbound message was stored together with its send job (agent reply, bot "
        "answer, auto-reply, consent question, topic confirmation, API send, campaign test "
        "send). Its outcome follows as `message.status_changed`. Campaign sends are announced "
        "per campaign (`campaign.state_changed`), not per message."
    )
    message_id: str = doc("the outbound message")
    conversation_id: str = doc("its conversation")
    channel_id: str = doc("the channel it goes out on")
    sender_kind: str = doc(
        "`agent` (also API sends), `bot` or `system` (consent question, confirmations, test sends)"
    )


@dataclass(frozen=True)
class MessageStatusChanged(DomainEvent):
    """An outbound message moved forward: sent, delivered, read, failed or given up."""

    TYPE: ClassVar[str] = "message.status_changed"
    ABOUT: ClassVar[str] = (
        "A single outbound message moved forward: the send job recorded it sent, failed (the "
        "provider refused it, the contact unsubscribed or was restricted meanwhile, the "
        "messaging window closed) or gave up after its retries; a provider status; a read "
        "receipt of the web chat."
    )
    conversation_id: str = doc("the conversation")
    state: str = doc(
        "the new state: `sent`, `delivered`, `read`, `failed` or `dead` (gave up after retries)"
    )
    message_id: str | None = doc(
        "the message; empty when a read watermark moved several messages of the conversation "
        "at once",
        None,
    )


@dataclass(frozen=True)
class ConversationCreated(DomainEvent):
    """A contact wrote on a channel for the first time (or was first written to)."""

    TYPE: ClassVar[str] = "conversation.created"
    ABOUT: ClassVar[str] = (
        "A contact wrote on a channel for the first time, or was first written to there."
    )
    conversation_id: str = doc("the new conversation")
    contact_id: str = doc("its contact")
    channel_id: str = doc("its channel")


@dataclass(frozen=True)
class ConversationAssigned(DomainEvent):
    """A conversation got another agent (None: it went back to the queue)."""

    TYPE: ClassVar[str] = "conversation.assigned"
    ABOUT: ClassVar[str] = "A conversation got another agent, or went back to the queue."
    conversation_id: str = doc("the conversation")
    agent_id: str | None = doc("the agent (user id) now holding it; empty: back in the queue")
    by: str = doc(
        "`agent` (someone took it, or it followed its agent to another channel of the contact), "
        "`routing` (routing gave it out or took it back) or `admin` (its agent was removed)"
    )


@dataclass(frozen=True)
class ConversationStatusChanged(DomainEvent):
    """A conversation was opened, set pending, snoozed or resolved, or reopened by a message."""

    TYPE: ClassVar[str] = "conversation.status_changed"
    ABOUT: ClassVar[str] = (
        "An agent opened, set pending, snoozed or resolved a conversation, or a customer's new "
        "message reopened a resolved one (written with its `message.received`)."
    )
    conversation_id: str = doc("the conversation")
    status: str = doc("`open`, `pending`, `snoozed` or `resolved`")
    by: str = doc(
        "`agent` (the inbox or the API) or `message` (a new message reopened it)", "agent"
    )


@dataclass(frozen=True)
class ConversationDeleted(DomainEvent):
    """A resolved conversation and its messages were deleted when its retention period ran out."""

    TYPE: ClassVar[str] = "conversation.deleted"
    ABOUT: ClassVar[str] = (
        "A resolved conversation and its messages were deleted because the workspace's "
        "retention period for conversations ran out. (Erasing a contact deletes their "
        "conversations with one `contact.erased` instead.)"
    )
    conversation_id: str = doc("the deleted conversation (it no longer resolves)")
    reason: str = doc("`retention`")


@dataclass(frozen=True)
class ConversationLabelAdded(DomainEvent):
    """A label was put on a conversation."""

    TYPE: ClassVar[str] = "conversation.label_added"
    ABOUT: ClassVar[str] = (
        "An agent put a label on a conversation (not written when it was there already)."
    )
    conversation_id: str = doc("the conversation")
    label_id: str = doc("the label")


@dataclass(frozen=True)
class ConversationLabelRemoved(DomainEvent):
    """A label was taken off a conversation (also when the label itself was deleted)."""

    TYPE: ClassVar[str] = "conversation.label_removed"
    ABOUT: ClassVar[str] = (
        "An agent took a label off a conversation, or an admin deleted the label (one event per "
        "conversation that had it)."
    )
    conversation_id: str = doc("the conversation")
    label_id: str = doc("the label")


@dataclass(frozen=True)
class NoteAdded(DomainEvent):
    """A private note was added to a conversation."""

    TYPE: ClassVar[str] = "note.added"
    ABOUT: ClassVar[str] = (
        "A private note (never sent to the customer) was added to a conversation, by an agent "
        "or by tresen itself; written wherever a note is stored."
    )
    conversation_id: str = doc("the conversation")
    note_id: str = doc("the note")
    author_kind: str = doc(
        "`agent`, or `system` when no person wrote it (the bot's hand-over summary, which comes "
        "with a `bot.handed_over`, or a note of the consent step)"
    )


@dataclass(frozen=True)
class BotHandedOver(DomainEvent):
    """The bot handed a conversation to the team."""

    TYPE: ClassVar[str] = "bot.handed_over"
    ABOUT: ClassVar[str] = "The bot handed a conversation to the team (it wrote a hand-over note)."
    conversation_id: str = doc("the conversation")
    reason: str = doc("why, e.g. `asked`, `not_understood`, `frustration`, `media`, `cannot_send`")


@dataclass(frozen=True)
class ContactChanged(DomainEvent):
    """A contact's profile was edited (names of the changed fields only, never their values)."""

    TYPE: ClassVar[str] = "contact.changed"
    ABOUT: ClassVar[str] = (
        "A contact's profile changed: an attribute set or removed, a merge filled or undid "
        "fields, processing restricted or released (Art. 18 GDPR)."
    )
    contact_id: str = doc("the contact")
    fields: tuple[str, ...] = doc(
        "the names of the changed columns (`attributes`, `consent_state`, `display_name`, "
        "`merged_into_id`, `restricted_at`), never their values"
    )


@dataclass(frozen=True)
class ContactsMerged(DomainEvent):
    """Another contact was merged into `contact_id` (it is gone; its conversations moved)."""

    TYPE: ClassVar[str] = "contact.merged"
    ABOUT: ClassVar[str] = (
        "Another contact was merged into this one: its identities and conversations moved here."
    )
    contact_id: str = doc("the contact that stays")
    merged_contact_id: str = doc(
        "the contact merged into it (kept, pointing here, until the merge is undone)"
    )


@dataclass(frozen=True)
class ContactErased(DomainEvent):
    """A contact and their data were erased (Art. 17); the id no longer resolves."""

    TYPE: ClassVar[str] = "contact.erased"
    ABOUT: ClassVar[str] = (
        "A contact and their data were erased (Art. 17 GDPR); the id no longer resolves."
    )
    contact_id: str = doc("the erased contact")


@dataclass(frozen=True)
class ConsentChanged(DomainEvent):
    """A consent record was written: asked, given, refused or withdrawn, for one purpose."""

    TYPE: ClassVar[str] = "consent.changed"
    ABOUT: ClassVar[str] = (
        "A consent record was written (the proof kept under Art. 7 GDPR): written wherever "
        "consent is asked, given, refused or withdrawn (first-contact question, opt-in "
        "confirmations, STOP, erasure). The contact's `consent_state` changes with it."
    )
    contact_id: str = doc("the contact")
    purpose: str = doc(
        "what it is about: `service_conversation`, `link_tracking` or a topic's purpose"
    )
    action: str = doc("`requested`, `granted`, `refused` or `withdrawn`")


@dataclass(frozen=True)
class SubscriptionChanged(DomainEvent):
    """A contact's subscription to a topic changed state (pending, confirmed, withdrawn, purged)."""

    TYPE: ClassVar[str] = "subscription.changed"
    ABOUT: ClassVar[str] = (
        "A subscription to a topic was requested, confirmed (also by an import) or withdrawn, "
        "or a request never confirmed was purged after `TRESEN_OPTIN_PURGE_DAYS` (the row is "
        "gone)."
    )
    contact_id: str = doc("the subscriber")
    topic_id: str = doc("the topic")
    state: str = doc("`pending`, `confirmed`, `withdrawn` or `purged`")


@dataclass(frozen=True)
class CampaignStateChanged(DomainEvent):
    """A campaign was created, scheduled, started, paused, finished or cancelled."""

    TYPE: ClassVar[str] = "campaign.state_changed"
    ABOUT: ClassVar[str] = (
        "A campaign was created (as a draft), scheduled, started, set running (its audience "
        "fixed), paused, resumed, finished or cancelled."
    )
    campaign_id: str = doc("the campaign")
    state: str = doc("`draft`, `scheduled`, `starting`, `running`, `paused`, `done` or `cancelled`")


EVENT_TYPES: dict[str, type[DomainEvent]] = {
    cls.TYPE: cls
    for cls in (
        MessageReceived,
        MessageQueued,
        MessageStatusChanged,
        ConversationCreated,
        ConversationAssigned,
        ConversationStatusChanged,
        ConversationDeleted,
        ConversationLabelAdded,
        ConversationLabelRemoved,
        NoteAdded,
        BotHandedOver,
        ContactChanged,
        ContactsMerged,
        ContactErased,
        ConsentChanged,
        SubscriptionChanged,
        CampaignStateChanged,
    )
}
"""Every event type by its name (what `docs/events.md` documents, and a test compares)."""
