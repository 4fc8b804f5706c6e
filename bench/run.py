"""Measure verifyd against the floor, in one run: ``make bench`` or

    .venv/bin/python bench/run.py [--database sqlite|postgresql] [--duration 15]
        [--warmup 3] [--concurrency 16,64] [--seed 1000000] [--stats-calls 10]
        [--workers 1] [--json FILE]

What it measures. The servers run on one core (``taskset -c`` the first CPU this
process may use), wrk on another, each wrk thread driving one connection
(``-tC -cC``). For each concurrency C, in this order:

- reference noop: ``bench/reference.py``'s ``POST /noop`` under uvicorn with
  ``verifyd serve``'s flags (1 worker, no access log, log level info; uvicorn's "auto"
  loop and HTTP parser, i.e. uvloop and httptools, for every server): the framework's
  ceiling.
- reference insert: its ``POST /insert``, an ``async def`` committing one row inline on
  the event loop through SQLite in WAL mode with ``synchronous=FULL``: the floor for
  one durable write per request, the strict one (the leanest honest server making one
  durable write per request: no thread hop), which the targets are measured against.
- reference insert (def): its ``POST /insert-def``, the same write from a plain
  ``def`` endpoint, which FastAPI runs in its thread pool: what a typical sync FastAPI
  app pays for it, the thread hop included (one connection shared under a lock;
  bench/reference.py says why). The second floor: ratios, no target. The reference
  cells run on SQLite whatever ``--database`` says.
- verifyd empty: the shipped command, ``taskset -c CPU .venv/bin/verifyd serve``, on a
  fresh database (it migrates at start), sandbox on, fixed sandbox code; each wrk
  connection chains the flow signup (``POST /v1/accounts``) -> check (``POST
  /v1/verifications/{id}/check``) on numbers no flow of the bench used before.
- verifyd seeded: the same on a copy of a database pre-seeded with ``--seed`` accounts:
  30 days of signups under three policy versions, the current one the flows' (bench/
  population.py), and the stats rollup rebuilt from those rows (bench/seed.py; seeded
  once, the time the rows and the rollup took printed).
- the stats call: on the server of the first seeded cell, once its flows are measured,
  an admin key (``verifyd admin-key create``), then ``GET /v1/admin/stats`` and the same
  with ``compare=2,3``, each 1 warm-up call and ``--stats-calls`` measured ones, one at
  a time (bench/stats.py): p50 and max latency, and the rollup's rows.

Each cell is a warm-up run (``--warmup`` s, discarded) then the measured run
(``--duration`` s) against the same server; each server start gets a fresh database.
verifyd runs as shipped, but with ``VERIFYD_ACCESS_LOG=false``, as the references have
no access log (the log costs a few percent of a core), and with sandbox limits
``VERIFYD_SANDBOX_LIMIT_MULTIPLIER=1000000`` times looser than the real ones: every
signup and check still counts against them (the same writes), but a fast server is
not throttled (bench/environment.py). ``--database postgresql`` runs the verifyd cells
on the test suite's throwaway PostgreSQL server (tests/support/postgres.py), unpinned:
the database shares the two cores with server and wrk; it is made durable (fsync,
synchronous commit) before anything is measured. ``--workers N`` (N > 1) runs
``verifyd serve --workers N`` on every CPU this process may use, wrk's included: the
setting of a replica with several workers, at the price of the pinning (its ratios
then compare a several-core server with one-core references).

How to read it. Per cell: req/s (every answer wrk counted), flows/s (completed
signup -> check pairs per second), exact p50/p95/p99 of the signup step, the check step
and the whole flow (signup sent -> check answered) of completed flows, or of each
request for the reference; every non-2xx answer and wrk socket error; and the
server's CPU time (its process and children, /proc) per flow or per reference
request. On a shared 2-core machine throughput is noisy; CPU ms per flow is not, and
is the figure to compare between commits. Then the ratios (verifyd flows/s and req/s
against each floor's req/s, "floor" the strict one and "def-floor" the sync endpoint's;
flows/s against noop's req/s; seeded against empty) and the targets, each marked PASS
or FAIL, all against the strict floor: flows/s >= 0.25 x floor req/s at each C, flow
p99 <= 50 ms at C=16 and <= 150 ms at C=64, seeded flows/s at most 10 % below empty, zero
errors; and every measured stats call answered within 1 s. The exit status is 0
whatever the targets say (this is a measurement); 1 when the harness failed (a server
did not start, wrk failed, a stats call did not answer 200), 2 when wrk or taskset is
missing and cannot be installed (the command to run is printed).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from itertools import count
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench import environment, host, report, seed, stats  # noqa: E402
from bench.servers import HarnessError, Postgres, Server, free_port  # noqa: E402

HERE = Path(__file__).resolve().parent


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Measure verifyd against the floor (see the module docstring)."
    )
    p.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    p.add_argument("--duration", type=int, default=15, help="seconds per measured run")
    p.add_argument("--warmup", type=int, default=3, help="seconds of discarded warm-up")
    p.add_argument("--concurrency", default="16,64", help="comma-separated connections")
    p.add_argument("--seed", type=int, default=1_000_000, help="accounts (0: no seeded cells)")
    p.add_argument("--stats-calls", type=int, default=10, help="measured stats calls (0: none)")
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        help="verifyd serve's uvicorn workers (>1: the verifyd cells run on every CPU)",
    )
    p.add_argument("--json", type=Path, help="also write everything measured here")
    args = p.parse_args(argv)
    args.concurrency = [int(c) for c in args.concurrency.split(",") if c.strip()]
    if not args.concurrency or any(not 1 <= c < seed.MAX_THREADS for c in args.concurrency):
        p.error(f"--concurrency: each between 1 and {seed.MAX_THREADS - 1}")
    if args.workers < 1:
        p.error("--workers must be >= 1")
    if args.duration < 1 or min(args.warmup, args.seed, args.stats_calls) < 0:
        p.error("--duration must be >= 1 s, --warmup, --seed and --stats-calls >= 0")
    return args


class Bench:
    """The cells of one bench run, and what they share: CPUs, run numbers, a temp dir."""

    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args, self.workdir = args, workdir
        cpus = sorted(os.sched_getaffinity(0))
        if len(cpus) < 2:
            raise HarnessError("needs 2 CPUs: one for the server, one for wrk")
        self.server_cpu, self.wrk_cpu = cpus[0], cpus[1]
        # Several workers on one core would only take turns: they get every CPU
        # (wrk's included), and the verifyd cells are then unpinned in effect.
        self.verifyd_cpus: int | str = (
            self.server_cpu if args.workers == 1 else ",".join(str(c) for c in cpus)
        )
        self.runs = count()  # every wrk run: its samples directory
        self.flow_runs = count()  # flow runs only: their phone numbers (seed.flow_prefix)
        self.cells: list[report.Cell] = []
        self.notes: list[str] = []  # machine, database, seeding: printed above the table
        self.stats: stats.StatsRun | None = None

    def wrk(
        self, url: str, mode: str, c: int, seconds: int
    ) -> tuple[report.Samples, dict[str, int]]:
        run = next(self.runs)
        prefix = seed.flow_prefix(next(self.flow_runs)) if mode == "flow" else "-"
        samples_dir = self.workdir / f"samples-{run:02d}"
        samples_dir.mkdir()
        cmd = ["taskset", "-c", str(self.wrk_cpu), "wrk", f"-t{c}", f"-c{c}", f"-d{seconds}s"]
        cmd += ["--timeout", "10s", "-s", str(HERE / "flow.lua"), url, "--", mode]
        cmd += [environment.CODE]
        cmd += [prefix, str(samples_dir)]
        done = subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL)
        if done.returncode != 0 or ".lua" in done.stderr:
            raise HarnessError(f"wrk failed ({done.returncode}): {' '.join(cmd)}\n{done.stderr}")
        totals = report.parse_wrk(done.stdout)
        samples = report.read_samples(samples_dir, mode)
        shutil.rmtree(samples_dir)
        return samples, totals

    def cell(
        self, name: str, server: Server, path: str, mode: str, c: int, db: Postgres | None = None
    ) -> None:
        url = server.url + path
        if self.args.warmup:
            self.wrk(url, mode, c, self.args.warmup)
        cpu, db_cpu = server.cpu_seconds(), db.cpu_seconds() if db else 0.0
        samples, totals = self.wrk(url, mode, c, self.args.duration)
        cpu, db_cpu = server.cpu_seconds() - cpu, (db.cpu_seconds() - db_cpu if db else None)
        cell = report.make_cell(name, c, samples, totals, cpu, db_cpu)
        self.cells.append(cell)
        flows = "" if cell.flows_s is None else f", {cell.flows_s:.1f} flows/s"
        print(
            f"  c={c:<3} {name:<{report.NAME}} {cell.req_s:8.1f} req/s{flows}, "
            f"{cell.error_count} errors, {cell.cpu_ms_per_op:.3f} CPU ms/op",
            file=sys.stderr,
            flush=True,
        )

    def reference(self, c: int, cwd: Path) -> None:
        port = free_port()
        env = environment.reference(cwd / "reference.db", port)
        argv = [sys.executable, str(HERE / "reference.py")]
        probe = ("POST", "/noop")
        with Server(
            "reference", argv, cpu=self.server_cpu, env=env, cwd=cwd, port=port, probe=probe
        ) as s:
            self.cell("reference noop", s, "/noop", "noop", c)
            self.cell(report.FLOOR, s, "/insert", "insert", c)
            self.cell(report.DEF_FLOOR, s, "/insert-def", "insert-def", c)

    def verifyd(
        self, name: str, c: int, url: str, cwd: Path, db: Postgres | None, stats_calls: int = 0
    ) -> None:
        port = free_port()
        env = environment.verifyd(url, port)
        verifyd = Path(sys.executable).parent / "verifyd"
        probe = ("GET", "/readyz")
        argv = [str(verifyd), "serve", "--workers", str(self.args.workers)]
        cpu = self.verifyd_cpus
        with Server(name, argv, cpu=cpu, env=env, cwd=cwd, port=port, probe=probe) as s:
            self.cell(name, s, "", "flow", c, db)
            if stats_calls:
                key = stats.admin_key(verifyd, env, cwd)
                self.stats = stats.measure(
                    s.url, key, database_url=url, accounts=self.args.seed, calls=stats_calls
                )
                for line in stats.lines(self.stats):
                    print(f"  {line}", file=sys.stderr, flush=True)


def run(bench: Bench) -> None:
    """Seed once, then every cell at each concurrency: reference, verifyd empty, seeded."""
    args, workdir = bench.args, bench.workdir
    flow_runs = len(args.concurrency) * (2 if args.seed else 1) * (2 if args.warmup else 1)
    if flow_runs > seed.MAX_RUNS:
        raise HarnessError(f"at most {seed.MAX_RUNS} flow runs per bench (fewer --concurrency)")
    pg = Postgres() if args.database == "postgresql" else None
    with pg if pg is not None else contextlib.nullcontext():
        bench.notes.append(
            "database: sqlite, verifyd's own settings, a fresh file per server"
            if pg is None
            else f"database: postgresql {pg.version()} on 127.0.0.1, unpinned, fsync and "
            "synchronous_commit on, a fresh database per server"
        )
        seeded: dict[int, str] = {}  # c -> database URL (SQLite: the template file)
        if args.seed:
            started = time.monotonic()
            if pg is None:
                template = workdir / "seeded.db"
                seed.migrate(f"sqlite:///{template}")
                seeded_db = seed.seed(f"sqlite:///{template}", args.seed)
                seeded = {c: str(template) for c in args.concurrency}
            else:
                name, url = pg.create()
                seed.migrate(url)
                seeded_db = seed.seed(url, args.seed)
                seeded = {c: pg.create(template=name)[1] for c in args.concurrency}
            rows = ", ".join(f"{n:,} {t}" for t, n in seeded_db.rows.items() if t != "accounts")
            note = (
                f"seeding: {args.seed:,} accounts ({rows}) in {time.monotonic() - started:.1f} s:"
                f" rows {seeded_db.rows_s:.1f} s, then the rollup, {seeded_db.counters:,}"
                f" counters, {seeded_db.rollup_s:.1f} s"
            )
            bench.notes.append(note)
            print(f"bench: {note}", file=sys.stderr, flush=True)
        if pg is not None:
            pg.make_durable()
        os.sync()
        for c in args.concurrency:
            cell_dir = workdir / f"c{c}"
            cell_dir.mkdir()
            bench.reference(c, cell_dir)
            empty = f"sqlite:///{cell_dir / 'empty.db'}" if pg is None else pg.create()[1]
            bench.verifyd("verifyd empty", c, empty, cell_dir, pg)
            if c in seeded:
                url = seeded[c]
                if pg is None:
                    shutil.copyfile(url, cell_dir / "seeded.db")
                    url = f"sqlite:///{cell_dir / 'seeded.db'}"
                # The copy's writeback (1.5 GB for 1,000,000 accounts) happens now, not
                # under the measurement, where it queues every fsync behind it.
                os.sync()
                calls = args.stats_calls if c == args.concurrency[0] else 0
                bench.verifyd("verifyd seeded", c, url, cell_dir, pg, calls)
            shutil.rmtree(cell_dir)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    missing = host.ensure_tools()
    if missing is not None:
        return missing
    workdir = Path(tempfile.mkdtemp(prefix="verifyd-bench-"))
    try:
        bench = Bench(args, workdir)
        bench.notes.append(host.machine())
        print(bench.notes[0], file=sys.stderr, flush=True)
        run(bench)
    except HarnessError as exc:
        print(f"bench: harness failed: {exc}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    warmup = f"{args.warmup} s warm-up (discarded), then " if args.warmup else "no warm-up, "
    bench.notes.append(
        f"runs: {warmup}{args.duration} s measured; servers on CPU {bench.server_cpu}, wrk on "
        f"CPU {bench.wrk_cpu}, one connection per wrk thread; verifyd's access log off"
    )
    if args.workers > 1:
        bench.notes.append(
            f"verifyd: {args.workers} uvicorn workers on CPUs {bench.verifyd_cpus} (sharing "
            "wrk's): its ratios compare a multi-core server with one-core references"
        )
    print("\n".join(bench.notes) + "\n")
    more = stats.lines(bench.stats) if bench.stats else None
    stats_targets = stats.targets(bench.stats) if bench.stats else []
    print(report.summary(bench.cells, more, stats_targets))
    if args.json:
        doc = {
            "notes": bench.notes,
            "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
            "cells": [cell.as_dict() for cell in bench.cells],
            "ratios": report.ratios(bench.cells),
            "stats": bench.stats.as_dict() if bench.stats else None,
            "targets": [
                {"target": t, "pass": ok} for t, ok in report.targets(bench.cells) + stats_targets
            ],
        }
        args.json.write_text(json.dumps(doc, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
