"""ops: fingerprints of the install's keys; heartbeats of running processes

Revision ID: 0025_install_keys_processes
Revises: 0024_people
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import tresen.db.types

revision = "0025_install_keys_processes"
down_revision = "0024_people"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "install_keys",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("recorded_at", tresen.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_install_keys")),
    )
    op.create_table(
        "process_heartbeats",
        sa.Column("id", sa.String(length=120), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("version", sa.String(length=32), nullable=False),
        sa.Column("schema_revision", sa.String(length=64), nullable=False),
        sa.Column("secret_fingerprint", sa.String(length=64), nullable=False),
        sa.Column("encryption_fingerprint", sa.String(length=255), nullable=False),
        sa.Column("data_dir", sa.Text(), nullable=False),
        sa.Column("base_url", sa.Text(), nullable=False),
        sa.Column("started_at", tresen.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("seen_at", tresen.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("stopped_at", tresen.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_process_heartbeats")),
    )
    op.create_index(
        op.f("ix_process_heartbeats_seen_at"), "process_heartbeats", ["seen_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_process_heartbeats_seen_at"), table_name="process_heartbeats")
    op.drop_table("process_heartbeats")
    op.drop_table("install_keys")
