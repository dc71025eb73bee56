"""SQLAlchemy tables. Every row a business owns carries its workspace id."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from tresen.db.types import (
    EncryptedJson,
    EncryptedText,
    JsonType,
    SecretFieldsJson,
    UTCDateTime,
    utcnow,
)
from tresen.domain.ids import new_id

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Declarative base with stable constraint names."""

    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {dict[str, Any]: JsonType, datetime: UTCDateTime}


def _id() -> Mapped[str]:
    return mapped_column(String(26), primary_key=True, default=new_id)


def _workspace() -> Mapped[str]:
    return mapped_column(String(26), ForeignKey("workspaces.id", ondelete="CASCADE"), index=True)


class Workspace(Base):
    """One business hosted by this install."""

    __tablename__ = "workspaces"
    id: Mapped[str] = _id()
    name: Mapped[str] = mapped_column(String(200))
    time_zone: Mapped[str] = mapped_column(String(64), default="Europe/Berlin")
    settings: Mapped[dict[str, Any]] = mapped_column(
        SecretFieldsJson("workspaces.settings"), default=dict, server_default="{}"
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ChannelRow(Base):
    """A connected channel account (one WhatsApp number, one Telegram bot, ...)."""

    __tablename__ = "channels"
    id: Mapped[str] = _id()
    workspace_id: Mapped[str] = _workspace()
    kind: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(200))
    config: Mapped[dict[str, Any]] = mapped_column(
        SecretFieldsJson("channels.config"), default=dict
    )
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_webhook_at: Mapped[datetime | None] = mapped_column()
    """When a provider last called this channel's webhook (written at most once a minute)."""
    last_webhook_result: Mapped[str | None] = mapped_column(String(16))
    """accepted, refused (signature) or malformed (bad payload)."""


class WebchatSession(Base):
    """A web-chat visitor session; only the hash of its token is stored (the identity address)."""

    __tablename__ = "webchat_sessions"
    channel_id: Mapped[str] = mapped_column(
        String(26), ForeignKey("channels.id", ondelete="CASCADE"), primary_key=True
    )
    address: Mapped[str] = mapped_column(String(64), primary_key=True)
    workspace_id: Mapped[str] = _workspace()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column()
    """When the visitor first wrote (a new conversation counts against the client's limit)."""


