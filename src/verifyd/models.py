"""The tables, as SQLAlchemy 2 typed models (hot paths use their ``__table__`` with Core)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    JSON,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from verifyd.modelbase import Base, utcnow


class Account(Base):
    """A signup. ``status`` is ``pending`` until the policy's identities are verified."""

    __tablename__ = "accounts"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    phone: Mapped[str | None] = mapped_column(String(32))
    email: Mapped[str | None] = mapped_column(String(320))
    phone_verified_at: Mapped[datetime | None]
    email_verified_at: Mapped[datetime | None]
    #: Which identities must be verified: ``all`` of ``needs`` or ``any`` of them.
    needs: Mapped[str] = mapped_column(String(32))
    needs_all: Mapped[bool] = mapped_column(Boolean)
    policy_version: Mapped[int] = mapped_column(Integer)
    arm: Mapped[str] = mapped_column(String(16))
    subject_hash: Mapped[str | None] = mapped_column(String(64))
    locale: Mapped[str | None] = mapped_column(String(35))
    redirect_url: Mapped[str | None] = mapped_column(Text)
    #: Why the signup looks suspect (``voip``, ``identity_taken``, …); empty when clean.
    flags: Mapped[list[str]] = mapped_column(JSON, default=list)
    #: True when an identity belonged to an active account: it can never activate.
    shadow: Mapped[bool] = mapped_column(Boolean, default=False)
    ip: Mapped[str | None] = mapped_column(String(64))
    #: The canonical mailbox of ``email`` (``aliases.alias_key``): aliases share it.
    email_key: Mapped[str | None] = mapped_column(String(320))
    #: The operator's latest label, ``fake`` or ``genuine`` (history in ``account_labels``).
    label: Mapped[str | None] = mapped_column(String(16))
    created_at: Mapped[datetime]
    activated_at: Mapped[datetime | None]

    __table_args__ = (
        Index("ix_accounts_policy_arm", "policy_version", "arm"),
        Index("ix_accounts_email_key", "email_key"),
    )


class Verification(Base):
    """One proof in progress: ``pending -> approved | expired | locked | canceled``."""

    __tablename__ = "verifications"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), index=True)
    channel: Mapped[str] = mapped_column(String(32))
    identity: Mapped[str] = mapped_column(String(8))
    destination: Mapped[str] = mapped_column(String(320))
    sandbox: Mapped[bool] = mapped_column(Boolean, default=False)
    #: Issued for an identity an active account owns: nothing is sent, nothing matches.
    shadow: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    #: Keyed hash of the live code or token; replaced on resend.
    secret_hash: Mapped[str] = mapped_column(String(64), index=True)
    #: Generation of the live secret: resends derive a fresh one from it.
    generation: Mapped[int] = mapped_column(Integer, default=0)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_checks: Mapped[int] = mapped_column(Integer)
    code_length: Mapped[int | None] = mapped_column(Integer)
    resends: Mapped[int] = mapped_column(Integer, default=0)
    delivery: Mapped[str] = mapped_column(String(16), default="queued")
    expires_at: Mapped[datetime]
    resend_available_at: Mapped[datetime]
    created_at: Mapped[datetime]
    approved_at: Mapped[datetime | None]
    #: When the link's page was first shown (a scanner or the user), for the stats.
    viewed_at: Mapped[datetime | None]
    #: The account's policy version and arm, copied so the stats need no join.
    policy_version: Mapped[int | None] = mapped_column(Integer)
    arm: Mapped[str | None] = mapped_column(String(16))

    __table_args__ = (Index("ix_verifications_status_expires", "status", "expires_at"),)


class Identity(Base):
    """A verified phone or email of an active account; unique, so one owner each."""

    __tablename__ = "identities"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(8))
    value: Mapped[str] = mapped_column(String(320))
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"))
    created_at: Mapped[datetime]

    __table_args__ = (UniqueConstraint("kind", "value", name="uq_identities_kind_value"),)


