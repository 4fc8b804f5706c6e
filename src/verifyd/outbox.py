"""Deliver queued messages: claim, render, send, retry with backoff, dead-letter."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import select, update

from verifyd import ratelimit
from verifyd.channels.base import Channel, VerificationRef
from verifyd.db import Database
from verifyd.models import Message, Verification, table_of, utcnow
from verifyd.providers.base import DeliveryError, Provider

log = logging.getLogger("verifyd.outbox")

_messages = table_of(Message)
_verifications = table_of(Verification)

T = TypeVar("T")

MAX_ATTEMPTS = 8
LEASE = timedelta(seconds=60)
#: Seconds between deletions of expired rate-limit windows.
PURGE_EVERY = 300.0


async def _in_thread(func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run blocking database work in a thread; a cancellation waits for it to finish.

    ``asyncio.to_thread`` alone lets a cancelled task return while its thread still
    holds a pooled connection, which the app's shutdown then disposes under it.
    """
    work = asyncio.ensure_future(asyncio.to_thread(func, *args, **kwargs))
    try:
        return await asyncio.shield(work)
    except asyncio.CancelledError:
        await asyncio.wait([work])
        raise


def backoff(attempts: int) -> timedelta:
    """Delay before the next try: 2, 4, 8 … seconds, capped at 10 minutes."""
    return timedelta(seconds=min(600, 2**attempts))


class Dispatcher:
    """Drives the outbox. Safe with many workers: each message is claimed by a lease.

    Args:
        db: The database.
        channels: Channel instances by name (they render messages).
        providers: Provider instances by name.
        interval: Seconds between polls when nobody wakes it.
    """

    def __init__(
        self,
        db: Database,
        channels: dict[str, Channel],
        providers: dict[str, Provider],
        *,
        interval: float = 0.5,
    ) -> None:
        self.db = db
        self.channels = channels
        self.providers = providers
        self.interval = interval
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._next_purge = 0.0

    def wake(self) -> None:
        """Ask for a poll now (callable from any thread)."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._wake.set)

    async def run(self) -> None:
        """Poll until cancelled."""
        self._loop = asyncio.get_running_loop()
        while True:
            try:
                while await self.run_once():
                    pass
                if time.monotonic() >= self._next_purge:
                    await _in_thread(self._purge)
                    self._next_purge = time.monotonic() + PURGE_EVERY
            except asyncio.CancelledError:
                raise
            except Exception:  # keep delivering whatever one poll hit
                log.exception("outbox poll failed")
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=self.interval)
            except TimeoutError:
                pass
            self._wake.clear()

    def _purge(self) -> None:
        with self.db.write() as conn:
            ratelimit.purge(conn, utcnow())

    def _claim(self, now: datetime, limit: int = 20) -> list[str]:
        m = _messages.c
        # Look on a reader first: most polls find nothing, and on SQLite a write
        # transaction would queue behind (and hold up) the API's one writer.
        with self.db.read() as conn:
            due = (
                conn.execute(
                    select(m.id)
                    .where(m.status == "queued", m.next_attempt_at <= now)
                    .order_by(m.next_attempt_at)
                    .limit(limit)
                )
                .scalars()
                .all()
            )
        if not due:
            return []
        with self.db.write() as conn:
            claimed = []
            for message_id in due:
                got = conn.execute(
                    update(_messages)
                    .where(m.id == message_id, m.status == "queued", m.next_attempt_at <= now)
                    .values(next_attempt_at=now + LEASE)
                    .returning(m.id)
                ).first()
                if got is not None:
                    claimed.append(message_id)
        return claimed

    async def run_once(self) -> int:
        """Deliver every message due now; returns how many were handled."""
        ids = await _in_thread(self._claim, utcnow())
        for message_id in ids:
            await self._deliver(message_id)
        return len(ids)

    async def _deliver(self, message_id: str) -> None:
        m, v = _messages.c, _verifications.c
        with self.db.read() as conn:
            row = conn.execute(
                select(
                    m.id,
                    m.generation,
                    m.provider,
                    m.attempts,
                    m.created_at,
                    v.id.label("vid"),
                    v.channel,
                    v.destination,
                    v.generation.label("vgen"),
                    v.sandbox,
                    v.expires_at,
                    v.code_length,
                    v.status.label("vstatus"),
                )
                .join(_verifications, v.id == m.verification_id)
                .where(m.id == message_id)
            ).one()
        now = utcnow()
        if row.vstatus != "pending" or row.vgen != row.generation or row.expires_at <= now:
            await _in_thread(self._finish, message_id, "canceled", None)
            return
        channel = self.channels[row.channel]
        ref = VerificationRef(
            id=row.vid,
            destination=row.destination,
            generation=row.generation,
            sandbox=row.sandbox,
            expires_at=row.expires_at,
            code_length=row.code_length,
        )
        message = channel.render(ref, row.id, row.created_at)
        provider = self.providers[row.provider]
        try:
            await provider.send(message)
        except Exception as exc:  # any provider failure is retried or dead-lettered
            retryable = not isinstance(exc, DeliveryError) or exc.retryable
            attempts = row.attempts + 1
            dead = not retryable or attempts >= MAX_ATTEMPTS
            log.warning(
                "delivery of %s via %s failed (attempt %d%s): %s",
                message_id,
                row.provider,
                attempts,
                ", dead" if dead else "",
                type(exc).__name__,
            )
            await _in_thread(
                self._finish,
                message_id,
                "dead" if dead else "queued",
                row.vid,
                error=str(exc)[:500],
                attempts=attempts,
            )
            return
        await _in_thread(self._finish, message_id, "sent", row.vid)

    def _finish(
        self,
        message_id: str,
        status: str,
        verification_id: str | None,
        *,
        error: str | None = None,
        attempts: int = 0,
    ) -> None:
        m, v = _messages.c, _verifications.c
        now = utcnow()
        values: dict[str, object] = {"status": status}
        if status == "sent":
            values["sent_at"] = now
        elif status in ("queued", "dead"):
            values.update(
                attempts=attempts, last_error=error, next_attempt_at=now + backoff(attempts)
            )
        with self.db.write() as conn:
            generation = conn.execute(
                update(_messages).where(m.id == message_id).values(values).returning(m.generation)
            ).scalar_one()
            if verification_id is not None and status in ("sent", "dead"):
                conn.execute(
                    update(_verifications)
                    .where(v.id == verification_id, v.generation == generation)
                    .values(delivery="sent" if status == "sent" else "failed")
                )