class Contact(Base):
    """A person the business talks with, across channels."""

    __tablename__ = "contacts"
    id: Mapped[str] = _id()
    workspace_id: Mapped[str] = _workspace()
    display_name: Mapped[str | None] = mapped_column(String(200))
    attributes: Mapped[dict[str, Any]] = mapped_column(default=dict)
    consent_state: Mapped[str] = mapped_column(
        String(12), default="unknown", server_default="unknown"
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    # Set while this contact is merged into another (its row stays so an undo can restore it).
    merged_into_id: Mapped[str | None] = mapped_column(String(26), index=True)
    # Art. 18: while set, the contact's data is only stored, never processed.
    restricted_at: Mapped[datetime | None] = mapped_column()


class ContactIdentity(Base):
    """A contact's address on one channel (a wa_id, a chat id, an e-mail address)."""

    __tablename__ = "contact_identities"
    __table_args__ = (UniqueConstraint("channel_id", "address"),)
    id: Mapped[str] = _id()
    workspace_id: Mapped[str] = _workspace()
    contact_id: Mapped[str] = mapped_column(
        String(26), ForeignKey("contacts.id", ondelete="CASCADE"), index=True
    )
    channel_id: Mapped[str] = mapped_column(
        String(26), ForeignKey("channels.id", ondelete="CASCADE")
    )
    address: Mapped[str] = mapped_column(String(320))
    display_name: Mapped[str | None] = mapped_column(String(200))
    unreachable: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Conversation(Base):
    """The thread between one contact identity and one channel account."""

    __tablename__ = "conversations"
    __table_args__ = (
        UniqueConstraint("channel_id", "identity_id"),
        Index("ix_conversations_workspace_last", "workspace_id", "last_message_at"),
    )
    id: Mapped[str] = _id()
    workspace_id: Mapped[str] = _workspace()
    channel_id: Mapped[str] = mapped_column(
        String(26), ForeignKey("channels.id", ondelete="CASCADE")
    )
    contact_id: Mapped[str] = mapped_column(
        String(26), ForeignKey("contacts.id", ondelete="CASCADE"), index=True
    )
    identity_id: Mapped[str] = mapped_column(
        String(26), ForeignKey("contact_identities.id", ondelete="CASCADE")
    )
    status: Mapped[str] = mapped_column(String(16), default="open")
    assignee_id: Mapped[str | None] = mapped_column(
        String(26), ForeignKey("users.id", ondelete="SET NULL", use_alter=True), index=True
    )
    team_id: Mapped[str | None] = mapped_column(
        String(26), ForeignKey("teams.id", ondelete="SET NULL", use_alter=True), index=True
    )
    last_inbound_at: Mapped[datetime | None] = mapped_column()
    last_message_at: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    queued_at: Mapped[datetime | None] = mapped_column()  # waiting for an agent since
    legal_hold: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # Meta's handover protocol: the app that owns the thread (None: tresen), and since when.
    thread_owner: Mapped[str | None] = mapped_column(String(64))
    thread_changed_at: Mapped[datetime | None] = mapped_column()
    # The customer's watermarks (Messenger: "everything sent up to this time arrived / was
    # read"), kept for a send whose record commits after the webhook that covered it.
    delivered_until: Mapped[datetime | None] = mapped_column()
    read_until: Mapped[datetime | None] = mapped_column()


class Message(Base):
    """One message in or out; the delivery state only moves forward."""

    __tablename__ = "messages"
    __table_args__ = (
        UniqueConstraint("channel_id", "provider_message_id"),
        Index("ix_messages_conversation_created", "conversation_id", "created_at"),
    )
    id: Mapped[str] = _id()
    workspace_id: Mapped[str] = _workspace()
    conversation_id: Mapped[str] = mapped_column(
        String(26), ForeignKey("conversations.id", ondelete="CASCADE")
    )
    channel_id: Mapped[str] = mapped_column(
        String(26), ForeignKey("channels.id", ondelete="CASCADE")
    )
    direction: Mapped[str] = mapped_column(String(8))
    sender_kind: Mapped[str] = mapped_column(String(12))
    content_kind: Mapped[str] = mapped_column(String(16))
    body: Mapped[str | None] = mapped_column(EncryptedText("messages.body"))
    payload: Mapped[dict[str, Any]] = mapped_column(EncryptedJson("messages.payload"), default=dict)
    provider_message_id: Mapped[str | None] = mapped_column(String(256))
    reply_to_provider_id: Mapped[str | None] = mapped_column(String(256))
    state: Mapped[str] = mapped_column(String(12))
    error_code: Mapped[str | None] = mapped_column(String(32))
    error_reason: Mapped[str | None] = mapped_column(Text)
    provider_timestamp: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column()
    delivered_at: Mapped[datetime | None] = mapped_column()
    read_at: Mapped[datetime | None] = mapped_column()
    failed_at: Mapped[datetime | None] = mapped_column()
    send_attempts: Mapped[int] = mapped_column(Integer, default=0)
    # A broadcast/topic message: sent only while the contact is still subscribed.
    topic_id: Mapped[str | None] = mapped_column(String(26))
    # An inbound message that arrived before the contact consented: handled after a yes.
    consent_held: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class Media(Base):
    """A file of a message, stored under the data dir once fetched (or why it is unavailable)."""

    __tablename__ = "media"
    id: Mapped[str] = _id()
    workspace_id: Mapped[str] = _workspace()
    message_id: Mapped[str] = mapped_column(
        String(26), ForeignKey("messages.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(12))
    reason: Mapped[str | None] = mapped_column(Text)
    content_type: Mapped[str | None] = mapped_column(String(100))
    size: Mapped[int | None] = mapped_column(BigInteger)
    sha256: Mapped[str | None] = mapped_column(String(64))
    filename: Mapped[str | None] = mapped_column(String(200))
    path: Mapped[str | None] = mapped_column(String(300))
    ref: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class PendingStatus(Base):
    """A status that arrived before the send that it belongs to was recorded."""

    __tablename__ = "pending_statuses"
    __table_args__ = (UniqueConstraint("channel_id", "provider_message_id", "state"),)
    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    channel_id: Mapped[str] = mapped_column(
        String(26), ForeignKey("channels.id", ondelete="CASCADE")
    )
    provider_message_id: Mapped[str] = mapped_column(String(256))
    state: Mapped[str] = mapped_column(String(12))
    error_code: Mapped[str | None] = mapped_column(String(32))
    error_reason: Mapped[str | None] = mapped_column(Text)
    occurred_at: Mapped[datetime | None] = mapped_column()
    received_at: Mapped[datetime] = mapped_column(default=utcnow)


class Job(Base):
    """Durable work: claimed with a lease, retried with backoff, dead-lettered when exhausted."""

    __tablename__ = "jobs"
    __table_args__ = (Index("ix_jobs_state_run_at", "state", "run_at"),)
    id: Mapped[str] = _id()
    workspace_id: Mapped[str | None] = mapped_column(String(26), index=True)
    kind: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    state: Mapped[str] = mapped_column(String(12), default="pending")
    run_at: Mapped[datetime] = mapped_column(default=utcnow)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=8)
    lease_until: Mapped[datetime | None] = mapped_column()
    locked_by: Mapped[str | None] = mapped_column(String(64))
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class ApiToken(Base):
    """A bearer token for the REST API; only its hash is stored."""

    __tablename__ = "api_tokens"
    id: Mapped[str] = _id()
    workspace_id: Mapped[str] = _workspace()
    name: Mapped[str] = mapped_column(String(200))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    scopes: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column()
    revoked_at: Mapped[datetime | None] = mapped_column()
    expires_at: Mapped[datetime | None] = mapped_column()


class User(Base):
    """A person of the business who works in the inbox."""

    __tablename__ = "users"
    id: Mapped[str] = _id()
    workspace_id: Mapped[str] = _workspace()
    email: Mapped[str] = mapped_column(String(320), unique=True)
    display_name: Mapped[str] = mapped_column(String(200))
    password_hash: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16))
    language: Mapped[str] = mapped_column(String(8), default="de")
    availability: Mapped[str] = mapped_column(String(12), default="offline")
    totp_secret: Mapped[str | None] = mapped_column(EncryptedText("users.totp_secret"))
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column()
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    last_login_at: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    max_open: Mapped[int | None] = mapped_column(Integer)  # routing limit; None: no limit
    recovery_codes: Mapped[dict[str, Any] | None] = mapped_column()
    """{"hashes": [...]}: SHA-256 of the unused two-factor recovery codes."""
    test_addresses: Mapped[dict[str, Any] | None] = mapped_column()
    """{channel kind: address}: where my campaign tests went last (the wizard prefills it)."""


