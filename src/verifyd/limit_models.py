"""The abuse limits' tables: rate counters, sliding logs, SMS breakers, idempotency keys."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from verifyd.modelbase import Base


class RateCounter(Base):
    """A fixed-window counter shared by every worker (``key`` names bucket and subject)."""

    __tablename__ = "rate_counters"

    key: Mapped[str] = mapped_column(String(400), primary_key=True)
    window_start: Mapped[int] = mapped_column(Integer, primary_key=True)
    count: Mapped[int] = mapped_column(Integer)


class SmsBreaker(Base):
    """A number prefix or country whose SMS are held: it sent codes nobody verified.

    Tripped by ``flows/pumping.py``; it holds until ``expires_at`` or until an operator
    lifts it (``lifted_at``). Rows are kept, so ``/metrics`` counts every trip.
    """

    __tablename__ = "sms_breakers"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    #: ``prefix`` (E.164 without its last digits) or ``country`` (a phonenumbers region).
    scope: Mapped[str] = mapped_column(String(8))
    key: Mapped[str] = mapped_column(String(32))
    #: The breaker window the trip was judged in: one trip per key and window.
    window_start: Mapped[int] = mapped_column(Integer)
    tripped_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    #: What the window held when it tripped.
    sent: Mapped[int] = mapped_column(Integer)
    verified: Mapped[int] = mapped_column(Integer)
    lifted_at: Mapped[datetime | None]
    lifted_by: Mapped[str | None] = mapped_column(String(128))

    __table_args__ = (
        UniqueConstraint("scope", "key", "window_start"),
        Index("ix_sms_breakers_expires_at", "expires_at"),
    )


class SlidingLimit(Base):
    """A sliding log of one key's recent allowed events (``verifyd.slidinglimit``)."""

    __tablename__ = "sliding_limits"

    key: Mapped[str] = mapped_column(String(400), primary_key=True)
    #: Epoch microseconds of the allowed events still in the window, oldest first.
    events: Mapped[str] = mapped_column(Text)
    #: Epoch seconds of the newest write, for the purge.
    last_at: Mapped[int] = mapped_column(Integer, index=True)


class IdempotencyKey(Base):
    """A replayable ``POST /v1/accounts`` answer, kept 24 h."""

    __tablename__ = "idempotency_keys"

    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16))  # in_progress | done
    response_status: Mapped[int | None] = mapped_column(Integer)
    response_body: Mapped[str | None] = mapped_column(Text)
    location: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime] = mapped_column(index=True)
