"""The named rate limits of the flows, and the looser twins sandbox destinations get."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection

from verifyd import processmetrics, ratelimit, slidinglimit
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
