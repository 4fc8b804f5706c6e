"""real delivery: provider ids, error codes, leases and receipts on the outbox

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("error_code", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("provider_message_id", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("lease", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("delivered_at", sa.DateTime(), nullable=True))
        batch_op.create_index(
            "ix_messages_provider_message_id", ["provider", "provider_message_id"], unique=False
        )
        batch_op.create_index("ix_messages_verification_id", ["verification_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_index("ix_messages_verification_id")
        batch_op.drop_index("ix_messages_provider_message_id")
        batch_op.drop_column("delivered_at")
        batch_op.drop_column("lease")
        batch_op.drop_column("provider_message_id")
        batch_op.drop_column("error_code")
