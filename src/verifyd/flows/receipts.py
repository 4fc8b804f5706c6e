"""Delivery receipts: a provider's word that a sent message reached the phone, or did not."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sqlalchemy import Connection, select, update

from verifyd import rollup
from verifyd.db import Database
from verifyd.models import Message, Verification, table_of, utcnow

log = logging.getLogger("verifyd.receipts")

_messages = table_of(Message)
_verifications = table_of(Verification)

Outcome = Literal["delivered", "undelivered"]

#: What a receipt's outcome makes of the verification's ``delivery``.
_DELIVERY: dict[Outcome, str] = {"delivered": "delivered", "undelivered": "failed"}
#: The only message status a receipt moves on from: ``delivered`` and ``undelivered`` are
#: final, so a late or out-of-order receipt never rewrites them.
_AWAITING_RECEIPT = "sent"
#: The verification states a receipt may change (it never unsays a final word).
_OPEN_DELIVERY = ("queued", "sent")


@dataclass(frozen=True)
class Receipt:
    """A provider's final word on one message.

    Args:
        provider: The provider's name (``twilio``).
        provider_message_id: The provider's id for the message, as ``send`` returned it.
        outcome: ``delivered``, or ``undelivered`` (the phone will not get it).
        error_code: The provider's error code for an undelivered message.
        detail: A line for the message's ``last_error`` (no destination, no secret).
    """

    provider: str
    provider_message_id: str
    outcome: Outcome
    error_code: str | None = None
    detail: str | None = None


RecordResult = Literal["applied", "unknown", "unchanged"]


class Receipts:
    """Records delivery receipts on the outbox and the verification they concern.

    Args:
        db: The database.
    """

    def __init__(self, db: Database) -> None:
        self._db = db

    async def record(self, receipt: Receipt) -> RecordResult:
        """Move the message to ``delivered``/``undelivered``, and its verification with it.

        One transaction of conditional updates: the message moves only from ``sent``
        (a final status is never overwritten), and the verification's ``delivery``
        only when the message carried the verification's current code (a receipt for
        a code a resend replaced says nothing about the new one).

        Returns:
            ``applied`` when the message moved, ``unknown`` when no message of this
            provider has that id, ``unchanged`` when it had already reached a final
            status (or was never marked sent).
        """
        now = utcnow()

        def work(conn: Connection) -> RecordResult:
            return self._apply(conn, receipt, now)

        result = await self._db.transact(work)
        if result == "unknown":
            # Also the answer when the receipt beats the outbox's own record of the send.
            log.info(
                "receipt from %s for unknown message %s (%s): ignored",
                receipt.provider,
                receipt.provider_message_id,
                receipt.outcome,
            )
        elif result == "unchanged":
            log.info(
                "receipt from %s for message %s (%s) changed nothing: already final",
                receipt.provider,
                receipt.provider_message_id,
                receipt.outcome,
            )
        return result

    @staticmethod
    def _apply(conn: Connection, receipt: Receipt, now: datetime) -> RecordResult:
        m, v = _messages.c, _verifications.c
        which = (m.provider == receipt.provider) & (
            m.provider_message_id == receipt.provider_message_id
        )
        values: dict[str, object] = {"status": receipt.outcome}
        if receipt.outcome == "delivered":
            values["delivered_at"] = now
        else:
            values["error_code"] = receipt.error_code
            values["last_error"] = receipt.detail
        moved = conn.execute(
            update(_messages)
            .where(which, m.status == _AWAITING_RECEIPT)
            .values(values)
            .returning(m.verification_id, m.generation, m.kind)
        ).all()
        if not moved:
            known = conn.execute(select(m.id).where(which).limit(1)).first()
            return "unchanged" if known is not None else "unknown"
        counter = "delivered" if receipt.outcome == "delivered" else "failed"
        for verification_id, generation, kind in moved:
            if verification_id is None:
                continue
            cohort = conn.execute(
                select(v.policy_version, v.arm, v.created_at).where(v.id == verification_id)
            ).one()
            version, arm, created = cohort
            rollup.add(conn, version, arm, f"{counter}.{kind}", created)
            conn.execute(
                update(_verifications)
                .where(
                    v.id == verification_id,
                    v.generation == generation,
                    v.delivery.in_(_OPEN_DELIVERY),
                )
                .values(delivery=_DELIVERY[receipt.outcome])
            )
        return "applied"
