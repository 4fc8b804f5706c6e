"""SMS-pumping breakers: prefixes and countries whose sends are held

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "sms_breakers",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("scope", sa.String(length=8), nullable=False),
        sa.Column("key", sa.String(length=32), nullable=False),
        sa.Column("window_start", sa.Integer(), nullable=False),
        sa.Column("tripped_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.Column("sent", sa.Integer(), nullable=False),
        sa.Column("verified", sa.Integer(), nullable=False),
        sa.Column("lifted_at", sa.DateTime(), nullable=True),
        sa.Column("lifted_by", sa.String(length=128), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sms_breakers")),
        sa.UniqueConstraint("scope", "key", "window_start", name=op.f("uq_sms_breakers_scope")),
    )
    op.create_index("ix_sms_breakers_expires_at", "sms_breakers", ["expires_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_sms_breakers_expires_at", table_name="sms_breakers")
    op.drop_table("sms_breakers")
