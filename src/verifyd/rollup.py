"""The stats' rollup: counters written in the transactions of the events they count.

A flow calls :func:`add` with a policy version, an arm, a counter name and an hour;
inside a transaction opened by :class:`~verifyd.db.Database` or the group commit the
increments are gathered and written once, just before the ``COMMIT`` (one upsert per
distinct counter for a whole group-commit batch), so a request pays a dict update,
not a statement, and a rolled-back transaction counts nothing. Outside such a
transaction :func:`add` writes at once.

Counter names (``<ch>`` a channel such as ``sms``, ``<kind>`` a message kind):

- ``exposures`` (the exposure's hour), ``blocked.<reason>`` (the attempt's hour);
- per signup, in its hour: ``signups``, ``signups.exposed`` (it carried a subject),
  ``signups.shadow``, ``suspect``, ``suspect.<signal>``, ``activated``, ``ttv.<bucket>``
  (signup to activation, :data:`TTV_EDGES`), ``label.<label>`` and
  ``label.<label>.active``;
- per verification: ``verifications.<ch>``, ``approved.<ch>``, ``locked.<ch>``,
  ``canceled.<ch>``, ``expired.<ch>``, ``resends.<ch>``, ``checks.<ch>.incorrect``,
  ``checks.<ch>.approved``, ``checks_to_approve.<ch>`` (every check of the approved
  ones), ``link_views``, ``link_views.confirmed``;
- per message: ``sent.<kind>.<country>.<segments>``, ``delivered.<kind>``, ``failed.<kind>``,
  ``suppressed.<kind>`` (a shadow's message the dispatcher handled without sending it).
"""

from __future__ import annotations

import bisect
import random
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, func, select
from sqlalchemy.dialects import postgresql, sqlite

from verifyd.prepared import Prepared

Key = tuple[int, str, str, int]
Counts = dict[Key, int]

#: Upper edges (seconds) of the time-to-verify buckets; one more bucket holds the rest.
TTV_EDGES = (
    5, 10, 15, 20, 30, 45, 60, 90, 120, 180, 300, 600, 900, 1800, 3600, 7200, 14400,
    43200, 86400, 172800, 604800,
)  # fmt: skip
#: Shards per counter on PostgreSQL (concurrent writers lock different rows).
SHARDS = 4
_PENDING = "verifyd.rollup"

_UPSERT: dict[str, Prepared] = {}


def _table() -> Any:
    # Imported late: the database layer imports this module before the models exist.
    from verifyd.models import StatCount, table_of

    return table_of(StatCount)


def _upsert(name: str) -> Prepared:
    if name in _UPSERT:
        return _UPSERT[name]
    _t = _table()
    dialect = {"sqlite": sqlite, "postgresql": postgresql}[name]
    stmt = dialect.insert(_t).values(
        policy_version=bindparam("v"),
        arm=bindparam("arm"),
        name=bindparam("name"),
        hour=bindparam("hour"),
        shard=bindparam("shard"),
        value=bindparam("n"),
    )
    _UPSERT[name] = Prepared(
        stmt.on_conflict_do_update(
            index_elements=[_t.c.policy_version, _t.c.arm, _t.c.name, _t.c.hour, _t.c.shard],
            set_={"value": _t.c.value + stmt.excluded.value},
        )
    )
    return _UPSERT[name]


def hour_of(at: datetime) -> int:
    """The hour bucket of a moment (hours since the epoch)."""
    return int(at.timestamp()) // 3600


def ttv_bucket(seconds: float) -> int:
    """The time-to-verify bucket of a duration: the first edge it does not exceed."""
    return bisect.bisect_left(TTV_EDGES, seconds)


def add(
    conn: Connection, version: int, arm: str, name: str, at: datetime | int, n: int = 1
) -> None:
    """Count ``n`` for a counter, with the transaction that runs on ``conn``.

    Args:
        conn: The flow's transaction.
        version: The policy version the signup was made under.
        arm: Its arm.
        name: The counter (see the module docstring).
        at: The cohort's moment (the signup's ``created_at``) or an hour bucket.
        n: The increment; negative moves a count (a label changed).
    """
    key = (version, arm, name, at if isinstance(at, int) else hour_of(at))
    pending: Counts | None = conn.info.get(_PENDING)
    if pending is None:
        write(conn, {key: n})
        return
    pending[key] = pending.get(key, 0) + n


def begin(conn: Connection) -> None:
    """Start gathering the increments of one transaction on ``conn``."""
    conn.info[_PENDING] = {}


def take(conn: Connection) -> Counts:
    """The increments gathered since :func:`begin`, no longer gathered."""
    pending: Counts = conn.info.pop(_PENDING, None) or {}
    return pending


def merge(into: Counts, more: Counts) -> None:
    """Add one transaction's increments to a batch's."""
    for key, n in more.items():
        into[key] = into.get(key, 0) + n


def write(conn: Connection, counts: Counts) -> None:
    """Write increments, in key order (so concurrent writers lock rows in one order).

    A zero is written too: a flow adds a counter with ``n=0`` where it must run the same
    statements whichever way it went (a shadow signup, see ``flows/signup.py``).
    """
    if not counts:
        return
    upsert = _upsert(conn.dialect.name)
    shard = random.randrange(SHARDS) if conn.dialect.name == "postgresql" else 0
    for (version, arm, name, hour), n in sorted(counts.items()):
        upsert.execute(
            conn, {"v": version, "arm": arm, "name": name, "hour": hour, "shard": shard, "n": n}
        )


def read(
    conn: Connection,
    *,
    since: int | None = None,
    until: int | None = None,
    versions: Iterable[int] | None = None,
) -> dict[tuple[int, str], dict[str, int]]:
    """Every counter summed per policy version and arm, over hours ``[since, until)``."""
    _t = _table()
    stmt = select(_t.c.policy_version, _t.c.arm, _t.c.name, func.sum(_t.c.value)).group_by(
        _t.c.policy_version, _t.c.arm, _t.c.name
    )
    if since is not None:
        stmt = stmt.where(_t.c.hour >= since)
    if until is not None:
        stmt = stmt.where(_t.c.hour < until)
    if versions is not None:
        stmt = stmt.where(_t.c.policy_version.in_(list(versions)))
    out: dict[tuple[int, str], dict[str, int]] = {}
    for version, arm, name, total in conn.execute(stmt):
        out.setdefault((version, arm), {})[name] = int(total)
    return out
