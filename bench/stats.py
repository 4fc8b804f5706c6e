"""The stats call on the seeded database: ``GET /v1/admin/stats`` timed against its target.

:func:`measure` runs against a verifyd already serving the seeded database: it creates
an admin key with ``verifyd admin-key create --name bench`` in the server's environment
(the key is read from its stdout and never printed), counts the rollup's rows, then
calls each query of :data:`QUERIES` ``warmup`` times (discarded) and ``calls`` times
(measured), one after another on one connection, and checks each answer: status 200,
and the plain call's signups at least the seeded accounts. The target: every measured
call answers within :data:`TARGET_MS`.
"""

from __future__ import annotations

import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench import report
from bench.servers import HarnessError

#: Every measured stats call answers within this (the performance issue's 1 s).
TARGET_MS = 1000.0
#: What is asked: the whole comparison, and two versions compared (bench/population.py's
#: split and the current version).
QUERIES: dict[str, dict[str, str]] = {"stats": {}, "stats compare=2,3": {"compare": "2,3"}}
PATH = "/v1/admin/stats"


@dataclass
class StatsRun:
    """The measured stats calls of one seeded database."""

    accounts: int  # seeded
    rollup_rows: int  # stat_counts rows when the calls were made
    signups: int  # what the plain call's answer counts, over every version and arm
    versions: list[int]  # the policy versions it lists
    warmup: int
    latency_ms: dict[str, list[float]]  # query -> each measured call

    def figures(self, query: str) -> tuple[float, float]:
        """p50 and max (ms) of one query's measured calls."""
        ms = sorted(self.latency_ms[query])
        return report.percentile(ms, 50), ms[-1] if ms else float("nan")

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["p50_ms"] = {q: self.figures(q)[0] for q in self.latency_ms}
        d["max_ms"] = {q: self.figures(q)[1] for q in self.latency_ms}
        d["target_ms"] = TARGET_MS
        return d


def admin_key(verifyd: Path, env: dict[str, str], cwd: Path) -> str:
    """A new admin key named ``bench``, made by the CLI on the server's database."""
    done = subprocess.run(
        [str(verifyd), "admin-key", "create", "--name", "bench"],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    key = done.stdout.strip()
    if done.returncode != 0 or not key.startswith("vdk_"):
        raise HarnessError(f"verifyd admin-key create failed ({done.returncode}):\n{done.stderr}")
    return key


def rollup_rows(database_url: str) -> int:
    """How many rows ``stat_counts`` holds."""
    from sqlalchemy import func, select

    from verifyd.db import Database
    from verifyd.models import StatCount, table_of

    db = Database(database_url)
    try:
        with db.read() as conn:
            count = conn.execute(select(func.count()).select_from(table_of(StatCount))).scalar()
            return int(count or 0)
    finally:
        db.dispose()


def measure(
    server_url: str,
    key: str,
    *,
    database_url: str,
    accounts: int,
    calls: int,
    warmup: int = 1,
) -> StatsRun:
    """Time every query of :data:`QUERIES` against a server on the seeded database."""
    import httpx

    rows = rollup_rows(database_url)
    latency: dict[str, list[float]] = {}
    answer: dict[str, Any] = {}
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=server_url, headers=headers, timeout=300) as client:
        for query, params in QUERIES.items():
            latency[query] = []
            for n in range(warmup + calls):
                started = time.perf_counter()
                r = client.get(PATH, params=params)
                ms = 1000 * (time.perf_counter() - started)
                if r.status_code != 200:
                    raise HarnessError(f"{query}: {r.status_code} {r.text[:500]}")
                if n >= warmup:
                    latency[query].append(ms)
                if not params:
                    answer = r.json()
    versions = answer.get("versions", [])
    signups = sum(arm["signups"] for v in versions for arm in v["arms"])
    if signups < accounts:
        raise HarnessError(f"the stats count {signups:,} signups of {accounts:,} seeded")
    return StatsRun(
        accounts=accounts,
        rollup_rows=rows,
        signups=signups,
        versions=[v["policy_version"] for v in versions],
        warmup=warmup,
        latency_ms=latency,
    )


def lines(run: StatsRun) -> list[str]:
    """The stats section of the summary."""
    out = [
        f"stats call ({PATH} on the seeded database: {run.accounts:,} accounts, "
        f"{run.rollup_rows:,} rollup rows; {run.warmup} warm-up + "
        f"{len(next(iter(run.latency_ms.values()), []))} measured calls each):"
    ]
    for query in run.latency_ms:
        p50, top = run.figures(query)
        out.append(f"  {query:<{report.NAME}} p50 {p50:8.1f} ms   max {top:8.1f} ms")
    versions = ", ".join(str(v) for v in run.versions)
    out.append(f"  answer: {run.signups:,} signups under policy versions {versions}")
    return out


def targets(run: StatsRun) -> list[tuple[str, bool]]:
    """Each query's target: its slowest measured call within :data:`TARGET_MS`."""
    out = []
    for query in run.latency_ms:
        p50, top = run.figures(query)
        out.append(
            (
                f"{query} at {run.accounts:,} accounts: max {top:.0f} ms <= "
                f"{TARGET_MS:.0f} ms (p50 {p50:.0f} ms)",
                top <= TARGET_MS,
            )
        )
    return out
