"""The named rate limits of the flows, and the looser twins sandbox destinations get."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sqlalchemy import Connection

from verifyd import processmetrics, ratelimit, slidinglimit
from verifyd.db import Database
from verifyd.errors import RateLimited
from verifyd.settings import Settings


class Limits:
    """Every limit a flow counts against, keyed by name.

    A real destination's guesses and sends go through a sliding log with backoff
    (:mod:`verifyd.slidinglimit`): its bound holds over any window and nobody waits
    longer than the cap. Addresses keep fixed windows.

    Sandbox destinations have fixed-window buckets of their own,
    ``sandbox_limit_multiplier`` times looser: they are not real phones, and a load
    test should measure the flow and not the limiter.

    Args:
        settings: The running settings.
    """

    def __init__(self, settings: Settings) -> None:
        #: The per-destination limits of real destinations (the policy view states them).
        self.bounds = slidinglimit.Bounds.of(settings)
        self._sliding = {b.bucket: b for b in (self.bounds.guesses, self.bounds.sends)}
        self._real = {
            lim.bucket: lim
            for lim in (
                ratelimit.Limit(
                    "signup_ip", settings.signups_per_ip_per_hour, 3600, "signups from this address"
                ),
                ratelimit.Limit(
                    "send_destination",
                    settings.sends_per_destination_per_hour,
                    3600,
                    "codes or links sent to this destination this hour",
                ),
                ratelimit.Limit(
                    "check_ip", settings.checks_per_ip_per_minute, 60, "checks from this address"
                ),
                ratelimit.Limit(
                    "guess_destination",
                    settings.guess_budget_per_day,
                    86400,
                    "guesses at codes for this destination today",
                ),
            )
        }
        # The fixed twins of the sliding limits above serve sandbox destinations only.
        mult = settings.sandbox_limit_multiplier
        self._sandbox = {
            name: ratelimit.Limit(f"sandbox_{lim.bucket}", lim.limit * mult, lim.window, lim.counts)
            for name, lim in self._real.items()
        }

    def hit(
        self,
        conn: Connection,
        name: str,
        subject: str,
        sandbox: bool,
        now: datetime,
        *,
        code: str = "rate_limited",
    ) -> None:
        """Count one hit of limit ``name`` for ``subject`` in the caller's transaction.

        Raises:
            RateLimited: ``code`` (``rate_limited`` unless told) with ``retry_after``.
        """
        sliding = None if sandbox else self._sliding.get(name)
        fixed = (self._sandbox if sandbox else self._real)[name]
        try:
            if sliding is not None:
                slidinglimit.hit(conn, sliding, subject, now, code=code)
            else:
                ratelimit.hit(conn, fixed, subject, now, code=code)
        except RateLimited:
            processmetrics.count_rate_limited(fixed.bucket)
            raise

    async def apart(self, db: Database, count: Callable[[Connection], bool]) -> bool:
        """Run ``count`` (it hits shared counters) in a transaction of its own, where that helps.

        A per-address counter is one row that every request from the address updates.
        Counted in the request's transaction, PostgreSQL holds that row's lock until the
        commit, and concurrent requests from one address (a NAT, a balancer missing from
        ``VERIFYD_TRUSTED_PROXIES``, a load test) queue on it for the whole transaction:
        in the benchmark, flows from one address spent 99 % of the database's time
        waiting there. Counted apart, the lock lasts one statement, and the commit does
        not wait for the WAL flush either: a crash could lose the last instants' hits,
        loosening a limit by that much. Such a hit stays counted when the request fails
        later, as with any counter kept outside the request's transaction. SQLite has
        one writer and no row locks to wait on; there nothing runs apart (``False``)
        and the caller hits the counters in its own transaction, whose commit the group
        commit shares.

        Args:
            db: The database.
            count: Hits the counters; returns whether it did (``False``: the caller's
                transaction must, e.g. when what decides the limit was not found).

        Returns:
            Whether the hits are counted.

        Raises:
            RateLimited: as :meth:`hit`.
        """
        if db.is_sqlite:
            return False

        def work(conn: Connection) -> bool:
            conn.exec_driver_sql("SET LOCAL synchronous_commit = off")
            return count(conn)

        return await db.transact(work)
