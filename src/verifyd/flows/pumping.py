"""SMS pumping: send budgets per number prefix, country and day, and the conversion breaker.

An attacker who makes verifyd text numbers they are paid for (premium ranges, or a
carrier sharing the termination fee) needs many sends to numbers nobody verifies, and
addresses are cheap: the per-address limits do not bound the bill. Every SMS to a real
(non-sandbox) number passes :meth:`Pumping.admit` in the transaction that queues it, as its
last statements: a refusal rolls the outbox row back with the rest, and the country's and
the day's budget rows, which every send of every replica updates, stay locked only from
there to the commit (charged first, they held every replica's sends for the whole
transaction on PostgreSQL, at about half the throughput: README, Operations, Scale):

1. a *breaker* holding its prefix or country refuses it: 403 ``sms_destination_suspended``;
2. three *budgets* count it (fixed windows in the database, shared by every replica):
   ``VERIFYD_SMS_BUDGET_PER_PREFIX_PER_HOUR`` (the number without its last
   ``VERIFYD_SMS_PREFIX_TAIL_DIGITS`` digits), ``…_PER_COUNTRY_PER_HOUR`` (the
   phonenumbers region) and ``VERIFYD_SMS_BUDGET_PER_DAY`` (every SMS); one that runs
   out answers 429 ``rate_limited`` with ``Retry-After``;
3. the send is counted, per prefix and country, in the breaker's window; an approval
   counts as verified there (:meth:`Pumping.verified`).

A budget that runs out is when the breaker looks: if the prefix sent more than
``VERIFYD_SMS_BREAKER_MIN_SENDS`` codes in the current window (the country more than
``…_COUNTRY_MIN_SENDS``) and under ``…_MIN_VERIFIED_PERCENT`` of them were verified,
it trips and holds that prefix (country) for ``VERIFYD_SMS_BREAKER_HOLD_SECONDS`` —
where the budget alone would let the same spend through again every hour. A trip logs
a WARNING on ``verifyd.pumping`` (the prefix or country only, never a number).

A refused send raises :class:`Held`; the send's transaction rolls back, so the caller
records the refusal (:meth:`Pumping.trip`, and ``blocked.<reason>`` in the stats) in a
transaction of its own and then answers ``Held.error``. Shadow signups (an identity an
active account owns) are charged exactly like real ones: the budgets must not tell
them apart.

Each process trusts its last look at the active breakers for :data:`CACHE_SECONDS`:
a trip or a lift by another process takes up to that long to be seen here (the
budgets, being counters in the database, hold meanwhile).
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta
from typing import Any

import phonenumbers
from sqlalchemy import Connection, bindparam, select

from verifyd import audit, breakers, processmetrics, ratelimit, rollup
from verifyd.breakers import Trip
from verifyd.codes import well_formed
from verifyd.db import Database
from verifyd.errors import Forbidden, NotFound, RateLimited, VerifydError
from verifyd.models import RateCounter, table_of, utcnow
from verifyd.prepared import Prepared
from verifyd.settings import Settings

#: Seconds a process trusts its last look at the active breakers.
CACHE_SECONDS = 1.0
SUSPENDED = "sms_destination_suspended"

log = logging.getLogger("verifyd.pumping")
_rc = table_of(RateCounter).c
_READ = Prepared(
    select(_rc.count).where(_rc.key == bindparam("key"), _rc.window_start == bindparam("start")),
    (_rc.count,),
)


class Held(Exception):
    """A send the pumping defences refuse.

    Args:
        reason: ``blocked.<reason>`` in the stats: ``sms_budget_prefix``,
            ``sms_budget_country``, ``sms_budget_global`` or ``sms_destination_suspended``.
        error: What the client is answered.
        trips: Breakers to trip when the refusal is recorded.
    """

    def __init__(self, reason: str, error: VerifydError, trips: tuple[Trip, ...] = ()) -> None:
        super().__init__(reason)
        self.reason = reason
        self.error = error
        self.trips = trips
        #: The refused send's (policy version, arm), for the stats.
        self.cohort: tuple[int, str] | None = None


class Pumping:
    """The budgets and breakers every real SMS send passes.

    Args:
        settings: The budgets, the breaker's thresholds and hold.
        db: The database (for the admin's list and lift).
    """

    def __init__(self, settings: Settings, db: Database) -> None:
        self._db = db
        self._tail = settings.sms_prefix_tail_digits
        self._budgets = (
            (
                "sms_budget_prefix",
                "prefix",
                ratelimit.Limit(
                    "sms_budget_prefix",
                    settings.sms_budget_per_prefix_per_hour,
                    3600,
                    "codes sent to numbers like this one this hour",
                ),
            ),
            (
                "sms_budget_country",
                "country",
                ratelimit.Limit(
                    "sms_budget_country",
                    settings.sms_budget_per_country_per_hour,
                    3600,
                    "codes sent to this country this hour",
                ),
            ),
            (
                "sms_budget_global",
                "global",
                ratelimit.Limit(
                    "sms_budget_global", settings.sms_budget_per_day, 86400, "codes sent today"
                ),
            ),
        )
        window = settings.sms_breaker_window_seconds
        self._sent = ratelimit.Limit("sms_sent", 0, window)
        self._verified = ratelimit.Limit("sms_verified", 0, window)
        self._min_sends = {
            "prefix": settings.sms_breaker_min_sends,
            "country": settings.sms_breaker_country_min_sends,
        }
        self._percent = settings.sms_breaker_min_verified_percent
        self._hold = timedelta(seconds=settings.sms_breaker_hold_seconds)
        self._active: dict[tuple[str, str], datetime] = {}
        self._active_until = 0.0

    def keys(self, destination: str) -> dict[str, str]:
        """A number's prefix and country (``ZZ`` when phonenumbers knows no region)."""
        try:
            region = phonenumbers.region_code_for_number(phonenumbers.parse(destination))
        except phonenumbers.NumberParseException:
            region = None
        return {"prefix": destination[: -self._tail], "country": region or "ZZ", "global": "all"}

    def admit(
        self,
        conn: Connection,
        kind: str,
        destination: str,
        sandbox: bool,
        now: datetime,
        cohort: tuple[int, str] | None = None,
    ) -> None:
        """Charge one send to the budgets, last in the transaction that queues it.

        Only SMS to real numbers are charged; anything else passes untouched. Called
        last, so the hot budget rows (the country's, the day's) are locked only until
        the commit.

        Args:
            conn: The sending transaction.
            kind: The channel's message kind (``sms``, ``email``).
            destination: The number (E.164).
            sandbox: Whether it is a sandbox destination (never charged).
            now: The flow's clock.
            cohort: The send's (policy version, arm), carried by a refusal for the stats.

        Raises:
            Held: a breaker holds the destination, or a budget ran out.
        """
        if kind != "sms" or sandbox:
            return
        try:
            self._admit(conn, self.keys(destination), now)
        except Held as held:
            held.cohort = cohort
            raise

    def _admit(self, conn: Connection, keys: dict[str, str], now: datetime) -> None:
        for scope in ("prefix", "country"):
            if self._holding(conn, scope, keys[scope], now):
                raise Held(
                    SUSPENDED,
                    Forbidden(SUSPENDED, "codes to numbers like this one are suspended for now"),
                )
        for reason, scope, limit in self._budgets:
            try:
                ratelimit.hit(conn, limit, keys[scope], now)
            except RateLimited as exc:
                processmetrics.count_rate_limited(limit.bucket)
                raise Held(reason, exc, self._judge(conn, keys, now)) from None
        for scope in ("prefix", "country"):
            ratelimit.count(conn, self._sent, f"{scope}:{keys[scope]}", now)

    def verified(
        self, conn: Connection, kind: str, destination: str, sandbox: bool, now: datetime
    ) -> None:
        """Count an approved SMS code for its prefix and country (what keeps breakers off)."""
        if kind != "sms" or sandbox:
            return
        keys = self.keys(destination)
        for scope in ("prefix", "country"):
            ratelimit.count(conn, self._verified, f"{scope}:{keys[scope]}", now)

    def trip(self, conn: Connection, held: Held, now: datetime) -> None:
        """Trip the breakers a refusal asks for (in a transaction of its own)."""
        for trip in held.trips:
            expires_at = now + self._hold
            breaker_id = breakers.trip(conn, trip, now, expires_at)
            if breaker_id is None:
                continue  # tripped already in this window (or lifted by an operator)
            self._active[trip.scope, trip.key] = expires_at
            audit.record(
                conn,
                at=now,
                actor="system:pumping",
                action="breaker.trip",
                target=f"breaker:{breaker_id}",
                after={"scope": trip.scope, "key": trip.key, "sent": trip.sent,
                       "verified": trip.verified, "expires_at": expires_at.isoformat()},
            )  # fmt: skip
            log.warning(
                "SMS breaker tripped: %s %s sent %d codes, %d verified, in the current window;"
                " sends there are suspended until %s (breaker %s)",
                trip.scope,
                trip.key,
                trip.sent,
                trip.verified,
                expires_at.isoformat(timespec="seconds"),
                breaker_id,
            )

    def refused(self, conn: Connection, held: Held, now: datetime) -> None:
        """Record a refused resend (its own transaction): the trips, ``blocked.<reason>``."""
        self.trip(conn, held, now)
        if held.cohort is not None:
            version, arm = held.cohort
            rollup.add(conn, version, arm, f"blocked.{held.reason}", now)

    def active(self) -> list[dict[str, Any]]:
        """The breakers holding sends now (``GET /v1/admin/breakers``)."""
        with self._db.read() as conn:
            return breakers.active(conn, utcnow())

    async def lift(self, breaker_id: str, actor: str) -> None:
        """Lift one breaker now, audited (``DELETE /v1/admin/breakers/{id}``).

        Raises:
            NotFound: ``not_found``: no active breaker has this id.
        """
        now = utcnow()

        def work(conn: Connection) -> dict[str, Any] | None:
            lifted = breakers.lift(conn, breaker_id, actor, now)
            if lifted is not None:
                audit.record(
                    conn,
                    at=now,
                    actor=actor,
                    action="breaker.lift",
                    target=f"breaker:{breaker_id}",
                    before={"scope": lifted["scope"], "key": lifted["key"],
                            "expires_at": lifted["expires_at"].isoformat()},
                    after={"lifted_at": now.isoformat()},
                )  # fmt: skip
            return lifted

        lifted = await self._db.transact(work) if well_formed(breaker_id) else None
        if lifted is None:
            raise NotFound("not_found", "no active breaker with this id")
        self._active.pop((lifted["scope"], lifted["key"]), None)

    def _holding(self, conn: Connection, scope: str, key: str, now: datetime) -> bool:
        clock = time.monotonic()
        if clock >= self._active_until:
            self._active = {
                (b["scope"], b["key"]): b["expires_at"] for b in breakers.active(conn, now)
            }
            self._active_until = clock + CACHE_SECONDS
        expires_at = self._active.get((scope, key))
        return expires_at is not None and expires_at > now

    def _judge(self, conn: Connection, keys: dict[str, str], now: datetime) -> tuple[Trip, ...]:
        """The breakers a budget refusal trips: low conversion over enough sends."""
        epoch = int(now.timestamp())
        start = epoch - epoch % self._sent.window
        trips = []
        for scope in ("prefix", "country"):
            sent = self._read(conn, self._sent, f"{scope}:{keys[scope]}", start)
            verified = self._read(conn, self._verified, f"{scope}:{keys[scope]}", start)
            if sent > self._min_sends[scope] and verified * 100 < self._percent * sent:
                trips.append(Trip(scope, keys[scope], start, sent, verified))
        return tuple(trips)

    @staticmethod
    def _read(conn: Connection, limit: ratelimit.Limit, subject: str, start: int) -> int:
        row = _READ.first(conn, {"key": f"{limit.bucket}:{subject}", "start": start})
        return 0 if row is None else int(row.count)