class Invitation(Base):
    """A single-use, expiring link that lets one person join the workspace with a role."""

    __tablename__ = "invitations"
    id: Mapped[str] = _id()
    workspace_id: Mapped[str] = _workspace()
    email: Mapped[str] = mapped_column(String(320))
    role: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    expires_at: Mapped[datetime] = mapped_column()
    used_at: Mapped[datetime | None] = mapped_column()
    created_by: Mapped[str | None] = mapped_column(String(26))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class AuthSession(Base):
    """A server-side login session; the cookie holds a token whose hash is the key."""

    __tablename__ = "auth_sessions"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(
        String(26), ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column()
    revoked_at: Mapped[datetime | None] = mapped_column()


class Team(Base):
    """A group of agents (e.g. Werkstatt, Verkauf)."""

    __tablename__ = "teams"
    __table_args__ = (UniqueConstraint("workspace_id", "name"),)
    id: Mapped[str] = _id()
    workspace_id: Mapped[str] = _workspace()
    name: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    rr_cursor: Mapped[str | None] = mapped_column(String(26))  # last user round-robin picked


class TeamMember(Base):
    """Who belongs to which team."""

    __tablename__ = "team_members"
    team_id: Mapped[str] = mapped_column(
        String(26), ForeignKey("teams.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[str] = mapped_column(
        String(26), ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )


class Note(Base):
    """A private note in a conversation; never sent to the customer."""

    __tablename__ = "notes"
    id: Mapped[str] = _id()
    workspace_id: Mapped[str] = _workspace()
    conversation_id: Mapped[str] = mapped_column(
        String(26), ForeignKey("conversations.id", ondelete="CASCADE"), index=True
    )
    author_id: Mapped[str | None] = mapped_column(
        String(26), ForeignKey("users.id", ondelete="SET NULL")
    )
    body: Mapped[str] = mapped_column(EncryptedText("notes.body"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class CannedReply(Base):
    """A Textbaustein: a reusable reply with variables such as {first_name}."""

    __tablename__ = "canned_replies"
    __table_args__ = (UniqueConstraint("workspace_id", "shortcut"),)
    id: Mapped[str] = _id()
    workspace_id: Mapped[str] = _workspace()
    shortcut: Mapped[str] = mapped_column(String(40))
    title: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Who sees it: "workspace" (everyone), "team" (members of team_id), "personal" (owner_id).
    scope: Mapped[str] = mapped_column(String(12), default="workspace", server_default="workspace")
    team_id: Mapped[str | None] = mapped_column(String(26))
    owner_id: Mapped[str | None] = mapped_column(String(26))
    # The text in other languages than `body` ({"en": "..."}), picked by the contact's language.
    texts: Mapped[dict[str, Any]] = mapped_column(default=dict, server_default=text("'{}'"))
    # A file sent with the reply: {"path", "content_type", "filename", "size"} under the data dir.
    attachment: Mapped[dict[str, Any] | None] = mapped_column(JsonType)
    use_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class ConsentEvent(Base):
    """Proof of consent: append-only (the database refuses updates and deletes)."""

    __tablename__ = "consent_events"
    __table_args__ = (Index("ix_consent_events_contact", "workspace_id", "contact_id", "id"),)
    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    workspace_id: Mapped[str] = mapped_column(String(26))
    contact_id: Mapped[str] = mapped_column(String(26))
    purpose: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(16))
    channel_id: Mapped[str | None] = mapped_column(String(26))
    source: Mapped[str] = mapped_column(String(200))
    text_version: Mapped[str | None] = mapped_column(String(64))
    text_hash: Mapped[str | None] = mapped_column(String(64))
    language: Mapped[str | None] = mapped_column(String(8))
    ip_address: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(400))
    occurred_at: Mapped[datetime] = mapped_column()


class AuditEntry(Base):
    """Who did what: append-only and hash-chained per workspace."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_workspace", "workspace_id", "id"),)
    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    workspace_id: Mapped[str] = mapped_column(String(26))
    actor_id: Mapped[str | None] = mapped_column(String(26))
    action: Mapped[str] = mapped_column(String(64))
    subject_type: Mapped[str | None] = mapped_column(String(32))
    subject_id: Mapped[str | None] = mapped_column(String(64))
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    occurred_at: Mapped[datetime] = mapped_column()
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


Index("ix_conversations_queue", Conversation.workspace_id, Conversation.queued_at)


class RoutingRule(Base):
    """Conversations of a channel go to a team, assigned manually, round-robin or least-busy."""

    __tablename__ = "routing_rules"
    __table_args__ = (UniqueConstraint("channel_id"),)
    id: Mapped[str] = _id()
    workspace_id: Mapped[str] = _workspace()
    channel_id: Mapped[str] = mapped_column(
        String(26), ForeignKey("channels.id", ondelete="CASCADE")
    )
    team_id: Mapped[str] = mapped_column(String(26), ForeignKey("teams.id", ondelete="CASCADE"))
    mode: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class MessageTemplate(Base):
    """A provider-approved message template (WhatsApp) with its review state, per channel."""

    __tablename__ = "message_templates"
    __table_args__ = (UniqueConstraint("channel_id", "name", "language"),)
    id: Mapped[str] = _id()
    workspace_id: Mapped[str] = _workspace()
    channel_id: Mapped[str] = mapped_column(
        String(26), ForeignKey("channels.id", ondelete="CASCADE")
    )
    name: Mapped[str] = mapped_column(String(512))
    language: Mapped[str] = mapped_column(String(20))
    category: Mapped[str] = mapped_column(String(20))
    body: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(20))
    rejected_reason: Mapped[str | None] = mapped_column(Text)
    provider_id: Mapped[str | None] = mapped_column(String(64))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class ContactMerge(Base):
    """Contact `source` merged into `target`: exactly what moved, so an undo can restore it."""

    __tablename__ = "contact_merges"
    id: Mapped[str] = _id()
    workspace_id: Mapped[str] = _workspace()
    target_id: Mapped[str] = mapped_column(
        String(26), ForeignKey("contacts.id", ondelete="CASCADE"), index=True
    )
    source_id: Mapped[str] = mapped_column(
        String(26), ForeignKey("contacts.id", ondelete="CASCADE"), index=True
    )
    actor_id: Mapped[str | None] = mapped_column(String(26))  # a user; None for an API token
    identity_ids: Mapped[dict[str, Any]] = mapped_column(default=dict)  # {"ids": [...]}
    conversation_ids: Mapped[dict[str, Any]] = mapped_column(default=dict)  # {"ids": [...]}
    target_before: Mapped[dict[str, Any]] = mapped_column(default=dict)  # attributes, consent
    source_before: Mapped[dict[str, Any]] = mapped_column(default=dict)  # attributes, consent
    filled_keys: Mapped[dict[str, Any]] = mapped_column(default=dict)  # {key: value from source}
    consent_state: Mapped[str] = mapped_column(String(12))  # what the merge gave the target
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    undone_at: Mapped[datetime | None] = mapped_column()
    undone_by: Mapped[str | None] = mapped_column(String(26))


class Label(Base):
    """A workspace label for conversations (name and a colour from a fixed palette)."""

    __tablename__ = "labels"
    __table_args__ = (UniqueConstraint("workspace_id", "name"),)
    id: Mapped[str] = _id()
    workspace_id: Mapped[str] = _workspace()
    name: Mapped[str] = mapped_column(String(40))
    colour: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ConversationLabel(Base):
    """A label on a conversation."""

    __tablename__ = "conversation_labels"
    conversation_id: Mapped[str] = mapped_column(
        String(26), ForeignKey("conversations.id", ondelete="CASCADE"), primary_key=True
    )
    label_id: Mapped[str] = mapped_column(
        String(26), ForeignKey("labels.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    workspace_id: Mapped[str] = _workspace()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class BotConfig(Base):
    """A workspace's bot: on or off, its language, tone, blacklist, flows and KB version."""

    __tablename__ = "bot_configs"
    workspace_id: Mapped[str] = mapped_column(
        String(26), ForeignKey("workspaces.id", ondelete="CASCADE"), primary_key=True
    )
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    language: Mapped[str] = mapped_column(String(8), default="de")
    business: Mapped[str] = mapped_column(String(200), default="")
    kb_version: Mapped[int] = mapped_column(Integer, default=0)  # bumped by every KB edit
    persona: Mapped[dict[str, Any]] = mapped_column(default=dict)
    blacklist: Mapped[dict[str, Any]] = mapped_column(default=dict)  # {"terms": [...]}
    flows: Mapped[dict[str, Any]] = mapped_column(default=dict)  # {"flows": [flow YAML as data]}
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class BotFaq(Base):
    """One FAQ entry: phrasings of a question, an answer per language, optionally a flow."""

    __tablename__ = "bot_faqs"
    __table_args__ = (UniqueConstraint("workspace_id", "key"),)
    id: Mapped[str] = _id()
    workspace_id: Mapped[str] = _workspace()
    key: Mapped[str] = mapped_column(String(100))
    # {"questions": [...], "answers": {"de": ..., "en": ...}, "flow": id (optional)}
    content: Mapped[dict[str, Any]] = mapped_column(default=dict)
    position: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class BotProduct(Base):
    """One product of the workspace's catalog (imported), for the bot's product answers."""

    __tablename__ = "bot_products"
    __table_args__ = (UniqueConstraint("workspace_id", "sku"),)
    id: Mapped[str] = _id()
    workspace_id: Mapped[str] = _workspace()
    sku: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(300))
    brand: Mapped[str] = mapped_column(String(100), default="")
    category: Mapped[str] = mapped_column(String(100), default="")
    # {"sizes": ["40", "41"], "stock": {"40": 2}} (stock per size; empty: `stock` for all sizes)
    sizes: Mapped[dict[str, Any]] = mapped_column(default=dict)
    price_cents: Mapped[int] = mapped_column(Integer)
    stock: Mapped[int] = mapped_column(Integer, default=0)  # all sizes together
    url: Mapped[str] = mapped_column(String(1000), default="")
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class BotConversation(Base):
    """The bot's memory of one conversation: slots, flow, misses, hand-over."""

    __tablename__ = "bot_conversations"
    conversation_id: Mapped[str] = mapped_column(
        String(26), ForeignKey("conversations.id", ondelete="CASCADE"), primary_key=True
    )
    workspace_id: Mapped[str] = _workspace()
    state: Mapped[dict[str, Any]] = mapped_column(default=dict)
    handed_over_at: Mapped[datetime | None] = mapped_column()
    handover_reason: Mapped[str | None] = mapped_column(String(32))
    handover_summary: Mapped[str | None] = mapped_column(
        EncryptedText("bot_conversations.handover_summary")
    )
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class BotEmbedding(Base):
    """A cached sentence embedding of one knowledge-base text, keyed by model and text hash."""

    __tablename__ = "bot_embeddings"
    workspace_id: Mapped[str] = mapped_column(
        String(26), ForeignKey("workspaces.id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(64), primary_key=True)  # sha256(model, text)
    model: Mapped[str] = mapped_column(String(100))
    vector: Mapped[bytes] = mapped_column(LargeBinary)  # float32, little-endian
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class BotTurn(Base):
    """What the bot did with one inbound message (for the learning loop)."""

    __tablename__ = "bot_turns"
    __table_args__ = (Index("ix_bot_turns_workspace_at", "workspace_id", "occurred_at"),)
    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    workspace_id: Mapped[str] = mapped_column(String(26))
    conversation_id: Mapped[str] = mapped_column(
        String(26), ForeignKey("conversations.id", ondelete="CASCADE"), index=True
    )
    message_id: Mapped[str | None] = mapped_column(
        String(26), ForeignKey("messages.id", ondelete="CASCADE")
    )
    outcome: Mapped[str] = mapped_column(String(16))  # answered | fallback | handover | flow | ...
    reason: Mapped[str | None] = mapped_column(String(32))  # why it handed over
    faq_key: Mapped[str | None] = mapped_column(String(100))
    score: Mapped[float | None] = mapped_column(Float)
    occurred_at: Mapped[datetime] = mapped_column(default=utcnow)


class Suppression(Base):
    """An erased person's address as a keyed hash: not re-imported without new consent."""

    __tablename__ = "suppressions"
    __table_args__ = (UniqueConstraint("workspace_id", "address_hash"),)
    id: Mapped[str] = _id()
    workspace_id: Mapped[str] = _workspace()
    address_hash: Mapped[str] = mapped_column(String(64))
    erased_contact_id: Mapped[str] = mapped_column(String(26))  # links the kept consent proof
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Topic(Base):
    """Something customers subscribe to (news, a live ticker), named by a keyword."""

    __tablename__ = "topics"
    __table_args__ = (UniqueConstraint("workspace_id", "keyword"),)
    id: Mapped[str] = _id()
    workspace_id: Mapped[str] = _workspace()
    keyword: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(200))
    descriptions: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Subscription(Base):
    """A contact's subscription to a topic: pending until confirmed (double opt-in)."""

    __tablename__ = "subscriptions"
    __table_args__ = (
        UniqueConstraint("topic_id", "contact_id"),
        Index("ix_subscriptions_state_requested", "state", "requested_at"),
    )
    id: Mapped[str] = _id()
    workspace_id: Mapped[str] = _workspace()
    topic_id: Mapped[str] = mapped_column(
        String(26), ForeignKey("topics.id", ondelete="CASCADE"), index=True
    )
    contact_id: Mapped[str] = mapped_column(
        String(26), ForeignKey("contacts.id", ondelete="CASCADE"), index=True
    )
    channel_id: Mapped[str] = mapped_column(
        String(26), ForeignKey("channels.id", ondelete="CASCADE")
    )
    state: Mapped[str] = mapped_column(String(12))  # pending, confirmed, withdrawn
    source: Mapped[str] = mapped_column(String(64))  # "messenger keyword" is 17 characters
    language: Mapped[str] = mapped_column(String(8), default="de")
    token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    token_expires_at: Mapped[datetime | None] = mapped_column()
    token_used_at: Mapped[datetime | None] = mapped_column()
    requested_at: Mapped[datetime] = mapped_column(default=utcnow)
    confirmed_at: Mapped[datetime | None] = mapped_column()
    withdrawn_at: Mapped[datetime | None] = mapped_column()


class Notification(Base):
    """A transactional message the shop asked for, remembered by its idempotency key."""

    __tablename__ = "notifications"
    __table_args__ = (
        UniqueConstraint("workspace_id", "idempotency_key"),
        Index("ix_notifications_open", "done", "created_at"),
    )
    id: Mapped[str] = _id()
    workspace_id: Mapped[str] = _workspace()
    token_id: Mapped[str | None] = mapped_column(String(26))
    idempotency_key: Mapped[str] = mapped_column(String(200))
    request_hash: Mapped[str] = mapped_column(String(64))
    message_id: Mapped[str | None] = mapped_column(
        String(26), ForeignKey("messages.id", ondelete="SET NULL")
    )
    template: Mapped[str | None] = mapped_column(String(64))
    category: Mapped[str] = mapped_column(String(32))
    notified_state: Mapped[str | None] = mapped_column(String(12))
    done: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ErasureRequest(Base):
    """One erasure (Art. 17) and how far it got, so an interrupted one resumes and completes."""

    __tablename__ = "erasure_requests"
    __table_args__ = (Index("ix_erasure_requests_state", "state"),)
    id: Mapped[str] = _id()
    workspace_id: Mapped[str] = _workspace()
    contact_id: Mapped[str] = mapped_column(String(26), index=True)
    actor_id: Mapped[str | None] = mapped_column(String(26))
    via: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(12), default="running")  # running, done
    step: Mapped[str] = mapped_column(String(16), default="files")  # files, rows, compact, done
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    counts: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column()


class TrackedLink(Base):
    """A URL of an outgoing message, sent as {base_url}/l/<token>; per person only with consent."""

    __tablename__ = "tracked_links"
    __table_args__ = (
        UniqueConstraint("workspace_id", "key"),
        Index("ix_tracked_links_campaign", "workspace_id", "campaign_id"),
    )
    id: Mapped[str] = _id()
    workspace_id: Mapped[str] = _workspace()
    token: Mapped[str] = mapped_column(String(32), unique=True)
    key: Mapped[str] = mapped_column(String(64))  # sha256 of (campaign, contact, url)
    url: Mapped[str] = mapped_column(Text)
    campaign_id: Mapped[str | None] = mapped_column(String(26))
    contact_id: Mapped[str | None] = mapped_column(
        String(26), ForeignKey("contacts.id", ondelete="SET NULL"), index=True
    )
    clicks: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class LinkClick(Base):
    """One click on a tracked link: anonymous, or the contact's when they consented to tracking."""

    __tablename__ = "link_clicks"
    __table_args__ = (Index("ix_link_clicks_workspace_at", "workspace_id", "clicked_at"),)
    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    workspace_id: Mapped[str] = mapped_column(String(26))
    link_id: Mapped[str] = mapped_column(
        String(26), ForeignKey("tracked_links.id", ondelete="CASCADE"), index=True
    )
    contact_id: Mapped[str | None] = mapped_column(String(26), index=True)
    ip_address: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(400))
    clicked_at: Mapped[datetime] = mapped_column(default=utcnow)


