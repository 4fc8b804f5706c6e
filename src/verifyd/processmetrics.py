"""Process-local metrics: provider send latency and rate-limit hits, counted where they happen.

Process-wide objects shared by every app a process builds, created on first use in a
registry of their own (never ``prometheus_client``'s global one). With
``PROMETHEUS_MULTIPROC_DIR`` set (a directory emptied before the server starts), every
process writes its figures there and :func:`families` sums them all; ``metrics.py``
serves them beside the business figures it reads from the database.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector

#: Upper edges (seconds) of the provider latency buckets (provider timeouts default to 10 s).
SEND_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

log = logging.getLogger("verifyd.metrics")


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


def families() -> Iterator[Metric]:
    """This process's figures, or with multiprocess mode every process's, summed."""
    local = _process()
    if local.multiprocess_dir is not None:
        # Every worker's files, summed: the figures of all processes sharing the directory.
        collector = MultiProcessCollector(None, path=local.multiprocess_dir)  # type: ignore[no-untyped-call]
        yield from collector.collect()  # type: ignore[no-untyped-call]
    else:
        yield from local.registry.collect()
