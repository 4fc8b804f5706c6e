"""The SMS-pumping breakers as rows: trip one, find the active ones, lift one, count them.

A breaker holds SMS sends to one number prefix or one country (``flows/pumping.py``
decides when). The rows live in the database so that every worker and replica sees a
trip; lifted and expired rows are kept, so ``/metrics`` counts every trip ever made.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, func, select, update
from sqlalchemy.dialects import postgresql, sqlite

from verifyd.codes import new_id
from verifyd.models import SmsBreaker, table_of
from verifyd.prepared import Prepared

_t = table_of(SmsBreaker)
_c = _t.c

#: What a breaker looks like in the admin API.
_VIEW = (_c.id, _c.scope, _c.key, _c.tripped_at, _c.expires_at, _c.sent, _c.verified)
_ACTIVE = Prepared(
    select(*_VIEW)
    .where(_c.lifted_at.is_(None), _c.expires_at > bindparam("now"))
    .order_by(_c.tripped_at.desc(), _c.id),
    _VIEW,
)
_INSERT = {
    name: Prepared(
        dialect.insert(_t)
        .values(
            id=bindparam("id"),
            scope=bindparam("scope"),
            key=bindparam("key"),
            window_start=bindparam("window_start"),
            tripped_at=bindparam("now"),
            expires_at=bindparam("expires_at"),
            sent=bindparam("sent"),
            verified=bindparam("verified"),
        )
        .on_conflict_do_nothing(index_elements=[_c.scope, _c.key, _c.window_start])
        .returning(_c.id),
        (_c.id,),
    )
    for name, dialect in (("sqlite", sqlite), ("postgresql", postgresql))
}
_LIFT = Prepared(
    update(_t)
    .where(_c.id == bindparam("bid"), _c.lifted_at.is_(None), _c.expires_at > bindparam("now"))
    .values(lifted_at=bindparam("now"), lifted_by=bindparam("actor"))
    .returning(*_VIEW),
    _VIEW,
)


@dataclass(frozen=True)
class Trip:
    """A breaker about to trip: its scope and key, the window judged and what it held."""

    scope: str  # prefix | country
    key: str
    window_start: int
    sent: int
    verified: int


def view(row: Any) -> dict[str, Any]:
    """A breaker as the admin API shows it."""
    return {
        "id": row.id,
        "scope": row.scope,
        "key": row.key,
        "tripped_at": row.tripped_at,
        "expires_at": row.expires_at,
        "sent": row.sent,
        "verified": row.verified,
    }


def active(conn: Connection, now: datetime) -> list[dict[str, Any]]:
    """The breakers holding sends now, newest first."""
    return [view(row) for row in _ACTIVE.execute(conn, {"now": now})]


def trip(conn: Connection, trip: Trip, now: datetime, expires_at: datetime) -> str | None:
    """Insert a breaker; ``None`` when this key already tripped in this window.

    One trip per key and window (a unique constraint), so concurrent refusals trip it
    once, and a breaker an operator lifted stays lifted for the rest of its window.
    """
    params = {
        "id": new_id("brk"),
        "scope": trip.scope,
        "key": trip.key,
        "window_start": trip.window_start,
        "now": now,
        "expires_at": expires_at,
        "sent": trip.sent,
        "verified": trip.verified,
    }
    row = _INSERT[conn.dialect.name].first(conn, params)
    return None if row is None else str(row.id)


def lift(conn: Connection, breaker_id: str, actor: str, now: datetime) -> dict[str, Any] | None:
    """Lift an active breaker; ``None`` when there is no such active breaker."""
    row = _LIFT.first(conn, {"bid": breaker_id, "now": now, "actor": actor})
    return None if row is None else view(row)


def counts(conn: Connection, now: datetime) -> dict[str, tuple[int, int]]:
    """Per scope: (trips ever made, breakers active now), for ``/metrics``."""
    live = (_c.lifted_at.is_(None)) & (_c.expires_at > now)
    stmt = select(_c.scope, func.count(), func.count().filter(live)).group_by(_c.scope)
    return {scope: (int(total), int(on)) for scope, total, on in conn.execute(stmt)}
