"""The Twilio-compatible surface's tables: Verify services and what a verification adds.

A verification started under ``/v2`` is an ordinary row of ``verifications`` (same
channels, secrets, attempt cap, outbox and sweep); ``verify_verifications`` holds what
Twilio's API adds to it: the service, the destination as the caller spelt it, the
locale and the name its messages carry, and every send. Its ``verifications`` row
hangs from the service's own account row (``accounts.status = 'service'``, never a
signup) and is counted in the stats under policy version ``0`` and the service's
``stats_key`` as arm (:data:`STATS_VERSION`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from verifyd.modelbase import Base

#: The policy version the stats count ``/v2`` verifications under (signup policies start at 1).
STATS_VERSION = 0
#: ``accounts.status`` of a service's own account row.
SERVICE_ACCOUNT = "service"


class VerifyService(Base):
    """A Verify service (``VA…``) of one verify-scoped credential (its ``AC…``)."""

    __tablename__ = "verify_services"

    sid: Mapped[str] = mapped_column(String(34), primary_key=True)
    account_sid: Mapped[str] = mapped_column(String(34), index=True)
    #: The internal account row its verifications hang from.
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), unique=True)
    #: The service's arm in the stats' rollup (``VA`` and 14 hex digits of its sid).
    stats_key: Mapped[str] = mapped_column(String(16), unique=True)
    friendly_name: Mapped[str] = mapped_column(String(64))
    code_length: Mapped[int] = mapped_column(Integer)
    #: Every other documented field, as the caller set it (answered back as given).
    options: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    #: Set by ``DELETE``: the service answers 404 from then on, its stats stay.
    deleted_at: Mapped[datetime | None]


class VerifyVerification(Base):
    """What a ``/v2`` verification (``VE…``, the ``verifications`` row's id) adds."""

    __tablename__ = "verify_verifications"

    sid: Mapped[str] = mapped_column(ForeignKey("verifications.id"), primary_key=True)
    service_sid: Mapped[str] = mapped_column(ForeignKey("verify_services.sid"))
    #: The destination, normalised (E.164 or the address), as the caller's ``To`` names it.
    to: Mapped[str] = mapped_column(String(320))
    #: Twilio's channel name (``sms``, ``email``).
    channel: Mapped[str] = mapped_column(String(16))
    locale: Mapped[str | None] = mapped_column(String(35))
    #: The name its messages carry: ``CustomFriendlyName``, else the service's.
    friendly_name: Mapped[str] = mapped_column(String(64))
    #: Each send: ``{"time", "channel", "attempt_sid"}``, oldest first.
    send_attempts: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    #: Twilio's ``lookup`` object (``{}`` unless the service has ``lookup_enabled``).
    lookup: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    #: ``POST …/Verifications/{sid}`` with ``Status=approved``: approved without a code.
    approved_by_api: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    __table_args__ = (Index("ix_verify_verifications_service_to", "service_sid", "to"),)
