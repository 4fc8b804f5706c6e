"""bench/report.py: percentiles, cells, ratios and targets on known inputs.

The arithmetic the benchmark's verdicts rest on: a drifted percentile or a target
read against the wrong floor would print PASS for a miss.
"""

from __future__ import annotations

import json
import math
import random
import re
import statistics
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import report  # noqa: E402

# ---------------------------------------------------------------- the report


def test_percentiles_are_the_inclusive_quantiles_of_every_sample() -> None:
    rng = random.Random(7)
    for size in (2, 3, 10, 101, 1000):
        values = sorted(rng.uniform(0, 1000) for _ in range(size))
        cuts = statistics.quantiles(values, n=100, method="inclusive")
        for q in (1, 50, 95, 99):
            assert report.percentile(values, q) == pytest.approx(cuts[q - 1])
        assert report.percentile(values, 0) == values[0]
        assert report.percentile(values, 100) == values[-1]
    assert report.percentile([5.0], 99) == 5.0
    assert math.isnan(report.percentile([], 50))
    us = [rng.randrange(100, 100_000) for _ in range(500)]
    assert report.spread(us) == pytest.approx(
        tuple(report.percentile(sorted(us), q) / 1000 for q in (50, 95, 99))
    )


def test_samples_become_a_cell() -> None:
    samples = report.Samples()
    flows = [(1000 + 7 * i, 900 + 3 * i) for i in range(200)]
    for signup, check in flows:
        samples.add_line(f"F 200 {signup} {check} {signup + check + 50}", "flow")
    for line in ("S 429 800", "S 201 700", "F 422 1000 500 1600", "F 422 1000 500 1600"):
        samples.add_line(line, "flow")
    wrk = {"duration_us": 2_500_000, "requests": 404, "connect": 0, "read": 0, "timeout": 3}
    cell = report.make_cell("verifyd empty", 16, samples, wrk, cpu_s=0.6)
    assert cell.flows == len(flows)
    assert cell.flows_s == pytest.approx(len(flows) / 2.5)
    assert cell.req_s == pytest.approx(404 / 2.5)
    assert cell.cpu_ms_per_op == pytest.approx(600 / len(flows))
    assert cell.latency_ms["signup"] == pytest.approx(report.spread([s for s, _ in flows]))
    assert cell.latency_ms["check"] == pytest.approx(report.spread([c for _, c in flows]))
    assert cell.latency_ms["flow"] == pytest.approx(report.spread([s + c + 50 for s, c in flows]))
    assert cell.errors == {
        "signup 429": 1,
        "signup 201 without a verification id": 1,
        "check 422": 2,
        "socket timeout": 3,
    }
    assert cell.error_count == 7
    json.dumps(cell.as_dict())  # what --json writes
    with pytest.raises(ValueError):
        samples.add_line("X 1 2", "flow")

    plain = report.Samples()
    for us in (100, 200, 300):
        plain.add_line(f"R 200 {us}", "noop")
    plain.add_line("R 503 50", "noop")
    ref = report.make_cell(
        "reference noop", 16, plain, {"duration_us": 1_000_000, "requests": 4}, 0.2
    )
    assert ref.flows is None and ref.flows_s is None and ref.ops == 4
    assert ref.latency_ms == {"request": pytest.approx(report.spread([100, 200, 300]))}
    assert ref.errors == {"noop 503": 1}
    assert report.parse_wrk("noise\nRESULT duration_us=5 requests=2 read=1\n") == {
        "duration_us": 5,
        "requests": 2,
        "read": 1,
    }
    with pytest.raises(ValueError):
        report.parse_wrk("wrk printed nothing of ours")
    threaded = report.Samples()
    threaded.add_line("R 200 150", "insert-def")
    threaded.add_line("R 500 90", "insert-def")
    wrk = {"duration_us": 1_000_000, "requests": 2}
    def_floor = report.make_cell(report.DEF_FLOOR, 16, threaded, wrk, 0.1)
    assert def_floor.flows is None and def_floor.ops == 2
    assert def_floor.errors == {"insert-def 500": 1}


def _cell(name: str, c: int, per_s: float, p99: float = 1.0, errors: int = 0) -> report.Cell:
    flow = name.startswith("verifyd")
    return report.Cell(
        name=name,
        c=c,
        duration_s=10.0,
        requests=int(per_s * 10 * (2 if flow else 1)),
        flows=int(per_s * 10) if flow else None,
        latency_ms={"flow" if flow else "request": (p99 / 2, p99 / 1.5, p99)},
        errors={"check 500": errors} if errors else {},
        cpu_s=1.0,
    )