class Segment(Base):
    """A saved audience filter (attributes, labels, channel, language, activity, topic)."""

    __tablename__ = "segments"
    __table_args__ = (UniqueConstraint("workspace_id", "name"),)
    id: Mapped[str] = _id()
    workspace_id: Mapped[str] = _workspace()
    name: Mapped[str] = mapped_column(String(200))
    filter: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class Campaign(Base):
    """A broadcast to a topic's subscribers: content, schedule, quiet hours, caps, progress."""

    __tablename__ = "campaigns"
    __table_args__ = (Index("ix_campaigns_state", "state", "scheduled_at"),)
    id: Mapped[str] = _id()
    workspace_id: Mapped[str] = _workspace()
    name: Mapped[str] = mapped_column(String(200))
    # draft, scheduled, starting, running, paused, done, cancelled
    state: Mapped[str] = mapped_column(String(12), default="draft")
    topic_id: Mapped[str] = mapped_column(String(26), ForeignKey("topics.id", ondelete="CASCADE"))
    channel_ids: Mapped[dict[str, Any]] = mapped_column(default=dict)  # {"ids": [...]} by priority
    filter: Mapped[dict[str, Any]] = mapped_column(default=dict)  # the segment's filter, copied
    segment_id: Mapped[str | None] = mapped_column(String(26))
    content: Mapped[dict[str, Any]] = mapped_column(default=dict)
    time_zone: Mapped[str] = mapped_column(String(64), default="Europe/Berlin")
    quiet_hours: Mapped[str | None] = mapped_column(String(11))  # "21:00-08:00"
    frequency_cap: Mapped[int] = mapped_column(Integer, default=0)  # per 7 days; 0: none
    scheduled_at: Mapped[datetime | None] = mapped_column()
    audience: Mapped[int] = mapped_column(Integer, default=0)
    expand_seconds: Mapped[float | None] = mapped_column(Float)  # set once the audience is fixed
    expanded_through: Mapped[str | None] = mapped_column(String(26))  # last contact id expanded
    expand_lease_until: Mapped[datetime | None] = mapped_column()
    created_by: Mapped[str | None] = mapped_column(String(26))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column()
    finished_at: Mapped[datetime | None] = mapped_column()
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class CampaignRecipient(Base):
    """One contact of a campaign's fixed audience: sent at most once (unique per campaign)."""

    __tablename__ = "campaign_recipients"
    __table_args__ = (
        UniqueConstraint("campaign_id", "contact_id"),
        Index("ix_campaign_recipients_claim", "campaign_id", "state", "id"),
        Index("ix_campaign_recipients_contact", "contact_id", "sent_at"),
    )
    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    campaign_id: Mapped[str] = mapped_column(
        String(26), ForeignKey("campaigns.id", ondelete="CASCADE")
    )
    contact_id: Mapped[str] = mapped_column(String(26))
    channel_id: Mapped[str] = mapped_column(String(26))
    identity_id: Mapped[str] = mapped_column(String(26))
    message_id: Mapped[str | None] = mapped_column(String(26))
    # pending, sending, sent, skipped, failed, cancelled
    state: Mapped[str] = mapped_column(String(12), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_at: Mapped[datetime | None] = mapped_column()
    lease_until: Mapped[datetime | None] = mapped_column()
    error_code: Mapped[str | None] = mapped_column(String(32))
    sent_at: Mapped[datetime | None] = mapped_column()
    done_at: Mapped[datetime | None] = mapped_column()


class DomainEventRow(Base):
    """A domain event (transactional outbox), written in the transaction of its change."""

    __tablename__ = "domain_events"
    __table_args__ = (
        Index(
            "ix_domain_events_undispatched",
            "seq",
            postgresql_where=text("position IS NULL"),
            sqlite_where=text("position IS NULL"),
        ),
        Index("ix_domain_events_lane_position", "lane", "position"),
    )
    seq: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    id: Mapped[str] = mapped_column(String(26), unique=True, default=new_id)
    workspace_id: Mapped[str] = _workspace()
    type: Mapped[str] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer, default=1)
    lane: Mapped[str] = mapped_column(String(26))
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    occurred_at: Mapped[datetime] = mapped_column(default=utcnow)
    position: Mapped[int | None] = mapped_column(BigInteger, unique=True)
    """Set by the dispatcher in the order it hands events on (None: not dispatched yet)."""
    dispatched_at: Mapped[datetime | None] = mapped_column(index=True)


