"""``GET /metrics``: business figures from the database at scrape time, timings per process.

Two kinds of figure, kept apart because they agree across workers in different ways:

- **Business counters** (signups, sends, checks, approvals, time to verify, refusals,
  labels) and the outbox gauges are read from the database when scraped: from the
  stats' rollup (``rollup.py``, written in the transactions of the events it counts)
  and from the ``messages`` table. Every uvicorn worker and every replica therefore
  answers the same figures, and they survive restarts. A process keeps what it read
  for :data:`CACHE_SECONDS`, so a tight scrape loop costs the database one read per
  interval, not one per scrape.
- **Process-local** figures (provider send latency, rate-limit hits) are counted in
  memory where they happen. They are process-wide objects shared by every app a process
  builds (tests build many; the figures are about the process, not the app), created on
  first use in a registry of their own, never in ``prometheus_client``'s global one.
  With ``--workers N`` set ``PROMETHEUS_MULTIPROC_DIR`` to a directory that is emptied
  before the server starts (``prometheus_client``'s multiprocess mode): each worker then
  writes its figures there and a scrape of any worker sums them all. A ``verifyd
  worker`` on the same host and directory is summed in too; elsewhere, its latencies
  stay in its own process.

Labels are channels, message kinds, arms, policy versions, providers, buckets, signals
and reasons: never a phone number, an address or an id.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import generate_latest
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.multiprocess import MultiProcessCollector
from sqlalchemy import and_, func, select

from verifyd import rollup
from verifyd.models import Message, table_of, utcnow

if TYPE_CHECKING:
    from verifyd.db import Database

#: The Prometheus text format, version 0.0.4 (what ``generate_latest`` writes).
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
#: Seconds a process reuses the figures it read from the database.
CACHE_SECONDS = 5.0
#: Upper edges (seconds) of the provider latency buckets (provider timeouts default to 10 s).
SEND_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

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


@dataclass(frozen=True)
class _Local:
    registry: CollectorRegistry
    send_seconds: Histogram
    rate_limited: Counter
    multiprocess_dir: str | None


_local: _Local | None = None
_complained = False
_local_lock = threading.Lock()


def _process() -> _Local:
    """The process's own metric objects, made on first use (thread-safe)."""
    global _local
    if _local is None:
        with _local_lock:
            if _local is None:
                registry = CollectorRegistry()
                _local = _Local(
                    registry=registry,
                    send_seconds=Histogram(
                        "verifyd_provider_send_seconds",
                        "Time a provider took to accept or refuse one message (this process).",
                        ["provider", "kind", "outcome"],
                        buckets=SEND_BUCKETS,
                        registry=registry,
                    ),
                    rate_limited=Counter(
                        "verifyd_rate_limited",
                        "Requests refused by a rate limit, by bucket (this process).",
                        ["bucket"],
                        registry=registry,
                    ),
                    multiprocess_dir=os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None,
                )
    return _local


def observe_send(provider: str, kind: str, outcome: str, seconds: float) -> None:
    """Record one ``provider.send`` call.

    Args:
        provider: The provider's configured name.
        kind: The message kind (``sms``, ``email``).
        outcome: ``sent`` or ``failed``.
        seconds: How long the call took.
    """
    try:
        _process().send_seconds.labels(provider, kind, outcome).observe(seconds)
    except Exception:  # a metric never changes what a delivery does
        _complain()


def count_rate_limited(bucket: str) -> None:
    """Count one request a rate limit refused, under the limit's bucket name."""
    try:
        _process().rate_limited.labels(bucket).inc()
    except Exception:  # a metric never turns a 429 into a 500
        _complain()


def _complain() -> None:
    # Multiprocess mode writes files: a missing or read-only directory fails every
    # observation alike, so say it once, not per request.
    global _complained
    if not _complained:
        _complained = True
        log.exception("a process-local metric could not be recorded (PROMETHEUS_MULTIPROC_DIR?)")


def _local_families() -> Iterator[Metric]:
    local = _process()
    if local.multiprocess_dir is not None:
        # Every worker's files, summed: the figures of all processes sharing the directory.
        collector = MultiProcessCollector(None, path=local.multiprocess_dir)  # type: ignore[no-untyped-call]
        yield from collector.collect()  # type: ignore[no-untyped-call]
    else:
        yield from local.registry.collect()


class Metrics:
    """What ``GET /metrics`` answers for one app; thread-safe.

    Args:
        db: The database the business figures are read from.
        cache_seconds: How long figures read from the database are reused.
        clock: Monotonic seconds (for the cache).
    """

    def __init__(
        self,
        db: Database,
        *,
        cache_seconds: float = CACHE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._db = db
        self._cache_seconds = cache_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._cached: list[Metric] = []
        self._read_at: float | None = None

    def collect(self) -> Iterator[Metric]:
        """Every family: the database's (cached) first, then this process's."""
        yield from self.business()
        yield from _local_families()

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
            outbox = conn.execute(
                select(
                    func.count().filter(queued),
                    func.count().filter(and_(queued, _m.next_attempt_at <= utcnow())),
                    func.count().filter(_m.status == "dead"),
                )
            ).one()
        families = rollup_families(counts)
        for name, value, doc in (
            ("verifyd_outbox_queued", outbox[0], "Messages waiting in the outbox (or being sent)."),
            ("verifyd_outbox_due", outbox[1], "Queued messages due now and not claimed yet."),
            ("verifyd_messages_dead", outbox[2], "Messages every provider gave up on."),
        ):
            families.append(GaugeMetricFamily(name, doc, value=int(value or 0)))
        return families


def rollup_families(counts: dict[tuple[int, str], dict[str, int]]) -> list[Metric]:
    """The business families of ``rollup.read``'s answer (summed over every hour)."""
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
    families += [sent, checks, labelled, _time_to_verify(counts, arms)]
    return families


def _time_to_verify(counts: dict[tuple[int, str], dict[str, int]], arms: list[Any]) -> Metric:
    edges = rollup.TTV_EDGES
    metric = HistogramMetricFamily(
        "verifyd_time_to_verify_seconds",
        "Signup to activation. The rollup keeps buckets only: _sum is approximate, each "
        f"activation counted at its bucket's midpoint (past {edges[-1]} s, at {edges[-1]} s).",
        labels=_ARM,
    )
    for key in arms:
        ttv = {int(k): n for k, n in _suffixed(counts[key], "ttv.").items() if k.isdigit()}
        buckets: list[tuple[str, float]] = []
        seen, total = 0, 0.0
        for i, edge in enumerate(edges):
            n = ttv.get(i, 0)
            seen += n
            total += n * (edge + (edges[i - 1] if i else 0)) / 2
            buckets.append((str(float(edge)), seen))
        beyond = sum(n for i, n in ttv.items() if i >= len(edges))
        buckets.append(("+Inf", seen + beyond))
        metric.add_metric(_arm_labels(key), buckets, total + beyond * edges[-1])
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
