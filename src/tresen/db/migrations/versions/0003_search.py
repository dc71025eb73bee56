"""full-text search over messages and contacts

SQLite: FTS5 tables kept in sync by triggers. PostgreSQL: generated tsvector columns with GIN
indexes (`simple` config on unaccented text). Both are backfilled here, so this works on a
filled database. See docs/search.md.

Revision ID: 0002_search
Revises: 0002
Create Date: 2026-11-22
"""

from __future__ import annotations

import logging

from alembic import op
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

# A sibling migration took the id "0002" first; this one chains after it.
revision = "0002_search"
down_revision = "0002"
branch_labels = None
depends_on = None

log = logging.getLogger("alembic.runtime.migration")

# SQLite's unicode61 tokenizer removes diacritics but keeps "ß"; fold it like PostgreSQL's unaccent.
_SQLITE_FOLD = "replace(replace({0}, 'ß', 'ss'), 'ẞ', 'ss')"
_TOKENIZE = "unicode61 remove_diacritics 2"


def _sqlite_contact_text(contact_id: str) -> str:
    doc = (
        "coalesce(c.display_name, '') || ' ' || coalesce((SELECT group_concat("
        "coalesce(i.address, '') || ' ' || coalesce(i.display_name, ''), ' ') "
        "FROM contact_identities i WHERE i.contact_id = c.id), '')"
    )
    return (
        "DELETE FROM contacts_fts WHERE rowid = "
        f"(SELECT rowid FROM contacts WHERE id = {contact_id});\n"
        "INSERT INTO contacts_fts(rowid, doc) SELECT c.rowid, "
        f"{_SQLITE_FOLD.format(doc)} FROM contacts c WHERE c.id = {contact_id};"
    )


def _upgrade_sqlite() -> None:
    body_new = _SQLITE_FOLD.format("new.body")
    body_old = _SQLITE_FOLD.format("old.body")
    statements = [
        "CREATE VIRTUAL TABLE messages_fts USING fts5(body, content='messages', "
        f"content_rowid='rowid', tokenize='{_TOKENIZE}', prefix='2 3')",
        "CREATE TRIGGER messages_fts_ai AFTER INSERT ON messages WHEN new.body IS NOT NULL "
        f"BEGIN INSERT INTO messages_fts(rowid, body) VALUES (new.rowid, {body_new}); END",
        "CREATE TRIGGER messages_fts_ad AFTER DELETE ON messages WHEN old.body IS NOT NULL "
        "BEGIN INSERT INTO messages_fts(messages_fts, rowid, body) "
        f"VALUES ('delete', old.rowid, {body_old}); END",
        "CREATE TRIGGER messages_fts_au AFTER UPDATE OF body ON messages BEGIN "
        "INSERT INTO messages_fts(messages_fts, rowid, body) SELECT 'delete', old.rowid, "
        f"{body_old} WHERE old.body IS NOT NULL; "
        f"INSERT INTO messages_fts(rowid, body) SELECT new.rowid, {body_new} "
        "WHERE new.body IS NOT NULL; END",
        f"INSERT INTO messages_fts(rowid, body) SELECT rowid, {_SQLITE_FOLD.format('body')} "
        "FROM messages WHERE body IS NOT NULL",
        f"CREATE VIRTUAL TABLE contacts_fts USING fts5(doc, tokenize='{_TOKENIZE}', prefix='2 3')",
        "CREATE TRIGGER contacts_fts_ai AFTER INSERT ON contacts BEGIN "
        f"{_sqlite_contact_text('new.id')} END",
        "CREATE TRIGGER contacts_fts_au AFTER UPDATE OF display_name ON contacts BEGIN "
        f"{_sqlite_contact_text('new.id')} END",
        "CREATE TRIGGER contacts_fts_ad AFTER DELETE ON contacts BEGIN "
        "DELETE FROM contacts_fts WHERE rowid = old.rowid; END",
        "CREATE TRIGGER contact_identities_fts_ai AFTER INSERT ON contact_identities BEGIN "
        f"{_sqlite_contact_text('new.contact_id')} END",
        "CREATE TRIGGER contact_identities_fts_au AFTER UPDATE ON contact_identities BEGIN "
        f"{_sqlite_contact_text('old.contact_id')} {_sqlite_contact_text('new.contact_id')} END",
        "CREATE TRIGGER contact_identities_fts_ad AFTER DELETE ON contact_identities BEGIN "
        f"{_sqlite_contact_text('old.contact_id')} END",
        "INSERT INTO contacts_fts(rowid, doc) SELECT c.rowid, "
        + _SQLITE_FOLD.format(
            "coalesce(c.display_name, '') || ' ' || coalesce((SELECT group_concat("
            "coalesce(i.address, '') || ' ' || coalesce(i.display_name, ''), ' ') "
            "FROM contact_identities i WHERE i.contact_id = c.id), '')"
        )
        + " FROM contacts c",
    ]
    for sql in statements:
        op.execute(sql)


