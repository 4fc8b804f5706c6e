"""Sliding-log limits with exponential backoff: a bound that holds over *any* window.

A fixed window (``epoch - epoch % W``) lets ``N`` events through at the end of one
window and ``N`` more at the start of the next, and past its count it locks the
subject out until the window flips. Here each key keeps the times of its recent
allowed events (one row, a comma-separated list of epoch microseconds) and:

* within any rolling window ``W`` the first ``N`` events are free;
* past ``N``, the ``(N+k)``-th event in the window is allowed only once
  ``backoff(k) = min(base * 2**(k-1), cap)`` seconds have passed since the previous
  allowed event; otherwise :class:`~verifyd.errors.RateLimited` with ``Retry-After``
  the exact (rounded up) seconds until it would be allowed, never more than ``cap``.
  A refused event is not logged: it was not evaluated.

**The bound.** Take any interval shorter than ``W`` and the allowed events
``g_1 < … < g_m`` in it. When ``g_j`` was allowed, ``g_1 … g_{j-1}`` were all in its
trailing window, so for ``j-1 >= N`` it waited ``g_j - g_{j-1} >= backoff(j-N)``
(``backoff`` never decreases). Hence ``W > g_m - g_1 >= sum(backoff(i), i=1..m-N)``,
so ``m <= N + K`` with ``K = max{k : backoff(1) + … + backoff(k) < W}``.
:attr:`Backoff.bound` computes ``N + K``; the limiter, ``verifyd policy show`` and the
admin policy view all read it there. The same argument shows no window ever holds
more than ``N + K`` logged events, so trimming the log to that many loses nothing.

**The longest wait.** Whatever happened before, the next event is allowed at most
``backoff(K+1) <= cap`` seconds after the previous allowed one
(:attr:`Backoff.longest_wait`): an attacker who spends the budget locks the owner out
for that long, not for the rest of a day.

Atomicity: the key's row is locked and read with one ``INSERT … ON CONFLICT DO
UPDATE … RETURNING`` (on PostgreSQL the conflict path takes the row lock and returns
the latest committed log, so parallel hits on one key serialise; on SQLite every write
transaction already runs on the one writer connection), then written back in the
caller's transaction, so a refusal or a later error rolls it back with the rest.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, bindparam, delete, update
from sqlalchemy.dialects import postgresql, sqlite

from verifyd.errors import RateLimited
from verifyd.models import SlidingLimit, table_of
from verifyd.prepared import Prepared

if TYPE_CHECKING:
    from verifyd.settings import Settings

_table = table_of(SlidingLimit)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = 1_000_000

#: Lock the key's row (created empty the first time) and read its log.
_LOCK = {
    name: Prepared(
        dialect.insert(_table)
        .values(key=bindparam("key"), events="", last_at=bindparam("last_at"))
        .on_conflict_do_update(index_elements=[_table.c.key], set_={"events": _table.c.events})
        .returning(_table.c.events),
        (_table.c.events,),
    )
    for name, dialect in (("sqlite", sqlite), ("postgresql", postgresql))
}
_SAVE = Prepared(
    update(_table)
    .where(_table.c.key == bindparam("k"))
    .values(events=bindparam("events"), last_at=bindparam("last_at"))
)


@dataclass(frozen=True)
class Backoff:
    """``free`` events per rolling ``window`` seconds, then exponentially spaced ones.

    Args:
        bucket: The key prefix (``guess_destination``, ``send_destination``).
        free: ``N``, the events any window allows without waiting.
        window: ``W`` in seconds.
        base: The first wait past ``free``, in seconds.
        cap: The longest wait between two events, in seconds.
        counts: What is counted, for the error's detail.
    """

    bucket: str
    free: int
    window: int
    base: int
    cap: int
    counts: str = "events"

    def __post_init__(self) -> None:
        if min(self.free, self.window, self.base, self.cap) < 1:
            raise ValueError("free, window, base and cap must be at least 1")

    def delay(self, k: int) -> int:
        """Seconds the ``(free + k)``-th event of a window waits after the one before."""
        if k < 1:
            return 0
        if k > 62 or self.base << (k - 1) >= self.cap:  # no huge powers of two
            return self.cap
        return self.base << (k - 1)

    @cached_property
    def extra(self) -> int:
        """``K``: how many events the backoff lets through past ``free`` in any window."""
        total, k = 0, 0
        while self.delay(k + 1) < self.cap:  # the doubling part: at most 63 steps
            if total + self.delay(k + 1) >= self.window:
                return k
            k += 1
            total += self.delay(k)
        return k + (self.window - 1 - total) // self.cap  # then waits of ``cap`` each

    @property
    def bound(self) -> int:
        """``N + K``: the most events any interval shorter than ``window`` can hold."""
        return self.free + self.extra

    @property
    def longest_wait(self) -> int:
        """The longest anyone waits after the previous allowed event, in seconds."""
        return self.delay(self.extra + 1)

    def describe(self, per: str) -> dict[str, int]:
        """The numbers the policy view shows; ``per`` names the window (``per_day``)."""
        return {
            per: self.bound,
            "free": self.free,
            "window_seconds": self.window,
            "backoff_base_seconds": self.base,
            "backoff_cap_seconds": self.cap,
            "longest_owner_lockout_seconds": self.longest_wait,
        }

    def ready_at(self, events: list[int], now: int) -> int:
        """When the next event is allowed (microseconds), if nothing else is allowed first.

        Args:
            events: The allowed events still in ``now``'s window, oldest first.
            now: The current time in epoch microseconds (not before ``events[-1]``).
        """
        n = len(events)
        if n < self.free:
            return now
        window, last = self.window * _US, events[-1]
        # As the oldest events leave the window the wait shrinks: the earliest moment
        # at which the count then in the window allows an event.
        return min(
            max(
                now,
                last + self.delay(n - gone - self.free + 1) * _US,
                events[gone - 1] + window if gone else now,
            )
            for gone in range(n - self.free + 2)
        )


@dataclass(frozen=True)
class Bounds:
    """The two per-destination limits the policy view states (the code length is its own)."""

    guesses: Backoff
    sends: Backoff

    @classmethod
    def of(cls, settings: Settings) -> Bounds:
        """The limits the running settings give real (non-sandbox) destinations."""
        return cls(
            Backoff(
                "guess_destination",
                settings.guess_budget_per_day,
                86400,
                settings.guess_backoff_base_seconds,
                settings.guess_backoff_cap_seconds,
                "guesses at codes for this destination",
            ),
            Backoff(
                "send_destination",
                settings.sends_per_destination_per_hour,
                3600,
                settings.send_backoff_base_seconds,
                settings.send_backoff_cap_seconds,
                "codes or links sent to this destination",
            ),
        )

    def describe(self) -> dict[str, Any]:
        """Both limits as the policy document shows them."""
        return {
            "guess_limit": self.guesses.describe("per_day"),
            "send_limit": self.sends.describe("per_hour"),
        }


def micros(moment: datetime) -> int:
    """A timezone-aware datetime as exact epoch microseconds."""
    return (moment - _EPOCH) // timedelta(microseconds=1)


def hit(
    conn: Connection, limit: Backoff, subject: str, now: datetime, *, code: str = "rate_limited"
) -> None:
    """Log one event for ``subject`` if the rule allows it, in the caller's transaction.

    Raises:
        RateLimited: not yet; ``retry_after`` is the exact wait, rounded up to seconds.
    """
    key = f"{limit.bucket}:{subject}"
    seconds = int(now.timestamp())
    (raw,) = _LOCK[conn.dialect.name].one(conn, {"key": key, "last_at": seconds})
    logged = [int(e) for e in raw.split(",")] if raw else []
    # A clock that stepped back (another replica's) counts as the last event's time.
    t = max(micros(now), logged[-1]) if logged else micros(now)
    events = [e for e in logged if e > t - limit.window * _US]
    ready = limit.ready_at(events, t)
    if ready > t:
        raise RateLimited(
            code,
            f"too many {limit.counts}; try again later",
            retry_after=max(1, math.ceil((ready - t) / _US)),
        )
    events = [*events, t][-limit.bound :]
    _SAVE.execute(conn, {"k": key, "events": ",".join(map(str, events)), "last_at": seconds})


def purge(conn: Connection, now: datetime, *, keep: timedelta = timedelta(days=2)) -> int:
    """Delete logs whose newest event is older than ``keep``; returns how many rows went."""
    cutoff = int((now - keep).timestamp())
    return conn.execute(delete(_table).where(_table.c.last_at < cutoff)).rowcount
