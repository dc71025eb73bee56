"""campaigns: the audience is expanded in batches that resume after a crash

Revision ID: 0014_campaign_expansion
Revises: 0013_campaigns
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import tresen.db.types

revision = "0014_campaign_expansion"
down_revision = "0013_campaigns"
branch_labels = None
depends_on = None

_TIME = tresen.db.types.UTCDateTime(timezone=True)


def upgrade() -> None:
    """The last contact expanded, and the lease of the process expanding."""
    with op.batch_alter_table("campaigns") as batch_op:
        batch_op.add_column(sa.Column("expanded_through", sa.String(length=26), nullable=True))
        batch_op.add_column(sa.Column("expand_lease_until", _TIME, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("campaigns") as batch_op:
        batch_op.drop_column("expand_lease_until")
        batch_op.drop_column("expanded_through")
