"""The comparison's tables: exposures, refused signups, labels and the stats' rollup."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from verifyd.modelbase import Base


class Exposure(Base):
    """A subject shown the signup form under a policy version (once per subject)."""

    __tablename__ = "exposures"

    policy_version: Mapped[int] = mapped_column(Integer, primary_key=True)
    subject_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    arm: Mapped[str] = mapped_column(String(16))
    at: Mapped[datetime]


class SignupBlock(Base):
    """A signup refused for what it was (a blocked number type, country or signal)."""

    __tablename__ = "signup_blocks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime]
    policy_version: Mapped[int] = mapped_column(Integer)
    arm: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(String(32))
    ip: Mapped[str | None] = mapped_column(String(64))
    #: Keyed hash of the refused destination, so a later signup can be told it was refused.
    destination_hash: Mapped[str | None] = mapped_column(String(64))

    __table_args__ = (
        Index("ix_signup_blocks_at", "at"),
        Index("ix_signup_blocks_ip_at", "ip", "at"),
        Index("ix_signup_blocks_destination_at", "destination_hash", "at"),
    )


class AccountLabel(Base):
    """The operator's ground truth about an account, with who said so and when."""

    __tablename__ = "account_labels"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), index=True)
    label: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(Text)
    actor: Mapped[str] = mapped_column(String(128))
    at: Mapped[datetime]


class StatCount(Base):
    """The stats' rollup: one counter per policy version, arm, name and hour.

    Written in the transaction of the event it counts, so it agrees with the rows;
    ``hour`` is the signup's hour for everything that happens to a signup (its
    cohort), the event's own hour for exposures and blocked signups. ``shard``
    spreads PostgreSQL's row locks; the stats sum over it.
    """

    __tablename__ = "stat_counts"

    policy_version: Mapped[int] = mapped_column(Integer, primary_key=True)
    arm: Mapped[str] = mapped_column(String(16), primary_key=True)
    name: Mapped[str] = mapped_column(String(96), primary_key=True)
    hour: Mapped[int] = mapped_column(Integer, primary_key=True)
    shard: Mapped[int] = mapped_column(Integer, primary_key=True)
    value: Mapped[int] = mapped_column(Integer)

    __table_args__ = (Index("ix_stat_counts_hour", "hour"),)
