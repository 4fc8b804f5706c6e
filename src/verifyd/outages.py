"""Database outages: which failures mean "unavailable, retry" (503) rather than a bug (500).

An unreachable PostgreSQL, a pool with no free connection, a connection dropped
mid-statement or a statement over ``VERIFYD_DB_STATEMENT_TIMEOUT_MS`` say nothing about
the request: the client is told ``database_unavailable`` with a ``Retry-After`` and the
operator gets one warning line. Integrity and programming errors are not outages; they
stay the 500s they are. Nothing here names a connection string or a statement's
parameters: the line carries the driver's error class and first line only.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from sqlalchemy import exc as sa_exc

from verifyd.errors import Unavailable

log = logging.getLogger("verifyd.outages")

T = TypeVar("T")

#: What a client that met an outage should wait before trying again, in seconds.
RETRY_AFTER = 2
#: Longest pause between a worker's polls while the database is unavailable.
MAX_POLL_PAUSE = 5.0
#: First pause before :func:`patiently` tries again (it doubles up to MAX_POLL_PAUSE).
FIRST_RETRY_PAUSE = 0.25

#: The exception classes that mean the database could not be reached or answer in time.
#: SQLAlchemy wraps the driver's: psycopg's ``OperationalError`` (refused, dropped,
#: ``QueryCanceled`` by the statement timeout, the server shutting down) and
#: ``InterfaceError`` (a closed connection); ``TimeoutError`` is the pool's own.
UNAVAILABLE: tuple[type[Exception], ...] = (
    sa_exc.OperationalError,
    sa_exc.InterfaceError,
    sa_exc.DisconnectionError,
    sa_exc.TimeoutError,
)

try:  # the driver's own, in case one escapes unwrapped (psycopg is an optional extra)
    import psycopg

    UNAVAILABLE += (psycopg.OperationalError, psycopg.InterfaceError)
except ImportError:  # pragma: no cover - SQLite-only installs
    pass


def is_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` means the database is unavailable (not that the request was wrong)."""
    if isinstance(exc, UNAVAILABLE):
        return True
    return isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated


def describe(exc: BaseException) -> str:
    """The failure for a log line: the driver's error class and first line, no SQL.

    ``str()`` of a SQLAlchemy error appends the statement and its parameters, which
    may hold destinations; the driver's own message (libpq's) names no password.
    """
    orig = exc.orig if isinstance(exc, sa_exc.DBAPIError) and exc.orig is not None else exc
    lines = str(orig).strip().splitlines()
    first = lines[0][:200] if lines else ""
    kind = f"{type(orig).__module__.split('.')[0]}.{type(orig).__name__}"
    return f"{kind}: {first}" if first else kind


def unavailable() -> Unavailable:
    """The error a request that met an outage is answered with."""
    return Unavailable(
        "database_unavailable",
        "the database is unavailable; retry shortly",
        retry_after=RETRY_AFTER,
    )


def backoff(interval: float, failures: int) -> float:
    """Seconds a poller waits after ``failures`` outages in a row (doubling, capped).

    A worker that polls every 50 ms would otherwise log twenty lines a second through
    an outage; capped at :data:`MAX_POLL_PAUSE`, it still resumes within seconds of
    the database's return.
    """
    if failures <= 0:
        return interval
    return float(min(MAX_POLL_PAUSE, interval * 2 ** min(failures, 16)))


async def patiently(work: Callable[[], Awaitable[T]], *, within: float, what: str) -> T:
    """Await ``work()``, trying again through a database outage for up to ``within`` s.

    For a write that must not be lost to a short outage, such as a delivery's outcome
    after the provider accepted the message: given up, the message would go out again
    once its lease lapsed. Any other error, or an outage past ``within``, is raised.

    Args:
        work: Makes the awaitable to run, once per try.
        within: Seconds after the first failure in which to keep trying.
        what: Names the write in the warning each failed try logs.
    """
    deadline = time.monotonic() + within
    failures = 0
    while True:
        try:
            return await work()
        except Exception as exc:
            left = deadline - time.monotonic()
            if not is_unavailable(exc) or left <= 0:
                raise
            failures += 1
            log.warning(
                "%s: database unavailable, trying again (%d): %s", what, failures, describe(exc)
            )
            await asyncio.sleep(min(left, backoff(FIRST_RETRY_PAUSE, failures)))
