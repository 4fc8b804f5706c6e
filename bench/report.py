"""What bench/run.py measured, summed up: samples -> cells -> ratios, targets and a table.

Pure arithmetic on what flow.lua and wrk wrote; no servers here (tests/test_bench.py
checks it on known inputs). Latencies are exact percentiles of every sample (linear
interpolation between the two nearest ranks, as ``statistics.quantiles(...,
method="inclusive")``), not wrk's histogram.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

#: Flow p99 limits (ms) by concurrency; other concurrencies have no latency target.
FLOW_P99_MS = {16: 50.0, 64: 150.0}
#: The two floors (bench/reference.py): the strict one, ``/insert`` inline on the event
#: loop, which the targets are measured against; and ``/insert-def``, the same write
#: from a sync endpoint in FastAPI's thread pool, which only gets ratios.
FLOOR = "reference insert"
DEF_FLOOR = "reference insert (def)"
#: verifyd flows/s must reach this share of the (strict) floor's req/s.
FLOOR_SHARE = 0.25
#: Seeded flows/s may fall at most this fraction below empty flows/s. One-sided: a
#: million rows must not slow the flow; a seeded run that happens to be faster (the
#: machine's noise between two 15 s runs is larger than 10 %) is not a miss.
SEEDED_TOLERANCE = 0.10
#: wrk's socket errors (its "status" count is the non-2xx the samples already have).
SOCKET_ERRORS = ("connect", "read", "write", "timeout")
PERCENTILES = (50, 95, 99)
#: Width of the cell names in the tables (the longest is DEF_FLOOR).
NAME = 23


def percentile(values: list[float], q: float) -> float:
    """The ``q``-th percentile (0-100) of ascending ``values``; NaN when there are none."""
    if not values:
        return math.nan
    pos = (len(values) - 1) * q / 100
    lo = math.floor(pos)
    hi = min(lo + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (pos - lo)


def spread(us: list[int]) -> tuple[float, float, float]:
    """p50, p95, p99 in milliseconds of latencies in microseconds."""
    ordered = sorted(us)
    return tuple(percentile(ordered, q) / 1000 for q in PERCENTILES)  # type: ignore[return-value]


@dataclass
class Samples:
    """Every line the wrk threads of one run wrote (see flow.lua)."""

    latency_us: dict[str, list[int]] = field(default_factory=dict)  # step -> successes
    flows: int = 0
    errors: Counter[str] = field(default_factory=Counter)

    def add_line(self, line: str, mode: str) -> None:
        kind, *fields = line.split()
        numbers = [int(f) for f in fields]
        if kind == "R":
            status, us = numbers
            if 200 <= status < 300:
                self.latency_us.setdefault("request", []).append(us)
            else:
                self.errors[f"{mode} {status}"] += 1
        elif kind == "S":
            status = numbers[0]
            self.errors[f"signup {status}" + (" without a verification id" * (status == 201))] += 1
        elif kind == "F":
            status, signup, check, flow = numbers
            if status == 200:
                self.flows += 1
                for step, us in (("signup", signup), ("check", check), ("flow", flow)):
                    self.latency_us.setdefault(step, []).append(us)
            else:
                self.errors[f"check {status}"] += 1
        else:
            raise ValueError(f"not a sample line: {line!r}")


def read_samples(directory: Path, mode: str) -> Samples:
    """The samples of every thread file (``thread-*.txt``) in ``directory``."""
    samples = Samples()
    for path in sorted(directory.glob("thread-*.txt")):
        for line in path.read_text().splitlines():
            if line.strip():
                samples.add_line(line, mode)
    return samples


def parse_wrk(stdout: str) -> dict[str, int]:
    """The numbers of flow.lua's ``RESULT`` line in wrk's output."""
    match = re.search(r"^RESULT (.*)$", stdout, re.MULTILINE)
    if match is None:
        raise ValueError("wrk printed no RESULT line:\n" + stdout)
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", match.group(1))}


@dataclass
class Cell:
    """One measured run: a server, a concurrency, a workload."""

    name: str  # reference noop | FLOOR | DEF_FLOOR | verifyd empty | verifyd seeded
    c: int
    duration_s: float
    requests: int
    flows: int | None  # None for the reference cells
    latency_ms: dict[str, tuple[float, float, float]]
    errors: dict[str, int]
    cpu_s: float  # the server process and its children, over the measured run
    db_cpu_s: float | None = None  # PostgreSQL's processes, when it is the database

    @property
    def req_s(self) -> float:
        return self.requests / self.duration_s

    @property
    def flows_s(self) -> float | None:
        return None if self.flows is None else self.flows / self.duration_s

    @property
    def ops(self) -> int:
        """What CPU is divided by: flows, or requests for the reference."""
        return self.flows if self.flows is not None else self.requests

    @property
    def cpu_ms_per_op(self) -> float:
        return 1000 * self.cpu_s / self.ops if self.ops else math.nan

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.update(req_s=self.req_s, flows_s=self.flows_s, cpu_ms_per_op=self.cpu_ms_per_op)
        return d


def make_cell(
    name: str,
    c: int,
    samples: Samples,
    wrk: dict[str, int],
    cpu_s: float,
    db_cpu_s: float | None = None,
) -> Cell:
    """A cell from one run's samples, wrk's totals and the CPU the server used meanwhile."""
    errors = dict(samples.errors)
    for kind in SOCKET_ERRORS:
        if wrk.get(kind):
            errors[f"socket {kind}"] = wrk[kind]
    flow = name.startswith("verifyd")
    return Cell(
        name=name,
        c=c,
        duration_s=wrk["duration_us"] / 1e6,
        requests=wrk["requests"],
        flows=samples.flows if flow else None,
        latency_ms={step: spread(us) for step, us in samples.latency_us.items()},
        errors=errors,
        cpu_s=cpu_s,
        db_cpu_s=db_cpu_s,
    )


def _find(cells: list[Cell], name: str, c: int) -> Cell | None:
    return next((x for x in cells if x.name == name and x.c == c), None)


def ratios(cells: list[Cell]) -> dict[str, float]:
    """verifyd against both floors, the ceiling and itself, per concurrency.

    "floor" is the strict one (FLOOR, ``/insert``), "def-floor" the sync endpoint's
    (DEF_FLOOR, ``/insert-def``).
    """
    out: dict[str, float] = {}
    for c in sorted({x.c for x in cells}):
        floors = (("floor", _find(cells, FLOOR, c)), ("def-floor", _find(cells, DEF_FLOOR, c)))
        noop = _find(cells, "reference noop", c)
        empty, seeded = _find(cells, "verifyd empty", c), _find(cells, "verifyd seeded", c)
        for label, cell in (("empty", empty), ("seeded", seeded)):
            if cell is None or cell.flows_s is None:
                continue
            for which, floor in floors:
                if floor is not None and floor.req_s:
                    out[f"c={c} {label}: flows/s / {which} req/s"] = cell.flows_s / floor.req_s
                    out[f"c={c} {label}: req/s / {which} req/s"] = cell.req_s / floor.req_s
            if noop is not None:
                out[f"c={c} {label}: flows/s / noop req/s"] = cell.flows_s / noop.req_s
        if empty is not None and seeded is not None and empty.flows_s and seeded.flows_s:
            out[f"c={c}: seeded flows/s / empty flows/s"] = seeded.flows_s / empty.flows_s
    return out


def targets(cells: list[Cell]) -> list[tuple[str, bool]]:
    """Each target as (what it says, with the number measured; whether it is met)."""
    out: list[tuple[str, bool]] = []
    for cell in cells:
        if cell.flows_s is None:
            continue
        floor = _find(cells, FLOOR, cell.c)
        if floor is not None:
            share = cell.flows_s / floor.req_s
            out.append(
                (
                    f"{cell.name} c={cell.c}: flows/s {cell.flows_s:.0f} >= {FLOOR_SHARE} x "
                    f"floor {floor.req_s:.0f} req/s (x{share:.3f})",
                    share >= FLOOR_SHARE,
                )
            )
        limit = FLOW_P99_MS.get(cell.c)
        p99 = cell.latency_ms.get("flow", (math.nan,) * 3)[2]
        if limit is not None:
            out.append(
                (f"{cell.name} c={cell.c}: flow p99 {p99:.1f} ms <= {limit:.0f} ms", p99 <= limit)
            )
    for c in sorted({x.c for x in cells}):
        empty, seeded = _find(cells, "verifyd empty", c), _find(cells, "verifyd seeded", c)
        if empty is not None and seeded is not None and empty.flows_s and seeded.flows_s:
            ratio = seeded.flows_s / empty.flows_s
            out.append(
                (
                    f"c={c}: seeded flows/s {seeded.flows_s:.0f} at most "
                    f"{SEEDED_TOLERANCE:.0%} below empty {empty.flows_s:.0f} (x{ratio:.3f})",
                    ratio >= 1 - SEEDED_TOLERANCE,
                )
            )
    total = sum(cell.error_count for cell in cells)
    out.append((f"every cell: zero errors ({total})", total == 0))
    return out


def _trio(values: tuple[float, float, float] | None) -> str:
    return "-" if values is None else "/".join(f"{v:.1f}" for v in values)


def table(cells: list[Cell]) -> str:
    """The cells as text: throughput, errors and CPU, then latency percentiles."""
    lines = [
        f"{'cell':<{NAME}}{'c':>4}{'req/s':>10}{'flows/s':>10}{'errors':>8}"
        f"{'CPU ms/op':>11}{'db CPU ms/op':>14}  (op: a flow; for the reference, a request)"
    ]
    for x in cells:
        flows = "-" if x.flows_s is None else f"{x.flows_s:.1f}"
        db = "-" if x.db_cpu_s is None or not x.ops else f"{1000 * x.db_cpu_s / x.ops:.3f}"
        lines.append(
            f"{x.name:<{NAME}}{x.c:>4}{x.req_s:>10.1f}{flows:>10}{x.error_count:>8}"
            f"{x.cpu_ms_per_op:>11.3f}{db:>14}"
        )
    lines += [
        "",
        f"{'latency ms p50/p95/p99':<{NAME + 4}}{'request or flow':>20}{'signup':>20}{'check':>20}",
    ]
    for x in cells:
        main = x.latency_ms.get("flow") or x.latency_ms.get("request")
        signup, check = x.latency_ms.get("signup"), x.latency_ms.get("check")
        trios = f"{_trio(main):>20}{_trio(signup):>20}{_trio(check):>20}"
        lines.append(f"{x.name:<{NAME}}{x.c:>4}{trios}")
    errors = [f"  {x.name} c={x.c}: {k} x{v}" for x in cells for k, v in sorted(x.errors.items())]
    if errors:
        lines += ["", "errors (non-2xx answers by step and status, wrk socket errors):", *errors]
    return "\n".join(lines)


def summary(
    cells: list[Cell],
    more: list[str] | None = None,
    more_targets: list[tuple[str, bool]] | None = None,
) -> str:
    """The table, the ratios, ``more`` (another section), and each target marked PASS or FAIL.

    ``more_targets`` (the stats call's, bench/stats.py) come after the cells' own.
    """
    lines = [table(cells), "", f"ratios (floor: {FLOOR}, the targets'; def-floor: {DEF_FLOOR}):"]
    lines += [f"  {k:<44}{v:8.3f}" for k, v in ratios(cells).items()]
    if more:
        lines += ["", *more]
    lines += ["", "targets:"]
    verdicts = targets(cells) + (more_targets or [])
    lines += [f"  {'PASS' if ok else 'FAIL'}  {text}" for text, ok in verdicts]
    return "\n".join(lines)
