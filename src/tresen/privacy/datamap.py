"""The data map: every table and file that can hold personal data, and what erasure does to it."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Erasure(StrEnum):
    """What erasing a contact does to their rows."""

    DELETE = "delete"
    ANONYMISE = "anonymise"
    KEEP_AS_PROOF = "keep-as-proof"
    NOT_ABOUT_CONTACTS = "not-about-contacts"


@dataclass(frozen=True)
class TableEntry:
    """One table: whose data it holds, where, how to find a contact's rows, what erasure does."""

    table: str
    subject: str  # "contact", "agent", or "none"
    personal_columns: tuple[str, ...]
    plain_columns: tuple[str, ...]
    contact_path: str
    erasure: Erasure
    why: str

    @property
    def holds_personal_data(self) -> bool:
        """Whether any column of this table can hold personal data."""
        return bool(self.personal_columns)


@dataclass(frozen=True)
class StoreEntry:
    """Personal data outside the tables: files and search indexes."""

    location: str
    holds: str
    contact_path: str
    erasure: Erasure
    why: str
    dialects: tuple[str, ...] = field(default=("sqlite", "postgresql"))


_C = "contact"
TABLES: tuple[TableEntry, ...] = (
    TableEntry(
        "contacts",
        _C,
        ("display_name", "attributes"),
        ("consent_state",),
        "contacts.id = :contact",
        Erasure.DELETE,
        "the person's profile; restricted_at marks a restriction of processing (Art. 18)",
    ),
    TableEntry(
        "contact_identities",
        _C,
        ("address", "display_name"),
        (),
        "contact_identities.contact_id = :contact",
        Erasure.DELETE,
        "phone number, chat id or e-mail address per channel; kept only as a suppression hash",
    ),
    TableEntry(
        "webchat_sessions",
        _C,
        ("address",),
        (),
        "webchat_sessions.address IN (SELECT address FROM contact_identities"
        " WHERE contact_id = :contact)",
        Erasure.DELETE,
        "a web-chat visitor's session: the hash of the token kept in their browser",
    ),
    TableEntry(
        "conversations",
        _C,
        ("last_inbound_at", "last_message_at"),
        ("status", "thread_owner"),
        "conversations.contact_id = :contact",
        Erasure.DELETE,
        "when the person wrote; links messages and notes to them",
    ),
    TableEntry(
        "messages",
        _C,
        ("body", "payload", "provider_message_id", "reply_to_provider_id", "error_reason"),
        ("direction", "sender_kind", "content_kind", "state", "error_code"),
        "messages.conversation_id -> conversations.contact_id = :contact",
        Erasure.DELETE,
        "what the person and the business wrote; media files are named in payload.media.path; "
        "body and payload are encrypted at rest when TRESEN_ENCRYPTION_KEYS is set",
    ),
    TableEntry(
        "pending_statuses",
        _C,
        ("provider_message_id", "error_reason"),
        ("state", "error_code"),
        "(channel_id, provider_message_id) of the contact's messages",
        Erasure.DELETE,
        "delivery statuses that arrived early; the provider's reason can name the recipient",
    ),
    TableEntry(
        "jobs",
        _C,
        ("payload", "last_error"),
        ("kind", "state", "locked_by"),
        "jobs.payload.message_id / conversation_id of the contact's rows, or their address",
        Erasure.DELETE,
        "queued work: pending sends are cancelled, dead letters dropped",
    ),
    TableEntry(
        "notes",
        _C,
        ("body",),
        (),
        "notes.conversation_id -> conversations.contact_id = :contact",
        Erasure.DELETE,
        "what agents wrote about the person",
    ),
    TableEntry(
        "consent_events",
        _C,
        ("ip_address", "user_agent"),
        ("purpose", "action", "source", "text_version", "text_hash", "language"),
        "consent_events.contact_id = :contact",
        Erasure.KEEP_AS_PROOF,
        "proof of consent and its withdrawal (Art. 7(1)); append-only; erasure clears IP and "
        "user agent and appends a withdrawal; what remains is a pseudonymous id, no address",
    ),
    TableEntry(
        "audit_log",
        _C,
        ("details",),
        ("action", "subject_type", "subject_id", "prev_hash", "hash"),
        "audit_log.subject_id in (contact id, its conversation ids)",
        Erasure.KEEP_AS_PROOF,
        "accountability (Art. 5(2)); hash-chained, holds ids and counts only, never names, "
        "addresses or texts; kept so `tresen audit verify` still proves the log complete",
    ),
    TableEntry(
        "suppressions",
        _C,
        ("address_hash",),
        (),
        "suppressions.erased_contact_id = :contact",
        Erasure.KEEP_AS_PROOF,
        "keyed HMAC of an erased address: stops re-import without new consent",
    ),
    TableEntry(
        "users",
        "agent",
        (
            "email",
            "display_name",
            "password_hash",
            "totp_secret",
            "language",
            "availability",
            "test_addresses",
        ),
        ("role", "recovery_codes"),
        "",
        Erasure.NOT_ABOUT_CONTACTS,
        "accounts of the business's own staff, managed by admins",
    ),
    TableEntry(
        "invitations",
        "agent",
        ("email",),
        ("role", "token_hash", "created_by"),
        "",
        Erasure.NOT_ABOUT_CONTACTS,
        "invitations of future staff: e-mail address, role, hash of the single-use link (7 days)",
    ),
    TableEntry(
        "auth_sessions",
        "agent",
        ("id",),
        (),
        "",
        Erasure.NOT_ABOUT_CONTACTS,
        "sign-in sessions of staff (hash of the cookie token)",
    ),
    TableEntry(
        "team_members",
        "agent",
        (),
        (),
        "",
        Erasure.NOT_ABOUT_CONTACTS,
        "which staff member is in which team (ids only)",
    ),
    TableEntry(
        "workspaces",
        "none",
        (),
        ("name", "time_zone", "settings"),
        "",
        Erasure.NOT_ABOUT_CONTACTS,
        "the business and its settings",
    ),
    TableEntry(
        "channels",
        "none",
        (),
        ("kind", "name", "config", "last_webhook_result"),
        "",
        Erasure.NOT_ABOUT_CONTACTS,
        "the business's channel accounts and their credentials",
    ),
    TableEntry(
        "api_tokens",
        "none",
        (),
        ("name", "token_hash", "scopes"),
        "",
        Erasure.NOT_ABOUT_CONTACTS,
        "API tokens (hashes)",
    ),
    TableEntry(
        "teams", "none", (), ("name", "rr_cursor"), "", Erasure.NOT_ABOUT_CONTACTS, "team names"
    ),
    TableEntry(
        "canned_replies",
        "none",
        (),
        ("shortcut", "title", "body", "scope", "texts", "attachment"),
        "",
        Erasure.NOT_ABOUT_CONTACTS,
        "reply templates with placeholders, not filled in, and the business's file sent with them",
    ),
    TableEntry(
        "routing_rules",
        "none",
        (),
        ("mode",),
        "",
        Erasure.NOT_ABOUT_CONTACTS,
        "which channel goes to which team",
    ),
    TableEntry(
        "media",
        _C,
        ("filename", "path", "ref", "reason", "sha256"),
        ("kind", "state", "content_type"),
        "media.message_id in (the contact's messages)",
        Erasure.DELETE,
        "files customers sent or agents sent them: rows and the files under DATA_DIR/media",
    ),
    TableEntry(
        "contact_merges",
        _C,
        ("identity_ids", "conversation_ids", "target_before", "source_before", "filled_keys"),
        ("consent_state", "undone_by"),
        "contact_merges.target_id or source_id = :contact (or a contact merged into it)",
        Erasure.DELETE,
        "what a merge moved, for undo; holds both contacts' attributes from before",
    ),
    TableEntry(
        "bot_conversations",
        _C,
        ("state", "handover_summary"),
        ("handover_reason",),
        "bot_conversations.conversation_id in (the contact's conversations)",
        Erasure.DELETE,
        "what the bot understood (slots such as an order number) and its hand-over summary",
    ),
    TableEntry(
        "bot_turns",
        _C,
        (),
        ("outcome", "reason", "faq_key"),
        "bot_turns.conversation_id in (the contact's conversations)",
        Erasure.DELETE,
        "one row per bot answer (outcome and matched entry, no text) for the learning loop",
    ),
    TableEntry(
        "conversation_labels",
        _C,
        (),
        (),
        "conversation_labels.conversation_id in (the contact's conversations)",
        Erasure.DELETE,
        "which labels a conversation carries (ids only)",
    ),
    TableEntry(
        "labels",
        "none",
        (),
        ("name", "colour"),
        "",
        Erasure.NOT_ABOUT_CONTACTS,
        "the business's labels",
    ),
    TableEntry(
        "message_templates",
        "none",
        (),
        ("name", "language", "category", "body", "status", "rejected_reason", "provider_id"),
        "",
        Erasure.NOT_ABOUT_CONTACTS,
        "provider templates with placeholders, not filled in",
    ),
    TableEntry(
        "bot_configs",
        "none",
        (),
        ("language", "business", "persona", "blacklist", "flows"),
        "",
        Erasure.NOT_ABOUT_CONTACTS,
        "the bot's settings and tone",
    ),
    TableEntry(
        "bot_products",
        "none",
        (),
        ("sku", "name", "brand", "category", "sizes", "url"),
        "",
        Erasure.NOT_ABOUT_CONTACTS,
        "the product catalog the bot answers from (imported by the business)",
    ),
    TableEntry(
        "bot_faqs",
        "none",
        (),
        ("key", "content"),
        "",
        Erasure.NOT_ABOUT_CONTACTS,
        "the FAQ knowledge base (questions and answers the business wrote)",
    ),
    TableEntry(
        "bot_embeddings",
        "none",
        (),
        ("key", "model"),
        "",
        Erasure.NOT_ABOUT_CONTACTS,
        "cached sentence vectors of the FAQ and product texts the business wrote",
    ),
    TableEntry(
        "domain_events",
        _C,
        (),
        ("id", "type", "lane", "payload"),
        "domain_events.lane = a conversation id or the contact id of the contact",
        Erasure.DELETE,
        "announcements of changes (ids, states and kinds only), pruned after "
        "TRESEN_EVENT_RETENTION_DAYS once dispatched",
    ),
    TableEntry(
        "event_cursors",
        "none",
        (),
        ("consumer", "lane"),
        "",
        Erasure.NOT_ABOUT_CONTACTS,
        "how far each event consumer got per conversation (ids only)",
    ),
    TableEntry(
        "subscriptions",
        _C,
        ("token_hash",),
        ("state", "source", "language"),
        "subscriptions.contact_id = :contact",
        Erasure.DELETE,
        "which topics the person asked for and confirmed; the proof stays in consent_events",
    ),
    TableEntry(
        "notifications",
        _C,
        ("idempotency_key", "request_hash"),
        ("template", "category", "notified_state"),
        "notifications.message_id in (the contact's messages)",
        Erasure.ANONYMISE,
        "the shop's transactional requests; erasure unlinks the message, the key stays so a "
        "repeated request is not sent again",
    ),
    TableEntry(
        "erasure_requests",
        _C,
        (),
        ("via", "state", "step", "counts"),
        "erasure_requests.contact_id = :contact",
        Erasure.KEEP_AS_PROOF,
        "that an erasure was asked for and how far it got (ids, steps and counts, never an "
        "address or text): an interrupted erasure resumes from it, and it proves completion",
    ),
    TableEntry(
        "tracked_links",
        _C,
        ("url",),
        ("token", "key"),
        "tracked_links.contact_id = :contact",
        Erasure.ANONYMISE,
        "redirect links of campaign messages; a per-person link (made only with link-tracking "
        "consent) names its contact; erasure and retention unlink it, the anonymous click "
        "counter stays",
    ),
    TableEntry(
        "link_clicks",
        _C,
        ("ip_address", "user_agent"),
        (),
        "link_clicks.contact_id = :contact",
        Erasure.DELETE,
        "one row per click: anonymous, or the contact's when they consented to link tracking "
        "(IP and user agent only with TRESEN_LINK_TRACKING_STORE_CLIENT); deleted after the "
        "tracking_events retention period",
    ),
    TableEntry(
        "campaign_recipients",
        _C,
        (),
        ("state", "error_code"),
        "campaign_recipients.contact_id = :contact",
        Erasure.DELETE,
        "which broadcast went to the person, when, and its outcome",
    ),
    TableEntry(
        "campaigns",
        "none",
        (),
        (
            "name",
            "state",
            "channel_ids",
            "filter",
            "content",
            "time_zone",
            "quiet_hours",
            "created_by",
            "expanded_through",
        ),
        "",
        Erasure.NOT_ABOUT_CONTACTS,
        "the business's broadcasts: audience filter, content, schedule (while an audience is "
        "being fixed, the id of the last contact added, cleared when it is done)",
    ),
    TableEntry(
        "segments",
        "none",
        (),
        ("name", "filter"),
        "",
        Erasure.NOT_ABOUT_CONTACTS,
        "saved audience filters (attributes, labels, channel, language, activity, topic)",
    ),
    TableEntry(
        "topics",
        "none",
        (),
        ("keyword", "name", "descriptions"),
        "",
        Erasure.NOT_ABOUT_CONTACTS,
        "the business's broadcast topics",
    ),
    TableEntry(
        "install_keys",
        "none",
        (),
        ("name", "fingerprint"),
        "",
        Erasure.NOT_ABOUT_CONTACTS,
        "fingerprints of the install's keys (never the keys), to refuse a process with another key",
    ),
    TableEntry(
        "process_heartbeats",
        "none",
        (),
        (
            "id",
            "role",
            "host",
            "version",
            "schema_revision",
            "secret_fingerprint",
            "encryption_fingerprint",
            "data_dir",
            "base_url",
        ),
        "",
        Erasure.NOT_ABOUT_CONTACTS,
        "running web and worker processes and their settings' fingerprints (tresen doctor)",
    ),
)

