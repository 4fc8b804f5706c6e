"""``GET /v1/admin/stats`` and ``verifyd report``: the figures per policy version and arm.

Everything comes from the rollup (``rollup.py``), which the flows write in the
transactions of the events they count: the figures survive restarts, agree across
replicas, and cost a scan of the rollup's rows, not of the accounts. ``since`` and
``until`` select the signups made in that window (their *cohort*: what became of
them since, whenever it happened) and the exposures and refusals in it; the rollup
keeps hours, so both are rounded down to the hour.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from verifyd import rollup
from verifyd.db import Database
from verifyd.flows.comparison import compare, compare_arms, parse_side
from verifyd.models import PolicyVersion, table_of, utcnow
from verifyd.pricing import Prices
from verifyd.significance import wilson

_pv = table_of(PolicyVersion).c


@dataclass(frozen=True)
class StatsQuery:
    """What ``GET /v1/admin/stats`` was asked for."""

    since: datetime | None = None
    until: datetime | None = None
    policy_version: int | None = None
    #: Two versions (or ``version:arm``) to compare: ``("3", "5")``.
    compare: tuple[str, str] | None = None


class Stats:
    """Builds the comparison.

    Args:
        db: The database.
        prices: The price list, if one is set (costs are ``null`` without).
    """

    def __init__(self, db: Database, prices: Prices | None) -> None:
        self._db = db
        self._prices = prices

    def report(self, query: StatsQuery) -> dict[str, Any]:
        """Every version's arms, their figures, and the comparisons that apply."""
        since = rollup.hour_of(query.since) if query.since else None
        until = -(-int(query.until.timestamp()) // 3600) if query.until else None
        with self._db.read() as conn:
            counts = rollup.read(conn, since=since, until=until)
            docs = {
                row.version: (row.document, row.changed_at)
                for row in conn.execute(select(_pv.version, _pv.document, _pv.changed_at))
            }
        arms: dict[tuple[int, str], dict[str, Any]] = {
            key: summarize(key[1], c, self._prices) for key, c in counts.items()
        }
        versions = []
        for version in sorted({v for v, _ in arms}, reverse=True):
            if query.policy_version is not None and version != query.policy_version:
                continue
            doc, changed_at = docs.get(version, ({}, None))
            mine = [arms[k] for k in sorted(arms) if k[0] == version]
            entry: dict[str, Any] = {
                "policy_version": version,
                "mode": doc.get("mode"),
                "weights": doc.get("weights") if doc.get("mode") == "split" else None,
                "experiment": doc.get("experiment") if doc.get("mode") == "split" else None,
                "changed_at": changed_at,
                "arms": mine,
            }
            if doc.get("mode") == "split":
                weights = doc.get("weights") or {}
                by_arm = {
                    arm: arms.get((version, arm)) or summarize(arm, {}, self._prices)
                    for arm in weights
                }
                entry["comparison"] = compare_arms(by_arm, weights)
            versions.append(entry)
        answer: dict[str, Any] = {
            "since": query.since,
            "until": query.until,
            "generated_at": utcnow(),
            "currency": self._prices.currency if self._prices else None,
            "versions": versions,
        }
        if query.compare is not None:
            sides = []
            for spec in query.compare:
                version, arm = parse_side(spec)
                pooled: dict[str, int] = {}
                for (v, a), c in counts.items():
                    if v == version and arm in (None, a):
                        for name, n in c.items():
                            pooled[name] = pooled.get(name, 0) + n
                label = f"v{version}" + (f" {arm}" if arm else "")
                sides.append((label, summarize(arm or "all", pooled, self._prices)))
            (la, sa), (lb, sb) = sides
            answer["compare"] = {**compare(la, sa, lb, sb), "a_summary": sa, "b_summary": sb}
        return answer


def _by_prefix(counts: dict[str, int], prefix: str) -> dict[str, int]:
    # Zeros left out: a signup counts some signals with zero (see ``flows/signup.py``).
    return {
        name[len(prefix) :]: n
        for name, n in sorted(counts.items())
        if name.startswith(prefix) and n
    }


def _rate(x: int, n: int) -> dict[str, Any]:
    interval = wilson(max(0, min(x, n)), n) if n > 0 else None
    return {
        "count": x,
        "of": n,
        "rate": x / n if n else None,
        "interval": [interval.low, interval.high] if interval else None,
    }


def percentile(buckets: dict[int, int], q: float) -> float | None:
    """The ``q`` quantile (0–1) of a time-to-verify histogram, interpolated in its bucket."""
    total = sum(buckets.values())
    if total == 0:
        return None
    target = q * total
    seen = 0
    edges = (0, *rollup.TTV_EDGES)
    for i in sorted(buckets):
        n = buckets[i]
        if n and seen + n >= target:
            low = edges[min(i, len(edges) - 1)]
            high = rollup.TTV_EDGES[i] if i < len(rollup.TTV_EDGES) else low
            return float(low + (high - low) * (target - seen) / n)
        seen += n
    return float(rollup.TTV_EDGES[-1])


def summarize(arm: str, c: dict[str, int], prices: Prices | None) -> dict[str, Any]:
    """One arm's figures from its counters."""
    signups = c.get("signups", 0)
    exposures = c.get("exposures", 0)
    verified = c.get("activated", 0)
    created = _by_prefix(c, "verifications.")
    closed = {
        status: sum(_by_prefix(c, f"{status}.").values())
        for status in ("approved", "expired", "locked", "canceled")
    }
    total_created = sum(created.values())
    sent_by_basis = _by_prefix(c, "sent.")
    sent_by_kind: dict[str, int] = {}
    for basis, n in sent_by_basis.items():
        kind = basis.split(".", 1)[0]
        sent_by_kind[kind] = sent_by_kind.get(kind, 0) + n
    resends = sum(_by_prefix(c, "resends.").values())
    checks_incorrect = sum(
        n for k, n in _by_prefix(c, "checks.").items() if k.endswith(".incorrect")
    )
    checks_approved = sum(n for k, n in _by_prefix(c, "checks.").items() if k.endswith(".approved"))
    to_approve = sum(_by_prefix(c, "checks_to_approve.").values())
    ttv = {int(k): n for k, n in _by_prefix(c, "ttv.").items()}
    views = c.get("link_views", 0)
    fake, genuine = c.get("label.fake", 0), c.get("label.genuine", 0)
    fake_verified = c.get("label.fake.active", 0)
    genuine_verified = c.get("label.genuine.active", 0)
    return {
        "arm": arm,
        "exposures": exposures,
        "signups": signups,
        "exposed_signups": c.get("signups.exposed", 0),
        "signups_per_exposure": c.get("signups.exposed", 0) / exposures if exposures else None,
        "blocked": {
            "total": sum(_by_prefix(c, "blocked.").values()),
            "by_reason": _by_prefix(c, "blocked."),
        },
        "suspect": {**_rate(c.get("suspect", 0), signups), "by_signal": _by_prefix(c, "suspect.")},
        "messages": {
            "sent": sum(sent_by_kind.values()),
            "first_sends": sum(sent_by_kind.values()) - resends,
            "resends": resends,
            "delivered": sum(_by_prefix(c, "delivered.").values()),
            "failed": sum(_by_prefix(c, "failed.").values()),
            "sent_by_kind": sent_by_kind,
        },
        "verifications": {
            "created": total_created,
            **closed,
            "pending": total_created - sum(closed.values()),
            "by_channel": created,
        },
        "conversion": _rate(verified, signups),
        "time_to_verify": {
            "count": sum(ttv.values()),
            "p50": percentile(ttv, 0.5),
            "p90": percentile(ttv, 0.9),
            "histogram": _histogram(ttv),
        },
        "checks": {
            "incorrect": checks_incorrect,
            "approved": checks_approved,
            "per_approval": to_approve / checks_approved if checks_approved else None,
        },
        "link_views": {
            "views": views,
            "confirmed": c.get("link_views.confirmed", 0),
            "unconfirmed": views - c.get("link_views.confirmed", 0),
        },
        "cost": _cost(sent_by_basis, verified, prices),
        "labels": {
            "fake": fake,
            "genuine": genuine,
            "fake_verified": fake_verified,
            "genuine_verified": genuine_verified,
            "fake_rate": _rate(fake_verified, verified),
        },
    }


def _histogram(ttv: dict[int, int]) -> list[dict[str, Any]]:
    """Non-empty buckets as ``{"le": seconds | None, "count": n}`` (``None``: beyond the last)."""
    edges = rollup.TTV_EDGES
    return [
        {"le": edges[i] if i < len(edges) else None, "count": ttv[i]} for i in sorted(ttv) if ttv[i]
    ]


def _cost(sent: dict[str, int], verified: int, prices: Prices | None) -> dict[str, Any]:
    """The arm's spend under the price list: per kind, in all, and per verified account."""
    if prices is None:
        return {"total": None, "per_verified": None, "by_kind": {}, "unpriced": 0}
    by_kind: dict[str, float] = {}
    unpriced = 0
    for basis, n in sent.items():
        kind, country, parts = basis.rsplit(".", 2)
        price = prices.of(kind, country)
        if price is None:
            unpriced += n
            continue
        by_kind[kind] = by_kind.get(kind, 0.0) + price * int(parts) * n
    total = round(sum(by_kind.values()), 6)
    return {
        "total": total,
        "per_verified": round(total / verified, 6) if verified else None,
        "by_kind": {k: round(v, 6) for k, v in by_kind.items()},
        "unpriced": unpriced,
    }
