"""The processes bench/run.py measures: servers pinned to a core, their CPU, and PostgreSQL.

A :class:`Server` is started with ``taskset -c CPU`` (taskset execs the command, so its
pid is the server's), in a session of its own, its output in a log file; it is
ready when its probe answers, and a server that exits first is a harness failure.
:func:`tree_cpu_seconds` is the CPU time (user + system) of a process, of the
children it reaped and of its live descendants, from ``/proc``.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
TICK = os.sysconf("SC_CLK_TCK")


class HarnessError(Exception):
    """The bench itself failed (a server did not start, wrk failed): not a measurement."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on at the moment of asking."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _stat(pid: int) -> tuple[int, int] | None:
    """(ppid, CPU ticks: utime + stime + cutime + cstime) of a process, or None if gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2 :].split()  # after "pid (comm) "
    return int(fields[1]), sum(int(f) for f in fields[11:15])


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds of ``pid``, the children it waited for, and its live descendants."""
    stats = {int(e): s for e in os.listdir("/proc") if e.isdigit() and (s := _stat(int(e)))}
    children: dict[int, list[int]] = {}
    for child, (ppid, _) in stats.items():
        children.setdefault(ppid, []).append(child)
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        if current in stats:
            total += stats[current][1]
        todo.extend(children.get(current, []))
    return total / TICK


def _probe(url: str, method: str) -> bool:
    request = urllib.request.Request(url, method=method, data=b"{}" if method == "POST" else None)
    request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=2) as r:
            return 200 <= r.status < 300
    except (OSError, urllib.error.HTTPError):
        return False


class Server:
    """One server process pinned with taskset; a context manager that always stops it.

    ``cpu`` is one CPU or a taskset list (``"0,1"``): several uvicorn workers share it.
    """

    def __init__(
        self,
        name: str,
        argv: list[str],
        *,
        cpu: int | str,
        env: dict[str, str],
        cwd: Path,
        port: int,
        probe: tuple[str, str],
        timeout: float = 120.0,
    ) -> None:
        self.name, self.cwd, self.port, self.timeout = name, cwd, port, timeout
        self.url = f"http://127.0.0.1:{port}"
        self.probe = probe  # (method, path) that answers 2xx once the server is up
        self.argv = ["taskset", "-c", str(cpu), *argv]
        self.env = env
        self.log = cwd / f"{name.replace(' ', '-')}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def cpu_seconds(self) -> float:
        return tree_cpu_seconds(self.pid)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "".join(self.log.read_text(errors="replace").splitlines(True)[-lines:])
        except OSError:
            return ""

    def __enter__(self) -> Server:
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                self.argv,
                env=self.env,
                cwd=self.cwd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + self.timeout
        method, path = self.probe
        url = self.url + path
        while not _probe(url, method):
            if self.proc.poll() is not None:
                raise HarnessError(
                    f"{self.name} exited with {self.proc.returncode} before answering:\n"
                    + self.log_tail()
                )
            if time.monotonic() > deadline:
                raise HarnessError(f"{self.name} did not answer {url} in time:\n{self.log_tail()}")
            time.sleep(0.1)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)


class Postgres:
    """The test suite's throwaway PostgreSQL server (tests/support/postgres.py).

    It finds the binaries, runs them as the unprivileged ``postgres`` user when root,
    and listens on 127.0.0.1 only. It starts with durability off (fsync and
    synchronous commit off: fast seeding); :meth:`make_durable` turns both back on
    before anything is measured, so its commits are as durable as the floor's.
    """

    def __init__(self) -> None:
        sys.path.insert(0, str(ROOT / "tests"))
        from support.postgres import PostgresServer

        self.server: Any = PostgresServer()
        self._count = 0

    def __enter__(self) -> Postgres:
        if not self.server.available():
            raise HarnessError("PostgreSQL server binaries not found: apt-get install postgresql")
        self.server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.stop()

    def create(self, template: str | None = None) -> tuple[str, str]:
        """A new database (a copy of ``template``, if given): its name and SQLAlchemy URL."""
        self._count += 1
        name = f"bench_{self._count}"
        return name, self.server.create_database(name, template=template)

    def dsn(self, name: str) -> str:
        """The libpq URL of a database (for psycopg)."""
        dsn: str = self.server.dsn(name)
        return dsn

    def make_durable(self) -> None:
        """fsync, full-page writes and synchronous commit on; then a checkpoint."""
        import psycopg

        with psycopg.connect(self.server.dsn("postgres"), autocommit=True) as conn:
            for name in ("fsync", "full_page_writes", "synchronous_commit"):
                conn.execute(f"ALTER SYSTEM SET {name} = on")
            conn.execute("SELECT pg_reload_conf()")
            time.sleep(0.5)  # the postmaster signals its children; let them reload
            conn.execute("CHECKPOINT")

    def version(self) -> str:
        import psycopg

        with psycopg.connect(self.server.dsn("postgres")) as conn:
            row = conn.execute("SHOW server_version").fetchone()
        return str(row[0]) if row else "?"

    def cpu_seconds(self) -> float:
        """CPU seconds of the postmaster and every backend."""
        pid = int((self.server.data_dir / "postmaster.pid").read_text().split()[0])
        return tree_cpu_seconds(pid)