def test_ratios_and_targets() -> None:
    floor, def_floor, noop = 1000.0, 500.0, 8000.0
    c16 = [
        _cell("reference noop", 16, noop),
        _cell(report.FLOOR, 16, floor),
        _cell(report.DEF_FLOOR, 16, def_floor),
        _cell("verifyd empty", 16, floor * report.FLOOR_SHARE, p99=report.FLOW_P99_MS[16]),
        _cell("verifyd seeded", 16, floor * report.FLOOR_SHARE * 0.95, p99=1.0),
    ]
    c64 = [
        _cell(report.FLOOR, 64, floor),
        _cell("verifyd empty", 64, 300, p99=report.FLOW_P99_MS[64] + 1),
        _cell("verifyd seeded", 64, 300 * (1 - report.SEEDED_TOLERANCE) - 1, errors=2),
    ]
    r = report.ratios(c16 + c64)
    empty16, seeded16 = c16[3].flows_s, c16[4].flows_s
    assert empty16 == 250 and seeded16 == 237.5 and c16[3].req_s == 500
    assert r["c=16 empty: flows/s / floor req/s"] == pytest.approx(0.25)
    assert r["c=16 empty: req/s / floor req/s"] == pytest.approx(0.5)
    assert r["c=16 empty: flows/s / noop req/s"] == pytest.approx(250 / 8000)
    assert r["c=16: seeded flows/s / empty flows/s"] == pytest.approx(0.95)
    assert "c=64 empty: flows/s / noop req/s" not in r  # no noop cell at 64
    # the sync endpoint's floor: ratios of their own, none where it was not measured
    assert r["c=16 empty: flows/s / def-floor req/s"] == pytest.approx(0.5)
    assert r["c=16 empty: req/s / def-floor req/s"] == pytest.approx(1.0)
    assert r["c=16 seeded: flows/s / def-floor req/s"] == pytest.approx(237.5 / 500)
    assert r["c=16 seeded: req/s / def-floor req/s"] == pytest.approx(475 / 500)
    assert not [k for k in r if k.startswith("c=64") and "def-floor" in k]

    verdicts = report.targets(c16 + c64)
    assert len(verdicts) == 4 * 2 + 2 + 1

    def verdict(*words: str) -> bool:
        [ok] = [ok for text, ok in verdicts if all(w in text for w in words)]
        return ok

    assert verdict("empty c=16", "floor")  # exactly the share: met
    assert not verdict("seeded c=16", "floor")  # 5 % short of it (x0.475 of the def floor)
    assert "floor 1000 req/s" in next(t for t, _ in verdicts if "seeded c=16" in t)
    assert verdict("empty c=16", "p99") and verdict("seeded c=16", "p99")
    assert not verdict("empty c=64", "p99")
    assert verdict("empty c=64", "floor") and verdict("seeded c=64", "floor")
    assert verdict("c=16:", "below") and not verdict("c=64:", "below")
    faster = [
        _cell("verifyd empty", 32, 300),
        _cell("verifyd seeded", 32, 300 * 1.2),
    ]
    [(text, ok)] = [v for v in report.targets(faster) if "seeded flows/s" in v[0]]
    assert ok and "x1.200" in text  # a faster seeded run is no slowdown
    assert not verdict("zero errors (2)")
    text = report.summary(c16 + c64)
    assert text.count("PASS") + text.count("FAIL") == len(verdicts)
    assert "verifyd seeded c=64: check 500 x2" in text
    assert "c=16 empty: flows/s / def-floor req/s" in text
    assert re.search(r"^reference insert \(def\)\s+16\s+500\.0\s", text, re.MULTILINE)


def test_the_stats_calls_figures_and_target() -> None:
    from bench import stats

    def run(ms: list[float], compare: list[float]) -> stats.StatsRun:
        return stats.StatsRun(
            accounts=1_000_000,
            rollup_rows=52_000,
            signups=1_000_123,
            versions=[3, 2, 1],
            warmup=1,
            latency_ms={"stats": ms, "stats compare=2,3": compare},
        )

    fast = run([120.0, 100.0, 110.0, 130.0], [90.0, 80.0])
    assert fast.figures("stats") == (pytest.approx(115.0), 130.0)
    assert fast.figures("stats compare=2,3") == (pytest.approx(85.0), 90.0)
    assert [ok for _, ok in stats.targets(fast)] == [True, True]
    # The slowest call decides: a p50 well within the target does not hide one miss.
    slow = run([100.0, 100.0, 100.0, stats.TARGET_MS + 1], [stats.TARGET_MS, 10.0])
    verdicts = stats.targets(slow)
    assert [ok for _, ok in verdicts] == [False, True]
    assert "max 1001 ms <= 1000 ms (p50 100 ms)" in verdicts[0][0]
    assert "1,000,000 accounts" in verdicts[0][0]
    d = slow.as_dict()
    assert d["max_ms"]["stats"] == stats.TARGET_MS + 1 and d["target_ms"] == stats.TARGET_MS
    json.dumps(d)

    cells = [_cell(report.FLOOR, 16, 1000.0), _cell("verifyd empty", 16, 300.0)]
    text = report.summary(cells, stats.lines(slow), verdicts)
    assert text.count("PASS") + text.count("FAIL") == len(report.targets(cells)) + 2
    assert (
        "52,000 rollup rows" in text and "1,000,123 signups under policy versions 3, 2, 1" in text
    )
    stats_at, targets_at = text.index("stats call ("), text.index("targets:")
    assert text.index("ratios (") < stats_at < targets_at < text.index("FAIL  stats at")
    assert report.summary(cells) == report.summary(cells, None, [])
