"""sliding-log limits: per-destination guesses and sends over any window, with backoff

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "sliding_limits",
        sa.Column("key", sa.String(length=400), nullable=False),
        sa.Column("events", sa.Text(), nullable=False),
        sa.Column("last_at", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_sliding_limits")),
    )
    op.create_index(op.f("ix_sliding_limits_last_at"), "sliding_limits", ["last_at"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_sliding_limits_last_at"), table_name="sliding_limits")
    op.drop_table("sliding_limits")
