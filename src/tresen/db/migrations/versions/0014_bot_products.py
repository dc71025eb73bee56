"""bot: the product catalog the bot answers from

Revision ID: 0013_bot_products
Revises: 0012_send_job_index
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import tresen.db.types

revision = "0013_bot_products"
down_revision = "0012_send_job_index"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "bot_products",
        sa.Column("id", sa.String(length=26), nullable=False),
        sa.Column("workspace_id", sa.String(length=26), nullable=False),
        sa.Column("sku", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=300), nullable=False),
        sa.Column("brand", sa.String(length=100), nullable=False),
        sa.Column("category", sa.String(length=100), nullable=False),
        sa.Column(
            "sizes",
            sa.JSON().with_variant(sa.dialects.postgresql.JSONB(), "postgresql"),
            nullable=False,
        ),
        sa.Column("price_cents", sa.Integer(), nullable=False),
        sa.Column("stock", sa.Integer(), nullable=False),
        sa.Column("url", sa.String(length=1000), nullable=False),
        sa.Column("updated_at", tresen.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_bot_products_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bot_products")),
        sa.UniqueConstraint("workspace_id", "sku", name=op.f("uq_bot_products_workspace_id")),
    )
    op.create_index(
        op.f("ix_bot_products_workspace_id"), "bot_products", ["workspace_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_bot_products_workspace_id"), table_name="bot_products")
    op.drop_table("bot_products")
