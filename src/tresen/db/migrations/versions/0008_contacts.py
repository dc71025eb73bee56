"""contacts: merges (with what moved, for undo), merged contacts kept; labels on conversations

Revision ID: 0010_contacts
Revises: 0011_templates
Create Date: 2026-12-02
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

import tresen.db.types

revision = "0010_contacts"
down_revision = "0011_templates"
branch_labels = None
depends_on = None


def _json() -> Any:
    return sa.JSON().with_variant(sa.dialects.postgresql.JSONB(), "postgresql")


def _when(name: str, nullable: bool = False) -> Any:
    return sa.Column(name, tresen.db.types.UTCDateTime(timezone=True), nullable=nullable)


def _fk(table: str, column: str, target: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column],
        [f"{target}.id"],
        name=op.f(f"fk_{table}_{column}_{target}"),
        ondelete="CASCADE",
    )


def upgrade() -> None:
    # Plain ADD COLUMN: a batch rebuild on SQLite would drop the search triggers on contacts.
    op.add_column("contacts", sa.Column("merged_into_id", sa.String(26), nullable=True))
    op.create_index(op.f("ix_contacts_merged_into_id"), "contacts", ["merged_into_id"])
    op.create_table(
        "contact_merges",
        sa.Column("id", sa.String(26), nullable=False),
        sa.Column("workspace_id", sa.String(26), nullable=False),
        sa.Column("target_id", sa.String(26), nullable=False),
        sa.Column("source_id", sa.String(26), nullable=False),
        sa.Column("actor_id", sa.String(26), nullable=True),
        sa.Column("identity_ids", _json(), nullable=False),
        sa.Column("conversation_ids", _json(), nullable=False),
        sa.Column("target_before", _json(), nullable=False),
        sa.Column("source_before", _json(), nullable=False),
        sa.Column("filled_keys", _json(), nullable=False),
        sa.Column("consent_state", sa.String(12), nullable=False),
        _when("created_at"),
        _when("undone_at", nullable=True),
        sa.Column("undone_by", sa.String(26), nullable=True),
        _fk("contact_merges", "workspace_id", "workspaces"),
        _fk("contact_merges", "target_id", "contacts"),
        _fk("contact_merges", "source_id", "contacts"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_contact_merges")),
    )
    for column in ("workspace_id", "target_id", "source_id"):
        op.create_index(op.f(f"ix_contact_merges_{column}"), "contact_merges", [column])
    op.create_table(
        "labels",
        sa.Column("id", sa.String(26), nullable=False),
        sa.Column("workspace_id", sa.String(26), nullable=False),
        sa.Column("name", sa.String(40), nullable=False),
        sa.Column("colour", sa.String(16), nullable=False),
        _when("created_at"),
        _fk("labels", "workspace_id", "workspaces"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_labels")),
        sa.UniqueConstraint("workspace_id", "name", name=op.f("uq_labels_workspace_id")),
    )
    op.create_index(op.f("ix_labels_workspace_id"), "labels", ["workspace_id"])
    op.create_table(
        "conversation_labels",
        sa.Column("conversation_id", sa.String(26), nullable=False),
        sa.Column("label_id", sa.String(26), nullable=False),
        sa.Column("workspace_id", sa.String(26), nullable=False),
        _when("created_at"),
        _fk("conversation_labels", "conversation_id", "conversations"),
        _fk("conversation_labels", "label_id", "labels"),
        _fk("conversation_labels", "workspace_id", "workspaces"),
        sa.PrimaryKeyConstraint("conversation_id", "label_id", name=op.f("pk_conversation_labels")),
    )
    for column in ("label_id", "workspace_id"):
        op.create_index(op.f(f"ix_conversation_labels_{column}"), "conversation_labels", [column])


def downgrade() -> None:
    op.drop_table("conversation_labels")
    op.drop_table("labels")
    op.drop_table("contact_merges")
    op.drop_index(op.f("ix_contacts_merged_into_id"), table_name="contacts")
    op.drop_column("contacts", "merged_into_id")
