"""``GET /v1/admin/stats`` and ``verifyd report``: the figures per policy version and arm.

Everything comes from the rollup (``rollup.py``), which the flows write in the
transactions of the events they count: the figures survive restarts, agree across
replicas, and cost a scan of the rollup's rows, not of the accounts. ``since`` and
``until`` select the signups made in that window (their *cohort*: what became of
them since, whenever it happened) and the exposures and refusals in it; the rollup
keeps hours, so both are rounded down to the hour. Beside the policies' versions, the
Verify services of the Twilio-compatible surface (policy version 0, never a version
here) get their own section (``service_stats.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from verifyd import rollup, service_counters
from verifyd.db import Database
from verifyd.flows import figures
from verifyd.flows.comparison import compare, compare_arms, parse_side
from verifyd.flows.service_stats import services_report
from verifyd.models import PolicyVersion, table_of, utcnow
from verifyd.pricing import Prices

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
        """Every version's arms, their figures, the comparisons that apply, and the services.

        ``policy_version`` selects among the versions only: ``verify_services`` lists every
        Verify service with counters in the window whatever it is.
        """
        since = rollup.hour_of(query.since) if query.since else None
        until = -(-int(query.until.timestamp()) // 3600) if query.until else None
        with self._db.read() as conn:
            counts, by_service = service_counters.split(rollup.read(conn, since=since, until=until))
            docs = {
                row.version: (row.document, row.changed_at)
                for row in conn.execute(select(_pv.version, _pv.document, _pv.changed_at))
            }
            services = service_counters.services(conn) if by_service else {}
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
            "verify_services": services_report(by_service, services, self._prices),
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


def summarize(arm: str, c: dict[str, int], prices: Prices | None) -> dict[str, Any]:
    """One arm's figures from its counters."""
    signups = c.get("signups", 0)
    exposures = c.get("exposures", 0)
    verified = c.get("activated", 0)
    views = c.get("link_views", 0)
    fake_verified = c.get("label.fake.active", 0)
    return {
        "arm": arm,
        "exposures": exposures,
        "signups": signups,
        "exposed_signups": c.get("signups.exposed", 0),
        "signups_per_exposure": c.get("signups.exposed", 0) / exposures if exposures else None,
        "blocked": figures.blocked(c),
        "suspect": {
            **figures.rate(c.get("suspect", 0), signups),
            "by_signal": figures.by_prefix(c, "suspect."),
        },
        "messages": figures.messages(c),
        "verifications": figures.verifications(c),
        "conversion": figures.rate(verified, signups),
        "time_to_verify": figures.time_to_verify(c),
        "checks": figures.checks(c),
        "link_views": {
            "views": views,
            "confirmed": c.get("link_views.confirmed", 0),
            "unconfirmed": views - c.get("link_views.confirmed", 0),
        },
        "cost": figures.cost(figures.sent_by_basis(c), verified, prices),
        "labels": {
            "fake": c.get("label.fake", 0),
            "genuine": c.get("label.genuine", 0),
            "fake_verified": fake_verified,
            "genuine_verified": c.get("label.genuine.active", 0),
            "fake_rate": figures.rate(fake_verified, verified),
        },
    }
