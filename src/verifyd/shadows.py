"""Shadow messages: handled by the dispatcher like any other, sent to nobody.

A signup for an identity an active account owns gets a *shadow* verification (see
``docs/security.md``). Its message is queued, claimed, loaded and settled by the same
statements as a real one, so every read a client can make (the verification's
``delivery``, the account, a resend, a check) moves on the same schedule. Only the
provider call is left out; to keep the *time* that call takes, a shadow waits for as
long as a recent real send through the same provider took. While the provider is
failing (its last real try ended in a retryable failure: down, timing out, throttling),
a shadow fails the same way, after as long, so it is retried, failed over or given up
on (``delivery: failed``) as real messages are then.

Receipts come only from providers (Twilio's status callbacks), so a real message can
later read ``delivered``. Where the provider's real messages get receipts, a shadow's
verification moves to ``delivered`` too, after as long as a recent real receipt took
(sampled from the database once a minute); where they do not, neither does a shadow's.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import deque
from collections.abc import Iterable

from sqlalchemy import select, update

from verifyd.db import Database
from verifyd.models import Message, Verification, table_of, utcnow
from verifyd.providers.base import DeliveryError

log = logging.getLogger("verifyd.outbox")

_messages = table_of(Message)
_verifications = table_of(Verification)
_m, _v = _messages.c, _verifications.c

#: Recent real durations kept per provider (a shadow takes one of them).
SAMPLES = 64


class ShadowSends:
    """Stands in for the provider call, and the receipt, of a shadow message.

    Send durations are kept per process: a shadow handled right after start-up, before
    any real send through its provider, waits for nothing. A receipt a shadow is still
    waiting for when the process stops is never recorded, as a carrier's sometimes is
    not.

    Args:
        db: The database (real receipts' delays, shadows' receipts).
    """

    def __init__(self, db: Database) -> None:
        self._db = db
        self._took: dict[str, deque[float]] = {}
        self._failing: dict[str, tuple[DeliveryError, float]] = {}
        self._receipt_after: dict[str, list[float]] = {}
        self._pending: set[asyncio.Task[None]] = set()

    def observe(self, provider: str, seconds: float) -> None:
        """Remember how long a real, accepted send through ``provider`` took."""
        self._took.setdefault(provider, deque(maxlen=SAMPLES)).append(seconds)
        self._failing.pop(provider, None)

    def observe_failure(self, provider: str, exc: Exception, seconds: float) -> None:
        """Remember a real try through ``provider`` that failed, and how long it took.

        Only a retryable failure says the provider is failing; a permanent one (a number
        it refuses) is about that destination, and shows the provider answering.
        """
        error = exc if isinstance(exc, DeliveryError) else DeliveryError(type(exc).__name__)
        if error.retryable:
            self._failing[provider] = (error, seconds)
        else:
            self._failing.pop(provider, None)

    def wait_for(self, provider: str) -> float:
        """How long the next shadow through ``provider`` waits (a recent real send's time)."""
        took = self._took.get(provider)
        return random.choice(took) if took else 0.0

    async def send(self, provider: str) -> None:
        """Take the time a real send would, and fail as it would now; send nothing.

        Raises:
            DeliveryError: the provider's last real try failed (retryably).
        """
        failing = self._failing.get(provider)
        delay = failing[1] if failing is not None else self.wait_for(provider)
        if delay > 0:
            await asyncio.sleep(delay)
        if failing is not None:
            error = failing[0]
            raise DeliveryError(
                str(error), retryable=True, code=error.code, retry_after=error.retry_after
            )

    def refresh_receipts(self, providers: Iterable[str]) -> None:
        """Sample how long real messages waited for a ``delivered`` receipt, per provider.

        Blocking (the dispatcher runs it in a thread, once a minute). Ids sort by
        creation, so the newest rows are read backwards along the primary key.
        """
        found: dict[str, list[float]] = {}
        with self._db.read() as conn:
            for provider in sorted(set(providers)):
                rows = conn.execute(
                    select(_m.sent_at, _m.delivered_at)
                    .where(_m.provider == provider, _m.status == "delivered")
                    .order_by(_m.id.desc())
                    .limit(SAMPLES)
                ).all()
                delays = [
                    (done - sent).total_seconds()
                    for sent, done in rows
                    if sent is not None and done is not None and done >= sent
                ]
                if delays:
                    found[provider] = delays
        self._receipt_after = found

    def receipt_after(self, provider: str) -> float | None:
        """How long a shadow through ``provider`` waits for its receipt; ``None``: none comes."""
        delays = self._receipt_after.get(provider)
        return random.choice(delays) if delays else None

    def sent(self, provider: str, message_id: str, verification_id: str, generation: int) -> None:
        """A shadow was settled as sent: give it a receipt later, if its provider's get one."""
        delay = self.receipt_after(provider)
        if delay is None:
            return
        task = asyncio.get_running_loop().create_task(
            self._receipt(delay, message_id, verification_id, generation)
        )
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _receipt(
        self, delay: float, message_id: str, verification_id: str, generation: int
    ) -> None:
        await asyncio.sleep(delay)
        try:
            await asyncio.to_thread(self.deliver, message_id, verification_id, generation)
        except Exception:  # a lost receipt: the shadow stays sent, as a real one may
            log.exception("shadow receipt for %s failed", message_id)

    def deliver(self, message_id: str, verification_id: str, generation: int) -> None:
        """Record a shadow's receipt, as ``receipts.py`` records a real ``delivered`` one.

        The message keeps its status (``suppressed``) and is counted nowhere: only the
        verification's ``delivery`` moves, while the message carries its current code.
        """
        now = utcnow()
        with self._db.write() as conn:
            moved = conn.execute(
                update(_messages)
                .where(_m.id == message_id, _m.status == "suppressed", _m.delivered_at.is_(None))
                .values(delivered_at=now)
            ).rowcount
            if moved:
                conn.execute(
                    update(_verifications)
                    .where(
                        _v.id == verification_id,
                        _v.generation == generation,
                        _v.delivery.in_(("queued", "sent")),
                    )
                    .values(delivery="delivered")
                )

    def cancel(self) -> None:
        """Drop the receipts still waiting (the dispatcher is stopping)."""
        for task in list(self._pending):
            task.cancel()
