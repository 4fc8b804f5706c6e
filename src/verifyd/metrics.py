"""``GET /metrics``: business figures from the database at scrape time, timings per process.

Two kinds of figure, kept apart because they agree across workers in different ways:

- **Business counters** (signups, sends, checks, approvals, time to verify, refusals,
  labels, SMS-pumping breaker trips) and the outbox and breaker gauges are read from
  the database when scraped: from the stats' rollup (``rollup.py``, written in the
  transactions of the events it counts) and from the ``messages`` and
  ``sms_breakers`` tables. Every uvicorn worker and every replica therefore
  answers the same figures, and they survive restarts. A process keeps what it read
  for :data:`CACHE_SECONDS`, so a tight scrape loop costs the database one read per
  interval, not one per scrape.
- **Configuration warnings** (``verifyd_config_warnings``): one series set to 1 per
  production setting that weakens a defence (``floors.py``), fixed for the process.
- **Process-local** figures (provider send latency, rate-limit hits) are counted in
  memory where they happen (``processmetrics.py``); with ``PROMETHEUS_MULTIPROC_DIR``
  every worker's are summed.

Labels are channels, message kinds, arms, policy versions, providers, buckets, signals
and reasons, and the sid of a Verify service (a handful per deployment, like the arms):
never a phone number, an address or an account's or a verification's id. The Verify
services' counters (policy version 0 in the rollup) have families of their own,
``verifyd_verify_*`` by ``service`` and ``channel`` (Twilio's name), never a policy arm.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING

from prometheus_client.exposition import generate_latest
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from sqlalchemy import and_, func, select

from verifyd import breakers, processmetrics, rollup, service_counters, service_metrics
from verifyd.models import Message, table_of, utcnow
from verifyd.service_counters import Service

if TYPE_CHECKING:
    from verifyd.db import Database

#: The Prometheus text format, version 0.0.4 (what ``generate_latest`` writes).
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
#: Seconds a process reuses the figures it read from the database.
CACHE_SECONDS = 5.0

log = logging.getLogger("verifyd.metrics")
_m = table_of(Message).c
_ARM = ["policy_version", "arm"]

#: Families with one series per (version, arm), zero when the counter is absent.
_SCALARS = (
    ("verifyd_exposures", "exposures", "Subjects shown the policy, once per subject and version."),
    ("verifyd_signups", "signups", "Signups accepted."),
    ("verifyd_accounts_activated", "activated", "Accounts activated by a verification."),
)
#: Families whose extra label is the rest of a counter's name: ``prefix<value>``.
_SUFFIXED = (
    (
        "verifyd_suspect_signups",
        "suspect.",
        "signal",
        "Signups flagged by a suspect signal (a signup with two signals counts under each).",
    ),
    ("verifyd_blocked_signups", "blocked.", "reason", "Signups refused, by the signal refusing."),
    ("verifyd_verifications", "verifications.", "channel", "Verifications created."),
    ("verifyd_resends", "resends.", "channel", "Codes or links sent again on request."),
    ("verifyd_approvals", "approved.", "channel", "Verifications approved."),
    ("verifyd_messages_delivered", "delivered.", "kind", "Messages reported delivered."),
    ("verifyd_messages_failed", "failed.", "kind", "Messages given up on (dead or undelivered)."),
)


class Metrics:
    """What ``GET /metrics`` answers for one app; thread-safe.

    Args:
        db: The database the business figures are read from.
        config_warnings: The ``VERIFYD_*`` settings that weaken a defence (``floors.warnings``).
        cache_seconds: How long figures read from the database are reused.
        clock: Monotonic seconds (for the cache).
    """

    def __init__(
        self,
        db: Database,
        *,
        config_warnings: Sequence[str] = (),
        cache_seconds: float = CACHE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._db = db
        self._config_warnings = sorted(set(config_warnings))
        self._cache_seconds = cache_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._cached: list[Metric] = []
        self._read_at: float | None = None

    def collect(self) -> Iterator[Metric]:
        """Every family: the database's (cached) first, then this process's."""
        yield from self.business()
        warned = GaugeMetricFamily(
            "verifyd_config_warnings",
            "1 for each production setting that weakens a defence (logged at start).",
            labels=["setting"],
        )
        for setting in self._config_warnings:
            warned.add_metric([setting], 1)
        yield warned
        yield from processmetrics.families()

    def render(self) -> bytes:
        """The Prometheus text exposition (blocking: it may read the database)."""
        return generate_latest(self)

    def business(self) -> list[Metric]:
        """The families read from the database, at most :attr:`cache_seconds` old."""
        with self._lock:
            now = self._clock()
            if self._read_at is None or now - self._read_at >= self._cache_seconds:
                self._cached = self._read()
                self._read_at = now
            return self._cached

    def _read(self) -> list[Metric]:
        queued = _m.status == "queued"
        with self._db.read() as conn:
            counts = rollup.read(conn)
            services = service_counters.services(conn)
            outbox = conn.execute(
                select(
                    func.count().filter(queued),
                    func.count().filter(and_(queued, _m.next_attempt_at <= utcnow())),
                    func.count().filter(_m.status == "dead"),
                )
            ).one()
            tripped = breakers.counts(conn, utcnow())
        families = rollup_families(counts, services)
        trips = CounterMetricFamily(
            "verifyd_sms_breaker_trips_total",
            "SMS-pumping breakers tripped, by scope (prefix or country).",
            labels=["scope"],
        )
        held = GaugeMetricFamily(
            "verifyd_sms_breakers_active",
            "SMS-pumping breakers holding sends now, by scope.",
            labels=["scope"],
        )
        for scope in ("prefix", "country"):
            total, active = tripped.get(scope, (0, 0))
            trips.add_metric([scope], total)
            held.add_metric([scope], active)
        families += [trips, held]
        for name, value, doc in (
            ("verifyd_outbox_queued", outbox[0], "Messages waiting in the outbox (or being sent)."),
            ("verifyd_outbox_due", outbox[1], "Queued messages due now and not claimed yet."),
            ("verifyd_messages_dead", outbox[2], "Messages every provider gave up on."),
        ):
            families.append(GaugeMetricFamily(name, doc, value=int(value or 0)))
        return families


def rollup_families(
    counts: dict[tuple[int, str], dict[str, int]], services: dict[str, Service]
) -> list[Metric]:
    """The business families of ``rollup.read``'s answer (summed over every hour).

    Args:
        counts: ``rollup.read``'s answer.
        services: The Verify services by ``stats_key`` (``service_counters.services``).
    """
    counts, by_service = service_counters.split(counts)
    arms = sorted(counts)
    families: list[Metric] = []
    for family, counter, doc in _SCALARS:
        metric = CounterMetricFamily(f"{family}_total", doc, labels=_ARM)
        for key in arms:
            metric.add_metric(_arm_labels(key), counts[key].get(counter, 0))
        families.append(metric)
    for family, prefix, label, doc in _SUFFIXED:
        metric = CounterMetricFamily(f"{family}_total", doc, labels=[*_ARM, label])
        for key in arms:
            for value, n in _suffixed(counts[key], prefix).items():
                metric.add_metric([*_arm_labels(key), value], n)
        families.append(metric)
    sent = CounterMetricFamily(
        "verifyd_messages_sent_total", "Messages a provider accepted.", labels=[*_ARM, "kind"]
    )
    checks = CounterMetricFamily(
        "verifyd_checks_total",
        "Code checks, by outcome (approved or incorrect).",
        labels=[*_ARM, "channel", "outcome"],
    )
    labelled = GaugeMetricFamily(
        "verifyd_labelled_accounts",
        "Accounts carrying a label now (a gauge: relabelling moves an account).",
        labels=[*_ARM, "label"],
    )
    for key in arms:
        c = counts[key]
        by_kind: dict[str, int] = {}
        for basis, n in _suffixed(c, "sent.", dotted=True).items():
            kind = basis.split(".", 1)[0]
            by_kind[kind] = by_kind.get(kind, 0) + n
        for kind, n in sorted(by_kind.items()):
            sent.add_metric([*_arm_labels(key), kind], n)
        for rest, n in _suffixed(c, "checks.", dotted=True).items():
            channel, _, outcome = rest.rpartition(".")
            if channel and outcome in ("approved", "incorrect"):
                checks.add_metric([*_arm_labels(key), channel, outcome], n)
        for value, n in _suffixed(c, "label.").items():
            labelled.add_metric([*_arm_labels(key), value], n)
    ttv = [(_arm_labels(key), counts[key]) for key in arms]
    families += [sent, checks, labelled]
    families.append(
        _time_to_verify("verifyd_time_to_verify_seconds", "Signup to activation", _ARM, ttv)
    )
    sids = service_metrics.sids(by_service, services)
    families += service_metrics.families(by_service, sids)
    ttv = [([sids[key]], by_service[key]) for key in sorted(by_service)]
    families.append(
        _time_to_verify(
            "verifyd_verify_time_to_verify_seconds", "Start to approval", ["service"], ttv
        )
    )
    return families


def _time_to_verify(
    name: str, what: str, labels: list[str], series: list[tuple[list[str], dict[str, int]]]
) -> Metric:
    """A histogram of ``ttv.<bucket>`` counters, one per (label values, counters)."""
    edges = rollup.TTV_EDGES
    metric = HistogramMetricFamily(
        name,
        f"{what}. The rollup keeps buckets only: _sum is approximate, each one counted at "
        f"its bucket's midpoint (past {edges[-1]} s, at {edges[-1]} s).",
        labels=labels,
    )
    for values, c in series:
        ttv = {int(k): n for k, n in _suffixed(c, "ttv.").items() if k.isdigit()}
        buckets: list[tuple[str, float]] = []
        seen, total = 0, 0.0
        for i, edge in enumerate(edges):
            n = ttv.get(i, 0)
            seen += n
            total += n * (edge + (edges[i - 1] if i else 0)) / 2
            buckets.append((str(float(edge)), seen))
        beyond = sum(n for i, n in ttv.items() if i >= len(edges))
        buckets.append(("+Inf", seen + beyond))
        metric.add_metric(values, buckets, total + beyond * edges[-1])
    return metric


def _arm_labels(key: tuple[int, str]) -> list[str]:
    return [str(key[0]), key[1]]


def _suffixed(c: dict[str, int], prefix: str, *, dotted: bool = False) -> dict[str, int]:
    """Counters named ``prefix<rest>``, by ``rest`` (one name part unless ``dotted``)."""
    return {
        name[len(prefix) :]: n
        for name, n in sorted(c.items())
        if name.startswith(prefix) and (dotted or "." not in name[len(prefix) :])
    }
