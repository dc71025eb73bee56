"""secrets encrypted at rest: channel configs, workspace settings (webhook secret), TOTP

Revision ID: 0022_secret_encryption
Revises: 0021_consent_held
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from tresen.db import crypto
from tresen.db.types import EncryptedText, SecretFieldsJson

revision = "0022_secret_encryption"
down_revision = "0021_consent_held"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.alter_column("totp_secret", type_=sa.Text(), existing_nullable=True)
    keyring = crypto.active()
    if keyring is None or not keyring.encrypts:
        return  # nothing to encrypt with; `tresen privacy rotate-key` does it once keys are set
    bind = op.get_bind()
    columns: tuple[tuple[str, str, sa.types.TypeEngine[object]], ...] = (
        ("channels", "config", SecretFieldsJson("channels.config")),
        ("workspaces", "settings", SecretFieldsJson("workspaces.settings")),
        ("users", "totp_secret", EncryptedText("users.totp_secret")),
    )
    for name, column, kind in columns:
        # Read through the column type (plaintext passes) and write back through it (sealed).
        typed = sa.table(name, sa.column("id", sa.String), sa.column(column, kind))
        for row_id, value in bind.execute(sa.select(typed.c.id, typed.c[column])).all():
            if value is not None:
                bind.execute(sa.update(typed).where(typed.c.id == row_id).values({column: value}))


def downgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.alter_column("totp_secret", type_=sa.String(length=64), existing_nullable=True)
