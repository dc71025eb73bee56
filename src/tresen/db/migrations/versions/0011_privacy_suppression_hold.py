"""privacy: suppression hashes, legal hold, consent proof that survives erasure

Consent events stay append-only; the one change the database now lets through is erasing
the IP address and user agent of an event (every other column unchanged), so that the proof
of consent and of its withdrawal survives an erasure without personal data.

Revision ID: 0006_privacy
Revises: 0009_media
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import tresen.db.types

revision = "0006_privacy"
down_revision = "0009_media"
branch_labels = None
depends_on = None

_KEPT = (
    "id",
    "workspace_id",
    "contact_id",
    "purpose",
    "action",
    "channel_id",
    "source",
    "text_version",
    "text_hash",
    "language",
    "occurred_at",
)


def _sqlite_update_trigger(allow_scrub: bool) -> str:
    when = ""
    if allow_scrub:
        same = " AND ".join(f"new.{c} IS old.{c}" for c in _KEPT)
        when = f"WHEN NOT ({same} AND new.ip_address IS NULL AND new.user_agent IS NULL) "
    return (
        "CREATE TRIGGER consent_events_no_update BEFORE UPDATE ON consent_events "
        f"{when}BEGIN SELECT RAISE(ABORT, "
        "'table consent_events is append-only: UPDATE refused'); END"
    )


def upgrade() -> None:
    op.create_table(
        "suppressions",
        sa.Column("id", sa.String(26), nullable=False),
        sa.Column("workspace_id", sa.String(26), nullable=False),
        sa.Column("address_hash", sa.String(64), nullable=False),
        sa.Column("erased_contact_id", sa.String(26), nullable=False),
        sa.Column("created_at", tresen.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_suppressions_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_suppressions")),
        sa.UniqueConstraint(
            "workspace_id", "address_hash", name=op.f("uq_suppressions_workspace_id")
        ),
    )
    op.create_index(
        op.f("ix_suppressions_workspace_id"), "suppressions", ["workspace_id"], unique=False
    )
    # Plain ADD COLUMN: a batch rebuild on SQLite would drop the search triggers and indexes.
    op.add_column(
        "conversations",
        sa.Column("legal_hold", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    if op.get_bind().dialect.name == "postgresql":
        same = " AND ".join(f"NEW.{c} IS NOT DISTINCT FROM OLD.{c}" for c in _KEPT)
        op.execute(
            "CREATE FUNCTION tresen_consent_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ "
            f"BEGIN IF TG_OP = 'UPDATE' AND {same} "
            "AND NEW.ip_address IS NULL AND NEW.user_agent IS NULL THEN RETURN NEW; END IF; "
            "RAISE EXCEPTION 'table % is append-only: % refused', TG_TABLE_NAME, TG_OP; END $$"
        )
        op.execute("DROP TRIGGER consent_events_append_only ON consent_events")
        op.execute(
            "CREATE TRIGGER consent_events_append_only BEFORE UPDATE OR DELETE ON consent_events "
            "FOR EACH ROW EXECUTE FUNCTION tresen_consent_append_only()"
        )
    else:
        op.execute("DROP TRIGGER consent_events_no_update")
        op.execute(_sqlite_update_trigger(allow_scrub=True))


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER consent_events_append_only ON consent_events")
        op.execute(
            "CREATE TRIGGER consent_events_append_only BEFORE UPDATE OR DELETE ON consent_events "
            "FOR EACH ROW EXECUTE FUNCTION tresen_append_only()"
        )
        op.execute("DROP FUNCTION IF EXISTS tresen_consent_append_only()")
    else:
        op.execute("DROP TRIGGER consent_events_no_update")
        op.execute(_sqlite_update_trigger(allow_scrub=False))
    op.drop_column("conversations", "legal_hold")
    op.drop_index(op.f("ix_suppressions_workspace_id"), table_name="suppressions")
    op.drop_table("suppressions")