STORES: tuple[StoreEntry, ...] = (
    StoreEntry(
        "DATA_DIR/media/*",
        "files customers uploaded (web chat)",
        "messages.payload.media.path of the contact's messages",
        Erasure.DELETE,
        "attachments; files no message names any more are swept by retention",
    ),
    StoreEntry(
        "messages_fts, contacts_fts (FTS5)",
        "search index of message bodies, names and addresses",
        "rowid of the contact's messages and contact",
        Erasure.DELETE,
        "kept in step by triggers; erasure then merges the index so old segments go",
        ("sqlite",),
    ),
    StoreEntry(
        "messages.search_tsv, contacts.search_tsv, contact_identities.search_tsv",
        "search vectors of bodies, names and addresses",
        "generated columns of the rows above",
        Erasure.DELETE,
        "generated from the row; gone with it",
        ("postgresql",),
    ),
    StoreEntry(
        "tresen.db-wal (SQLite write-ahead log)",
        "recent page images",
        "any",
        Erasure.DELETE,
        "checkpointed and truncated after an erasure; deleted rows are zeroed (secure_delete)",
        ("sqlite",),
    ),
    StoreEntry(
        "in-process caches",
        "web chat rate-limit windows keyed by visitor id (60 s), channel adapters (no "
        "personal data); live events carry ids only",
        "visitor id",
        Erasure.DELETE,
        "expire by themselves within a minute",
    ),
)

BY_TABLE: dict[str, TableEntry] = {entry.table: entry for entry in TABLES}
