"""the comparison: exposures, blocked signups, labels, the stats rollup, signal columns

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("email_key", sa.String(length=320), nullable=True))
        batch_op.add_column(sa.Column("label", sa.String(length=16), nullable=True))
        batch_op.create_index("ix_accounts_email_key", ["email_key"], unique=False)
    with op.batch_alter_table("verifications", schema=None) as batch_op:
        batch_op.add_column(sa.Column("viewed_at", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("policy_version", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("arm", sa.String(length=16), nullable=True))
        batch_op.create_index(
            "ix_verifications_status_expires", ["status", "expires_at"], unique=False
        )
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("country", sa.String(length=3), nullable=True))
        batch_op.add_column(sa.Column("segments", sa.Integer(), nullable=True))
    op.create_table(
        "exposures",
        sa.Column("policy_version", sa.Integer(), nullable=False),
        sa.Column("subject_hash", sa.String(length=64), nullable=False),
        sa.Column("arm", sa.String(length=16), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("policy_version", "subject_hash", name=op.f("pk_exposures")),
    )
    op.create_table(
        "signup_blocks",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("policy_version", sa.Integer(), nullable=False),
        sa.Column("arm", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("ip", sa.String(length=64), nullable=True),
        sa.Column("destination_hash", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_signup_blocks")),
    )
    op.create_index("ix_signup_blocks_at", "signup_blocks", ["at"], unique=False)
    op.create_index("ix_signup_blocks_ip_at", "signup_blocks", ["ip", "at"], unique=False)
    op.create_index(
        "ix_signup_blocks_destination_at",
        "signup_blocks",
        ["destination_hash", "at"],
        unique=False,
    )
    op.create_table(
        "account_labels",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("account_id", sa.String(length=40), nullable=False),
        sa.Column("label", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_account_labels_account_id_accounts"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_account_labels")),
    )
    op.create_index("ix_account_labels_account_id", "account_labels", ["account_id"], unique=False)
    op.create_table(
        "stat_counts",
        sa.Column("policy_version", sa.Integer(), nullable=False),
        sa.Column("arm", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=96), nullable=False),
        sa.Column("hour", sa.Integer(), nullable=False),
        sa.Column("shard", sa.Integer(), nullable=False),
        sa.Column("value", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint(
            "policy_version", "arm", "name", "hour", "shard", name=op.f("pk_stat_counts")
        ),
    )
    op.create_index("ix_stat_counts_hour", "stat_counts", ["hour"], unique=False)
    op.execute(
        "UPDATE verifications SET"
        " policy_version = (SELECT policy_version FROM accounts"
        " WHERE accounts.id = verifications.account_id),"
        " arm = (SELECT arm FROM accounts WHERE accounts.id = verifications.account_id)"
    )
    # Signups made before this revision get their counters from their rows.
    from verifyd.rebuild import rebuild

    rebuild(op.get_bind())


def downgrade() -> None:
    op.drop_index("ix_stat_counts_hour", table_name="stat_counts")
    op.drop_table("stat_counts")
    op.drop_index("ix_account_labels_account_id", table_name="account_labels")
    op.drop_table("account_labels")
    op.drop_index("ix_signup_blocks_destination_at", table_name="signup_blocks")
    op.drop_index("ix_signup_blocks_ip_at", table_name="signup_blocks")
    op.drop_index("ix_signup_blocks_at", table_name="signup_blocks")
    op.drop_table("signup_blocks")
    op.drop_table("exposures")
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_column("segments")
        batch_op.drop_column("country")
    with op.batch_alter_table("verifications", schema=None) as batch_op:
        batch_op.drop_index("ix_verifications_status_expires")
        batch_op.drop_column("arm")
        batch_op.drop_column("policy_version")
        batch_op.drop_column("viewed_at")
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.drop_index("ix_accounts_email_key")
        batch_op.drop_column("label")
        batch_op.drop_column("email_key")
