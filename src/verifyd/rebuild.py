"""The stats' rollup recomputed from the rows it summarises.

Run by the migration that introduced the rollup (so signups made before it are
counted), by the benchmark's seeding, and by the tests, which check that the counters
the flows write agree with it exactly. Sandbox messages leave no outbox row: they are
counted from their verifications, as one segment each.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, delete, inspect, select

from verifyd import pricing, rollup
from verifyd.models import (
    Account,
    Exposure,
    Message,
    SignupBlock,
    StatCount,
    Verification,
    table_of,
)
from verifyd.verify_models import SERVICE_ACCOUNT, STATS_VERSION, VerifyVerification

#: Rows read per round trip: memory stays flat on a table of millions.
CHUNK = 10_000

_a = table_of(Account).c
_v = table_of(Verification).c
_m = table_of(Message).c
_e = table_of(Exposure).c
_b = table_of(SignupBlock).c
_vv = table_of(VerifyVerification).c


def compute(conn: Connection) -> rollup.Counts:
    """Every counter, as the flows would have written it, from the rows alone."""
    counts: rollup.Counts = {}

    def add(version: int, arm: str, name: str, at: Any, n: int = 1) -> None:
        key = (version, arm, name, at if isinstance(at, int) else rollup.hour_of(at))
        counts[key] = counts.get(key, 0) + n

    for e in _rows(conn, select(_e.policy_version, _e.arm, _e.at)):
        add(e.policy_version, e.arm, "exposures", e.at)
    for b in _rows(conn, select(_b.policy_version, _b.arm, _b.reason, _b.at, _b.id)):
        add(b.policy_version, b.arm, f"blocked.{b.reason}", b.at)
    accounts = select(
        _a.policy_version,
        _a.arm,
        _a.created_at,
        _a.activated_at,
        _a.status,
        _a.flags,
        _a.shadow,
        _a.subject_hash,
        _a.label,
    ).where(_a.status != SERVICE_ACCOUNT)  # a Verify service's own row is no signup
    for a in _rows(conn, accounts):
        v, arm, at = a.policy_version, a.arm, a.created_at
        add(v, arm, "signups", at)
        if a.subject_hash is not None:
            add(v, arm, "signups.exposed", at)
        if a.shadow:
            add(v, arm, "signups.shadow", at)
        if a.flags:
            add(v, arm, "suspect", at)
            for flag in a.flags:
                add(v, arm, f"suspect.{flag}", at)
        if a.label is not None:
            add(v, arm, f"label.{a.label}", at)
        if a.status == "active" and a.activated_at is not None:
            add(v, arm, "activated", at)
            seconds = (a.activated_at - at).total_seconds()
            add(v, arm, f"ttv.{rollup.ttv_bucket(seconds)}", at)
            if a.label is not None:
                add(v, arm, f"label.{a.label}.active", at)
    verifications = select(
        _v.policy_version,
        _v.arm,
        _v.created_at,
        _v.channel,
        _v.status,
        _v.attempts,
        _v.resends,
        _v.viewed_at,
        _v.approved_at,
        _v.sandbox,
        _v.shadow,
        _v.destination,
        _v.id,
    )
    # The migration that introduced the rollup (0003) runs this before /v2's table exists.
    v2 = inspect(conn).has_table(VerifyVerification.__tablename__)
    if v2:
        verifications = verifications.add_columns(_vv.approved_by_api).outerjoin_from(
            table_of(Verification), table_of(VerifyVerification), _vv.sid == _v.id
        )
    for r in _rows(conn, verifications):
        v, arm, at, ch = r.policy_version, r.arm, r.created_at, r.channel
        add(v, arm, f"verifications.{ch}", at)
        if r.resends:
            add(v, arm, f"resends.{ch}", at, r.resends)
        # A /v2 verification approved by ``Status=approved`` took no correct check.
        by_code = r.approved_at is not None and not (v2 and r.approved_by_api)
        if r.attempts - by_code:
            add(v, arm, f"checks.{ch}.incorrect", at, r.attempts - by_code)
        if r.status == "approved":
            add(v, arm, f"approved.{ch}", at)
            if by_code:
                add(v, arm, f"checks.{ch}.approved", at)
                add(v, arm, f"checks_to_approve.{ch}", at, r.attempts)
            if v == STATS_VERSION:  # a /v2 verification has no account: its own time counts
                seconds = (r.approved_at - at).total_seconds()
                add(v, arm, f"ttv.{rollup.ttv_bucket(seconds)}", at)
            if r.viewed_at is not None:
                add(v, arm, "link_views.confirmed", at)
        elif r.status in ("locked", "canceled", "expired"):
            add(v, arm, f"{r.status}.{ch}", at)
        if r.viewed_at is not None:
            add(v, arm, "link_views", at)
        if r.sandbox and not r.shadow:
            # Sandbox messages are delivered in the flow's transaction: no outbox row.
            kind = "sms" if ch == "sms" else "email"
            country, _ = pricing.basis(kind, r.destination, "")
            add(v, arm, f"sent.{kind}.{country}.1", at, 1 + r.resends)
    messages = (
        select(
            _m.kind,
            _m.status,
            _m.country,
            _m.segments,
            _m.sent_at,
            _v.policy_version,
            _v.arm,
            _v.created_at,
        )
        .join_from(table_of(Message), table_of(Verification), _v.id == _m.verification_id)
        .where(_m.status.in_(("sent", "delivered", "undelivered", "dead", "suppressed")))
    )
    for m in _rows(conn, messages):
        v, arm, at = m.policy_version, m.arm, m.created_at
        if m.status == "suppressed":
            # Only the dispatcher's shadows (a sandbox shadow is never dispatched).
            if m.sent_at is not None:
                add(v, arm, f"suppressed.{m.kind}", at)
            continue
        if m.status != "dead":
            country = m.country or pricing.NO_COUNTRY
            add(v, arm, f"sent.{m.kind}.{country}.{m.segments or 1}", at)
        if m.status == "delivered":
            add(v, arm, f"delivered.{m.kind}", at)
        elif m.status in ("undelivered", "dead"):
            add(v, arm, f"failed.{m.kind}", at)
    return {key: n for key, n in counts.items() if n}


def rebuild(conn: Connection) -> int:
    """Replace the rollup with :func:`compute`'s; returns how many counters it holds."""
    counts = compute(conn)
    conn.execute(delete(table_of(StatCount)))
    rollup.write(conn, counts)
    return len(counts)


def _rows(conn: Connection, stmt: Any) -> Any:
    return conn.execute(stmt.execution_options(yield_per=CHUNK))