def _create_fold_function(conn: Connection) -> bool:
    """Create tresen_search_fold(text); True when it uses unaccent."""
    schema = conn.scalar(
        text("SELECT extnamespace::regnamespace::text FROM pg_extension WHERE extname = 'unaccent'")
    )
    if schema is None:
        try:
            with conn.begin_nested():
                conn.execute(text("CREATE EXTENSION IF NOT EXISTS unaccent"))
            schema = conn.scalar(
                text(
                    "SELECT extnamespace::regnamespace::text FROM pg_extension "
                    "WHERE extname = 'unaccent'"
                )
            )
        except DBAPIError as exc:  # no privilege or not installed: fall back, and say so
            log.warning("unaccent not available (%s); search folds only common umlauts", exc)
    if schema is not None:
        body = f"SELECT {schema}.unaccent('{schema}.unaccent'::regdictionary, $1)"
    else:
        body = (
            "SELECT replace(replace(translate($1, 'äöüÄÖÜáàâéèêíìîóòôúùûçñ', "
            "'aouAOUaaaeeeiiiooouuucn'), 'ß', 'ss'), 'ẞ', 'SS')"
        )
    # unaccent() is only STABLE (it reads a dictionary); pinning the dictionary makes this
    # wrapper safe to declare IMMUTABLE, which generated columns require.
    conn.execute(
        text(
            "CREATE OR REPLACE FUNCTION tresen_search_fold(text) RETURNS text "
            f"LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT AS $fold$ {body} $fold$"
        )
    )
    return schema is not None


def _upgrade_postgresql() -> None:
    conn = op.get_bind()
    _create_fold_function(conn)
    # to_tsvector refuses documents over 1 MB; a message that long is searched by its start.
    statements = [
        "ALTER TABLE messages ADD COLUMN search_tsv tsvector GENERATED ALWAYS AS "
        "(to_tsvector('simple'::regconfig, tresen_search_fold(left(coalesce(body, ''), 100000)))) "
        "STORED",
        "CREATE INDEX ix_messages_search_tsv ON messages USING gin (search_tsv)",
        "ALTER TABLE contacts ADD COLUMN search_tsv tsvector GENERATED ALWAYS AS "
        "(to_tsvector('simple'::regconfig, tresen_search_fold(coalesce(display_name, '')))) STORED",
        "CREATE INDEX ix_contacts_search_tsv ON contacts USING gin (search_tsv)",
        "ALTER TABLE contact_identities ADD COLUMN search_tsv tsvector GENERATED ALWAYS AS "
        "(to_tsvector('simple'::regconfig, tresen_search_fold("
        "coalesce(address, '') || ' ' || coalesce(display_name, '')))) STORED",
        "CREATE INDEX ix_contact_identities_search_tsv ON contact_identities "
        "USING gin (search_tsv)",
        "CREATE INDEX ix_conversations_search_order ON conversations "
        "(workspace_id, last_message_at DESC NULLS LAST, id DESC)",
        "CREATE INDEX ix_conversations_status_order ON conversations "
        "(workspace_id, status, last_message_at DESC NULLS LAST, id DESC)",
        "CREATE INDEX ix_messages_workspace_created ON messages (workspace_id, created_at)",
    ]
    for sql in statements:
        op.execute(sql)


def upgrade() -> None:
    """Add the full-text indexes and backfill them."""
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        _upgrade_sqlite()
        for sql in (
            "CREATE INDEX ix_conversations_search_order ON conversations "
            "(workspace_id, last_message_at DESC, id DESC)",
            "CREATE INDEX ix_conversations_status_order ON conversations "
            "(workspace_id, status, last_message_at DESC, id DESC)",
            "CREATE INDEX ix_messages_workspace_created ON messages (workspace_id, created_at)",
        ):
            op.execute(sql)
    elif dialect == "postgresql":
        _upgrade_postgresql()
    else:  # pragma: no cover - only the two supported databases
        raise NotImplementedError(dialect)


def downgrade() -> None:
    """Drop the full-text indexes."""
    dialect = op.get_bind().dialect.name
    for name in (
        "ix_conversations_search_order",
        "ix_conversations_status_order",
        "ix_messages_workspace_created",
    ):
        op.execute(f"DROP INDEX IF EXISTS {name}")
    if dialect == "sqlite":
        for trigger in (
            "messages_fts_ai",
            "messages_fts_ad",
            "messages_fts_au",
            "contacts_fts_ai",
            "contacts_fts_au",
            "contacts_fts_ad",
            "contact_identities_fts_ai",
            "contact_identities_fts_au",
            "contact_identities_fts_ad",
        ):
            op.execute(f"DROP TRIGGER IF EXISTS {trigger}")
        op.execute("DROP TABLE IF EXISTS messages_fts")
        op.execute("DROP TABLE IF EXISTS contacts_fts")
    elif dialect == "postgresql":
        for table in ("messages", "contacts", "contact_identities"):
            op.execute(f"ALTER TABLE {table} DROP COLUMN IF EXISTS search_tsv")
        op.execute("DROP FUNCTION IF EXISTS tresen_search_fold(text)")
