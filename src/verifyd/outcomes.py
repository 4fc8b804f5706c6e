"""What one try of a message came to: sent, again later, on the next provider, or dead.

Recorded only by the worker still holding the message's lease (see ``outbox.py``), in
one transaction with the verification's ``delivery`` and the stats' counters.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from sqlalchemy import Connection, update

from verifyd import rollup
from verifyd.db import Database
from verifyd.models import Message, Verification, table_of, utcnow
from verifyd.providers.base import DeliveryError
from verifyd.retry import Backoff

log = logging.getLogger("verifyd.outbox")

_messages = table_of(Message)
_verifications = table_of(Verification)
_m, _v = _messages.c, _verifications.c


class Outcomes:
    """Records tries' outcomes.

    Args:
        db: The database.
        chains: Per message kind, the provider names in order of preference.
        backoff: When a failed try is repeated, and how many tries a provider gets.
    """

    def __init__(self, db: Database, chains: dict[str, list[str]], backoff: Backoff) -> None:
        self.db = db
        self.chains = chains
        self.backoff = backoff

    def failed(self, row: Any, lease: str, exc: Exception) -> None:
        """Record a failed try: again later, on the next provider, or dead."""
        error = exc if isinstance(exc, DeliveryError) else DeliveryError(type(exc).__name__)
        attempts = row.attempts + 1
        counted = None
        values: dict[str, Any] = {
            "last_error": str(error)[:500],
            "error_code": error.code,
            "attempts": attempts,
        }
        if error.retryable and attempts < self.backoff.max_attempts:
            delay = self.backoff.delay(attempts, error.retry_after)
            values["next_attempt_at"] = utcnow() + timedelta(seconds=delay)
            verdict = f"retry in {delay:.1f} s"
            verification = None
        else:
            chain = self.chains.get(row.kind, [])
            later = chain[chain.index(row.provider) + 1 :] if row.provider in chain else []
            if later:
                values.update(provider=later[0], attempts=0, next_attempt_at=utcnow())
                verdict = f"failing over to {later[0]}"
                verification = None
            else:
                values["status"] = "dead"
                verdict = "dead"
                verification = (row.vid, "failed")
                counted = (row, f"failed.{row.kind}")
        log.warning(
            "delivery of %s via %s failed (attempt %d%s): %s; %s",
            row.id,
            row.provider,
            attempts,
            "" if error.retryable else ", permanent",
            error,
            verdict,
        )
        self.settle(row.id, lease, values, verification=verification, counted=counted)

    def settle(
        self,
        message_id: str,
        lease: str,
        values: dict[str, Any],
        *,
        verification: tuple[str, str] | None = None,
        counted: tuple[Any, str] | None = None,
    ) -> None:
        """Write a try's outcome, if this worker still holds the message's lease.

        ``counted`` is the loaded message and the stats counter the outcome adds to.
        """
        with self.db.write() as conn:
            generation = conn.execute(
                update(_messages)
                .where(_m.id == message_id, _m.lease == lease)
                .values(lease=None, **values)
                .returning(_m.generation)
            ).scalar()
            if generation is None:
                log.warning("message %s: lease lost before its outcome was recorded", message_id)
                return
            if verification is not None:
                _set_delivery(conn, *verification, generation)
            if counted is not None:
                row, name = counted
                rollup.add(conn, row.policy_version, row.arm, name, row.vcreated)


def _set_delivery(conn: Connection, verification_id: str, state: str, generation: int) -> None:
    """The verification's ``delivery``, when the message carried its current code."""
    conn.execute(
        update(_verifications)
        .where(_v.id == verification_id, _v.generation == generation)
        .values(delivery=state)
    )