class EventCursor(Base):
    """How far one consumer got in one lane (a conversation, a contact or a workspace)."""

    __tablename__ = "event_cursors"
    consumer: Mapped[str] = mapped_column(String(64), primary_key=True)
    lane: Mapped[str] = mapped_column(String(26), primary_key=True)
    position: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class InstallKey(Base):
    """The fingerprint of a key this install was set up with; a process with another is refused."""

    __tablename__ = "install_keys"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    """`secret_key`, or `encryption:<key id>`."""
    fingerprint: Mapped[str] = mapped_column(String(64))
    recorded_at: Mapped[datetime] = mapped_column(default=utcnow)


class ProcessBeat(Base):
    """A running web or worker process: what it runs with, and when it was last seen alive."""

    __tablename__ = "process_heartbeats"
    id: Mapped[str] = mapped_column(String(120), primary_key=True)
    role: Mapped[str] = mapped_column(String(16))  # web, worker, embedded
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    version: Mapped[str] = mapped_column(String(32))
    schema_revision: Mapped[str] = mapped_column(String(64))
    secret_fingerprint: Mapped[str] = mapped_column(String(64))
    encryption_fingerprint: Mapped[str] = mapped_column(String(255))
    data_dir: Mapped[str] = mapped_column(Text)
    base_url: Mapped[str] = mapped_column(Text)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    seen_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    stopped_at: Mapped[datetime | None] = mapped_column()
