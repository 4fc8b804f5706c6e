"""the Twilio-compatible surface: Verify services, their verifications, scoped keys

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "verify_services",
        sa.Column("sid", sa.String(length=34), nullable=False),
        sa.Column("account_sid", sa.String(length=34), nullable=False),
        sa.Column("account_id", sa.String(length=40), nullable=False),
        sa.Column("stats_key", sa.String(length=16), nullable=False),
        sa.Column("friendly_name", sa.String(length=64), nullable=False),
        sa.Column("code_length", sa.Integer(), nullable=False),
        sa.Column("options", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.Column("deleted_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_verify_services_account_id_accounts")
        ),
        sa.PrimaryKeyConstraint("sid", name=op.f("pk_verify_services")),
        sa.UniqueConstraint("account_id", name=op.f("uq_verify_services_account_id")),
        sa.UniqueConstraint("stats_key", name=op.f("uq_verify_services_stats_key")),
    )
    with op.batch_alter_table("verify_services", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_verify_services_account_sid"), ["account_sid"], unique=False
        )

    op.create_table(
        "verify_verifications",
        sa.Column("sid", sa.String(length=40), nullable=False),
        sa.Column("service_sid", sa.String(length=34), nullable=False),
        sa.Column("to", sa.String(length=320), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("locale", sa.String(length=35), nullable=True),
        sa.Column("friendly_name", sa.String(length=64), nullable=False),
        sa.Column("send_attempts", sa.JSON(), nullable=False),
        sa.Column("lookup", sa.JSON(), nullable=False),
        sa.Column("approved_by_api", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["service_sid"],
            ["verify_services.sid"],
            name=op.f("fk_verify_verifications_service_sid_verify_services"),
        ),
        sa.ForeignKeyConstraint(
            ["sid"], ["verifications.id"], name=op.f("fk_verify_verifications_sid_verifications")
        ),
        sa.PrimaryKeyConstraint("sid", name=op.f("pk_verify_verifications")),
    )
    with op.batch_alter_table("verify_verifications", schema=None) as batch_op:
        batch_op.create_index(
            "ix_verify_verifications_service_to", ["service_sid", "to"], unique=False
        )

    with op.batch_alter_table("admin_keys", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("scope", sa.String(length=16), server_default="admin", nullable=False)
        )
        batch_op.add_column(sa.Column("account_sid", sa.String(length=34), nullable=True))
        batch_op.create_index("ix_admin_keys_account_sid", ["account_sid"], unique=True)


def downgrade() -> None:
    with op.batch_alter_table("admin_keys", schema=None) as batch_op:
        batch_op.drop_index("ix_admin_keys_account_sid")
        batch_op.drop_column("account_sid")
        batch_op.drop_column("scope")

    with op.batch_alter_table("verify_verifications", schema=None) as batch_op:
        batch_op.drop_index("ix_verify_verifications_service_to")

    op.drop_table("verify_verifications")
    with op.batch_alter_table("verify_services", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_verify_services_account_sid"))

    op.drop_table("verify_services")
