"""users: my own test address per channel kind (the campaign wizard prefills it)

Revision ID: 0030_polish_test_addresses
Revises: 0029_people_canned_scope
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0030_polish_test_addresses"
down_revision = "0029_people_canned_scope"
branch_labels = None
depends_on = None

_JSON = sa.JSON().with_variant(sa.dialects.postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("test_addresses", _JSON, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.drop_column("test_addresses")
