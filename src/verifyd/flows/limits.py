"""The named rate limits of the flows, and the looser twins sandbox destinations get."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection

from verifyd import processmetrics, ratelimit
from verifyd.errors import RateLimited
from verifyd.settings import Settings


class Limits:
    """Every limit a flow counts against, keyed by name.

    Sandbox destinations have buckets of their own, ``sandbox_limit_multiplier`` times
    looser, so a load test measures the flow and not the limiter.

    Args:
        settings: The running settings.
    """

    def __init__(self, settings: Settings) -> None:
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
        limit = (self._sandbox if sandbox else self._real)[name]
        try:
            ratelimit.hit(conn, limit, subject, now, code=code)
        except RateLimited:
            processmetrics.count_rate_limited(limit.bucket)
            raise
