"""an index to find the send job of a message (waking the next message of a conversation)

Revision ID: 0012_send_job_index
Revises: 0008_topics
Create Date: 2026-12-02
"""

from __future__ import annotations

from alembic import op

revision = "0012_send_job_index"
down_revision = "0008_topics"
branch_labels = None
depends_on = None

# The expression must be written exactly as tresen.handlers.send queries it.
_EXPRESSION = {
    "postgresql": "(payload ->> 'message_id')",
    "sqlite": "json_extract(payload, '$.message_id')",
}


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    op.execute(
        f"CREATE INDEX ix_jobs_send_message ON jobs ({_EXPRESSION[dialect]}) "
        "WHERE kind = 'message.send'"
    )


def downgrade() -> None:
    op.execute("DROP INDEX ix_jobs_send_message")