class Message(Base):
    """The outbox, written in the transaction that needs it.

    ``queued -> sent -> delivered | undelivered``, or ``queued -> dead`` when every
    provider of the chain failed, ``canceled`` when its code died before it went out,
    ``queued -> suppressed`` for a shadow signup (the dispatcher sends nothing). The
    body is rendered at delivery time from the verification and its generation, so no
    code or token is ever stored in clear.
    """

    __tablename__ = "messages"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    verification_id: Mapped[str | None] = mapped_column(ForeignKey("verifications.id"))
    generation: Mapped[int] = mapped_column(Integer, default=0)
    kind: Mapped[str] = mapped_column(String(8))  # sms | email
    #: The provider trying it now; once sent, the one that delivered it.
    provider: Mapped[str] = mapped_column(String(64))
    to: Mapped[str] = mapped_column(String(320))
    status: Mapped[str] = mapped_column(String(16), default="queued")
    #: Tries on the current provider (a failover starts it again at 0).
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime]
    last_error: Mapped[str | None] = mapped_column(Text)
    #: The provider's own error code (Twilio's ``21211``, an SMTP reply code).
    error_code: Mapped[str | None] = mapped_column(String(32))
    #: The provider's id for the message (Twilio's ``SM…`` SID), for its receipts.
    provider_message_id: Mapped[str | None] = mapped_column(String(64))
    #: The destination's region (``GB``) and the body's SMS segments, for its price.
    country: Mapped[str | None] = mapped_column(String(3))
    segments: Mapped[int | None] = mapped_column(Integer)
    #: Token of the worker holding the message until ``next_attempt_at``.
    lease: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]
    delivered_at: Mapped[datetime | None]

    __table_args__ = (
        Index("ix_messages_status_next", "status", "next_attempt_at"),
        Index("ix_messages_provider_message_id", "provider", "provider_message_id"),
        Index("ix_messages_verification_id", "verification_id"),
    )


class SandboxMessage(Base):
    """What the sandbox provider delivered: the one place a code is kept in clear."""

    __tablename__ = "sandbox_messages"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    to: Mapped[str] = mapped_column(String(320), index=True)
    channel: Mapped[str] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(8))  # code | link | notice
    body: Mapped[str] = mapped_column(Text)
    code: Mapped[str | None] = mapped_column(String(16))
    link: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]


class PolicyVersion(Base):
    """One version of the policy; the table is also the audit of every change."""

    __tablename__ = "policy_versions"

    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    document: Mapped[dict[str, Any]] = mapped_column(JSON)
    #: Salt of the split experiment; kept across weight edits, new per experiment.
    salt: Mapped[str] = mapped_column(String(64))
    changed_at: Mapped[datetime]
    changed_by: Mapped[str] = mapped_column(String(128))


class AdminKey(Base):
    """An admin API key; only the SHA-256 of its secret part is kept."""

    __tablename__ = "admin_keys"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    secret_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(128))
    revoked_at: Mapped[datetime | None]
    #: ``admin`` (``/v1/admin`` and the dashboard) or ``verify`` (the ``/v2`` surface only).
    scope: Mapped[str] = mapped_column(String(16), default="admin", server_default="admin")
    #: A verify key's account SID (``AC…``), its user name in HTTP Basic.
    account_sid: Mapped[str | None] = mapped_column(String(34))

    __table_args__ = (Index("ix_admin_keys_account_sid", "account_sid", unique=True),)


class AdminSession(Base):
    """A dashboard login: the SHA-256 of its cookie's token, the key it was opened with.

    Kept in the database so any replica verifies it, and so logging out, or revoking
    the key, ends it everywhere at once.
    """

    __tablename__ = "admin_sessions"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    key_id: Mapped[str] = mapped_column(ForeignKey("admin_keys.id"))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime] = mapped_column(index=True)


class AuditEvent(Base):
    """Who changed what, when: admin keys and policy changes, old -> new."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(128))
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON)


def table_of(model: type[Base]) -> Table:
    """The Core ``Table`` of a model, for Core statements on hot paths."""
    return cast(Table, model.__table__)


# The limits' and the comparison's tables live beside these; imported here so that every
# table is on the metadata whenever the models are (migrations, ``create_all``, the
# schema test).
from verifyd.limit_models import (  # noqa: E402
    IdempotencyKey,
    RateCounter,
    SlidingLimit,
    SmsBreaker,
)
from verifyd.stats_models import AccountLabel, Exposure, SignupBlock, StatCount  # noqa: E402
from verifyd.verify_models import VerifyService, VerifyVerification  # noqa: E402

__all__ = [
    "Account",
    "AccountLabel",
    "AdminKey",
    "AdminSession",
    "AuditEvent",
    "Base",
    "Exposure",
    "IdempotencyKey",
    "Identity",
    "Message",
    "PolicyVersion",
    "RateCounter",
    "SandboxMessage",
    "SignupBlock",
    "SmsBreaker",
    "SlidingLimit",
    "StatCount",
    "Verification",
    "VerifyService",
    "VerifyVerification",
    "table_of",
    "utcnow",
]
