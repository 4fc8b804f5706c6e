"""Codes and links whose time ran out: marked ``expired`` and counted for the stats.

A check or confirm marks an expired verification as it meets it; the rest are swept
here (by the dispatcher, every minute), so the stats count every expiry, not only
those someone tried.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, select, update

from verifyd import rollup
from verifyd.models import Verification, table_of

#: At most this many verifications expire per sweep (the rest wait for the next one).
SWEEP_BATCH = 1000

_t = table_of(Verification)
_v = _t.c


def sweep(conn: Connection, now: datetime, *, limit: int = SWEEP_BATCH) -> int:
    """Mark pending verifications past their expiry as ``expired``; returns how many."""
    due = conn.execute(
        select(_v.id, _v.channel, _v.policy_version, _v.arm, _v.created_at)
        .where(_v.status == "pending", _v.expires_at <= now)
        .limit(limit)
    ).all()
    swept = 0
    for row in due:
        moved = conn.execute(
            update(_t).where(_v.id == row.id, _v.status == "pending").values(status="expired")
        ).rowcount
        if moved:
            swept += 1
            rollup.add(conn, row.policy_version, row.arm, f"expired.{row.channel}", row.created_at)
    return swept
