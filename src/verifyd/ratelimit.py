"""Fixed-window rate limits kept in the database, so every worker and replica shares them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, bindparam, delete
from sqlalchemy.dialects import postgresql, sqlite

from verifyd.errors import RateLimited
from verifyd.models import RateCounter, table_of
from verifyd.prepared import Prepared

_table = table_of(RateCounter)
_UPSERT = {
    name: Prepared(
        dialect.insert(_table)
        .values(key=bindparam("key"), window_start=bindparam("window_start"), count=1)
        .on_conflict_do_update(
            index_elements=[_table.c.key, _table.c.window_start],
            set_={"count": _table.c.count + 1},
        )
        .returning(_table.c.count),
        (_table.c.count,),
    )
    for name, dialect in (("sqlite", sqlite), ("postgresql", postgresql))
}


@dataclass(frozen=True)
class Limit:
    """``limit`` hits per ``window`` seconds for one bucket (``signup_ip``, …)."""

    bucket: str
    limit: int
    window: int
    #: What is counted, for the error's detail ("signups from this address").
    counts: str = "requests"


def hit(
    conn: Connection,
    limit: Limit,
    subject: str,
    now: datetime,
    *,
    code: str = "rate_limited",
) -> None:
    """Count one hit in the current window (one atomic upsert).

    Raises:
        RateLimited: the window's count went past the limit; ``retry_after`` is the
            rest of the window. The caller's transaction is rolled back with it.
    """
    epoch = int(now.timestamp())
    start = epoch - epoch % limit.window
    params = {"key": f"{limit.bucket}:{subject}", "window_start": start}
    (count,) = _UPSERT[conn.dialect.name].one(conn, params)
    if count > limit.limit:
        raise RateLimited(
            code,
            f"too many {limit.counts}; try again later",
            retry_after=start + limit.window - epoch,
        )


def count(conn: Connection, limit: Limit, subject: str, now: datetime) -> int:
    """Count one hit in the current window and return the window's count (never raises)."""
    epoch = int(now.timestamp())
    start = epoch - epoch % limit.window
    params = {"key": f"{limit.bucket}:{subject}", "window_start": start}
    (hits,) = _UPSERT[conn.dialect.name].one(conn, params)
    return int(hits)


def purge(conn: Connection, now: datetime, *, keep: timedelta = timedelta(days=2)) -> int:
    """Delete windows older than ``keep``; returns how many rows went."""
    cutoff = int((now - keep).timestamp())
    return conn.execute(delete(_table).where(_table.c.window_start < cutoff)).rowcount
