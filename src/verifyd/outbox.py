"""Deliver queued messages: claim under a lease, render, send, retry, fail over, dead-letter.

One message's life (``messages.status``)::

    queued --send ok--> sent --receipt--> delivered | undelivered
      |  \\--retryable failure--> queued (attempts + 1, later: backoff, Retry-After)
      |  \\--permanent failure or attempts spent--> queued on the chain's next provider
      |                                            or dead when none is left
      \\--its code expired, was approved or was superseded--> canceled (never sent)
      \\--a shadow's (its verification's ``shadow``)--> suppressed (never sent; the
         verification's ``delivery`` moves to ``sent`` as for a real message)

Delivery is at least once. Every worker claims a message by writing a lease (a
random token and an expiry in ``next_attempt_at``) before it calls the provider, so
two workers never hold one message at once; on PostgreSQL the claim also skips rows
another worker has locked (``FOR UPDATE SKIP LOCKED``). The one gap: a provider
accepts the message and the process dies before it records that; the lease then
expires and the message goes out again, with the same message id, which the providers
that take an idempotency key receive as one (``webhook-id``, ``Message-ID``). A database
outage between the send and its record is waited out for one lease (``outages``).

Stopping (``Dispatcher.stop``, on SIGTERM) hands back at once every claimed message
whose provider call has not begun: its lease is cleared and it is due now, so another
worker sends it without waiting for the lease to lapse. Calls in flight finish and
record their outcome. A call the stopping process abandons (cancelled past its grace)
keeps its lease: the provider may have accepted the message, so it goes out again once
the lease lapses, the one case of the gap above that a shutdown can cause.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar

from verifyd import expiry, leases, outages, pricing, processmetrics, ratelimit, slidinglimit
from verifyd.channels.base import Channel, VerificationRef
from verifyd.db import Database
from verifyd.models import utcnow
from verifyd.outcomes import Outcomes
from verifyd.providers.base import DeliveryError, Provider
from verifyd.retry import Backoff
from verifyd.shadows import ShadowSends
from verifyd.turns import Turns

log = logging.getLogger("verifyd.outbox")


T = TypeVar("T")

#: Seconds between deletions of expired rate-limit windows.
PURGE_EVERY = 300.0
#: Seconds between sweeps that expire verifications nobody checked.
SWEEP_EVERY = 60.0


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


class Dispatcher:
    """Drives the outbox; many at once (processes, replicas) are safe.

    Args:
        db: The database.
        channels: Channel instances by name (they render messages).
        providers: Provider instances by name.
        chains: Per message kind, the provider names in order of preference.
        backoff: When a failed try is repeated, and how many tries a provider gets.
        lease: How long a claim holds a message (longer than any provider call).
        interval: Seconds between polls when nobody wakes it.
        concurrency: Provider calls in flight at once; a claimed message waits its turn.
    """

    def __init__(
        self,
        db: Database,
        channels: dict[str, Channel],
        providers: dict[str, Provider],
        chains: dict[str, list[str]],
        backoff: Backoff,
        *,
        lease: float = 60.0,
        interval: float = 0.5,
        concurrency: int = leases.BATCH,
    ) -> None:
        self.db = db
        self.channels = channels
        self.providers = providers
        self.chains = chains
        self.backoff = backoff
        self.outcomes = Outcomes(db, chains, backoff)
        self.shadows = ShadowSends(db)
        self.lease = timedelta(seconds=lease)
        self.interval = interval
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._next_purge = 0.0
        self._next_sweep = 0.0
        self._stopping = False
        self._turns = Turns(concurrency)
        #: Claimed messages given back unsent since ``stop``.
        self.handed_back = 0

    def wake(self) -> None:
        """Ask for a poll now (callable from any thread)."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._wake.set)

    def stop(self) -> None:
        """Finish the sends in flight, hand back the rest, return from ``run`` (any thread).

        A claimed message whose provider call has not begun goes back to the queue at
        once (lease cleared, due now, attempts unchanged), so another worker sends it
        without waiting for the lease to lapse. A call already in flight finishes and
        records its outcome. A ``run`` cancelled after this (past the caller's grace)
        abandons what is still mid-call with its lease held: the provider may have
        accepted those messages, so they go out again once the lease lapses: at least
        once, for exactly those.
        """
        self._stopping = True
        self._turns.stop(self._loop)
        self.wake()

    async def run(self) -> None:
        """Poll until cancelled or stopped."""
        self._loop = asyncio.get_running_loop()
        try:
            await self._run()
        finally:
            self.shadows.cancel()
            if self._stopping:
                log.info(
                    "outbox stopped: %d claimed message(s) handed back unsent",
                    self.handed_back,
                )

    async def _run(self) -> None:
        failures = 0  # polls in a row that found the database unavailable
        while not self._stopping:
            try:
                while not self._stopping and await self.run_once():
                    pass
                if time.monotonic() >= self._next_purge:
                    await _in_thread(self._purge)
                    self._next_purge = time.monotonic() + PURGE_EVERY
                if time.monotonic() >= self._next_sweep:
                    await _in_thread(self._sweep)
                    providers = [name for chain in self.chains.values() for name in chain]
                    await _in_thread(self.shadows.refresh_receipts, providers)
                    self._next_sweep = time.monotonic() + SWEEP_EVERY
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # keep delivering whatever one poll hit
                if not outages.is_unavailable(exc):
                    log.exception("outbox poll failed")
                else:
                    # An outage: one line per poll, no traceback, polls further apart.
                    failures += 1
                    log.warning(
                        "outbox poll failed, database unavailable (%d in a row): %s",
                        failures,
                        outages.describe(exc),
                    )
            else:
                failures = 0
            try:
                pause = outages.backoff(self.interval, failures)
                await asyncio.wait_for(self._wake.wait(), timeout=pause)
            except TimeoutError:
                pass
            self._wake.clear()

    async def run_once(self) -> int:
        """Deliver every message due now; returns how many were handled."""
        lease = secrets.token_hex(8)
        ids = await _in_thread(self._claim, utcnow(), lease)
        await asyncio.gather(*(self._deliver(message_id, lease) for message_id in ids))
        return len(ids)

    def _purge(self) -> None:
        with self.db.write() as conn:
            ratelimit.purge(conn, utcnow())
            slidinglimit.purge(conn, utcnow())

    def _sweep(self) -> None:
        with self.db.write() as conn:
            expiry.sweep(conn, utcnow())

    def _claim(self, now: datetime, lease: str) -> list[str]:
        return leases.claim(self.db, now, lease, until=now + self.lease)

    async def _deliver(self, message_id: str, lease: str) -> None:
        row = await _in_thread(self._load, message_id)
        now = utcnow()
        if row.vstatus != "pending" or row.vgen != row.generation or row.expires_at <= now:
            # The code died before it went out: sending it would only confuse.
            await _in_thread(self.outcomes.settle, message_id, lease, {"status": "canceled"})
            return
        channel = self.channels[row.channel]
        ref = VerificationRef(
            id=row.vid,
            destination=row.destination,
            generation=row.generation,
            sandbox=row.sandbox,
            expires_at=row.expires_at,
            code_length=row.code_length,
            locale=row.locale,
            app_name=row.app_name,
        )
        message = channel.render(ref, row.id, row.created_at)
        provider = self.providers.get(row.provider)
        if not await self._turns.take():
            await _in_thread(self._hand_back, message_id, lease)
            return
        started = time.perf_counter()
        try:
            if provider is None:
                raise DeliveryError(f"provider {row.provider!r} is not configured", retryable=False)
            if row.shadow:
                # Nothing goes out; the time, the statements and the verification's
                # ``delivery`` are those of a real send (see ``shadows.py``).
                await self.shadows.send(row.provider)
                provider_id = None
            else:
                provider_id = await provider.send(message)
        except Exception as exc:  # any provider failure is retried, failed over or dead
            self._turns.release()
            if provider is not None and not row.shadow:
                took = time.perf_counter() - started
                self.shadows.observe_failure(row.provider, exc, took)
                processmetrics.observe_send(row.provider, row.kind, "failed", took)
            await _in_thread(self.outcomes.failed, row, lease, exc)
            return
        except BaseException:  # cancelled mid-call: the lease is kept (see ``stop``)
            self._turns.release()
            raise
        self._turns.release()
        took = time.perf_counter() - started
        country, parts = pricing.basis(message.kind, message.to, message.body)
        if row.shadow:
            # Counted apart from ``sent.…``: a shadow costs nothing and reached nobody.
            status, counter = "suppressed", f"suppressed.{message.kind}"
            log.debug("message %s suppressed (shadow), not sent", message_id)
        else:
            status, counter = "sent", f"sent.{message.kind}.{country}.{parts}"
            self.shadows.observe(row.provider, took)
            processmetrics.observe_send(row.provider, row.kind, "sent", took)
            log.info("message %s sent via %s", message_id, row.provider)
        values = {
            "status": status,
            "sent_at": utcnow(),
            "provider_message_id": provider_id,
            "error_code": None,
            "country": country,
            "segments": parts,
        }
        # Sent but not yet recorded: wait out a database outage rather than send it twice.
        await outages.patiently(
            lambda: _in_thread(
                self.outcomes.settle,
                message_id,
                lease,
                values,
                verification=(row.vid, "sent"),
                counted=(row, counter),
            ),
            within=self.lease.total_seconds(),
            what=f"message {message_id}",
        )
        if row.shadow:
            self.shadows.sent(row.provider, message_id, row.vid, row.generation)

    def _hand_back(self, message_id: str, lease: str) -> None:
        """Give a claimed, unsent message back to the queue, due now (see ``stop``)."""
        given = leases.hand_back(self.db, message_id, lease, utcnow())
        # Added after the write: ``+=`` around the call would read the count before it
        # and lose the hand-backs other threads recorded meanwhile.
        self.handed_back += given

    def _load(self, message_id: str) -> Any:
        return leases.load(self.db, message_id)
