"""PostgreSQL stops under a running ``verifyd serve`` and two ``verifyd worker``s, then
comes back: 503 problems meanwhile, never a 500; afterwards everything works again
without a restart, and every message goes out exactly once."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from support.gateway import Answer, Gateway, Request
from support.outbox import wait
from support.postgres import PostgresServer
from test_cli import cli_env, start
from test_cli_serve import serving
from verifyd import migrate
from verifyd.db import Database

pytestmark = pytest.mark.postgres

WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"outage-test-webhook-secret-32byte").decode()
PHONES = ["+44 7911 120001", "+44 7911 120002", "+44 7911 120003", "+44 7911 120004"]
PASSWORD = "s3cret-outage-password"


class Holding:
    """A gateway that accepts every message, once per ``webhook-id`` counted; while
    ``gate`` is clear it holds each request until the gate opens."""

    def __init__(self) -> None:
        self.accepted: Counter[str] = Counter()
        self.to: dict[str, str] = {}
        self.lock = threading.Lock()
        self.gate = threading.Event()
        self.gate.set()
        self.holding = threading.Event()

    def __call__(self, request: Request) -> Answer:
        if not self.gate.is_set():
            self.holding.set()
            self.gate.wait(30)
        with self.lock:
            message_id = request.headers["webhook-id"]
            self.accepted[message_id] += 1
            self.to[message_id] = json.loads(request.body)["to"]
        return Answer(202, b'{"id": "gw-1"}')


@pytest.fixture
def private_pg() -> Iterator[PostgresServer]:
    """A PostgreSQL of this test's own: it is stopped and started under the processes."""
    if not PostgresServer.available():
        if os.environ.get("VERIFYD_TEST_SKIP_PG") == "1":
            pytest.skip("PostgreSQL binaries not installed and VERIFYD_TEST_SKIP_PG=1")
        pytest.fail("PostgreSQL server binaries not found: apt-get install postgresql")
    with PostgresServer() as server:
        yield server


def _database(server: PostgresServer) -> str:
    """A migrated database whose role has a password (it must never be shown)."""
    url = server.create_database("verifyd")
    with psycopg.connect(server.dsn(), autocommit=True) as conn:
        conn.execute(f"ALTER ROLE postgres PASSWORD '{PASSWORD}'")
    db = Database(url)
    try:
        migrate.upgrade(db)
    finally:
        db.dispose()
    return url.replace("postgres@", f"postgres:{PASSWORD}@")


@contextlib.contextmanager
def _workers(env: dict[str, str], cwd: Path, count: int) -> Iterator[list[subprocess.Popen[str]]]:
    procs = []
    for i in range(count):
        with (cwd / f"worker-{i}.log").open("wb") as out:
            procs.append(
                start(["worker"], env, cwd, stdout=out, stderr=subprocess.STDOUT, new_session=True)
            )
    try:
        yield procs
    finally:
        for proc in procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:  # pragma: no cover - a hung shutdown
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)


def _logs(cwd: Path) -> str:
    return "".join(p.read_text() for p in sorted(cwd.glob("worker-*.log")))


def _started(cwd: Path, workers: list[subprocess.Popen[str]]) -> bool:
    """Whether every worker announced itself; a worker that died fails, with the logs."""
    assert [w.poll() for w in workers] == [None] * len(workers), _logs(cwd)
    return _logs(cwd).count("verifyd worker development") == len(workers)


def _signup(api: httpx.Client, phone: str) -> httpx.Response:
    return api.post("/v1/accounts", json={"phone": phone})


def _assert_unavailable(r: httpx.Response) -> None:
    assert r.status_code == 503, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert 1 <= int(r.headers["retry-after"]) <= 5
    body: dict[str, Any] = r.json()
    assert body["code"] == "database_unavailable" and body["status"] == 503
    for leak in ("Traceback", PASSWORD, "postgresql", "psycopg", "SELECT", "INSERT"):
        assert leak not in r.text


def test_serve_and_workers_survive_a_postgresql_restart(
    private_pg: PostgresServer, tmp_path: Path
) -> None:
    url = _database(private_pg)
    handler = Holding()
    with Gateway(handler) as gateway:
        env = cli_env(url)
        env.update(
            VERIFYD_SMS_PROVIDER="webhook",
            VERIFYD_WEBHOOK_URL=gateway.url + "/deliver",
            VERIFYD_WEBHOOK_SECRET=WEBHOOK_SECRET,
            VERIFYD_DISPATCH_INTERVAL_SECONDS="0.1",
            VERIFYD_SIGNUPS_PER_IP_PER_HOUR="100000",
            VERIFYD_DB_CONNECT_TIMEOUT_SECONDS="2",
            VERIFYD_DB_POOL_TIMEOUT_SECONDS="2",
        )
        with (
            serving({**env, "VERIFYD_DISPATCHER": "off"}, tmp_path) as server,
            _workers(env, tmp_path, 2) as workers,
            httpx.Client(base_url=server.base_url, timeout=30) as api,
        ):
            wait("both workers started", lambda: _started(tmp_path, workers), timeout=30)
            # Before: a signup is answered and its code delivered.
            first = _signup(api, PHONES[0])
            assert first.status_code == 201, first.text
            wait("the first delivery", lambda: len(handler.accepted) == 1, timeout=20)

            # A send in flight when the database goes: the provider holds it, then
            # accepts it while the database is down, so its worker cannot record it.
            handler.gate.clear()
            second = _signup(api, PHONES[1])
            assert second.status_code == 201, second.text
            assert handler.holding.wait(20), "the second message never reached the gateway"
            private_pg.halt()
            handler.gate.set()

            # The outage: 503 problems, quickly; never a 500; liveness unaffected.
            started = time.monotonic()
            ready = api.get("/readyz")
            assert time.monotonic() - started < 5
            assert ready.status_code == 503, ready.text
            assert ready.headers["content-type"] == "application/problem+json"
            assert ready.json()["code"] == "database_unavailable"
            assert ready.json()["checks"]["database"].startswith("error: ")
            vid = first.json()["verifications"][0]["id"]
            for r in (
                _signup(api, PHONES[2]),
                api.get(f"/v1/verifications/{vid}"),
                api.post(f"/v1/verifications/{vid}/check", json={"code": "000000"}),
                api.get(f"/v1/accounts/{first.json()['account']['id']}"),
            ):
                _assert_unavailable(r)
            assert api.get("/healthz").status_code == 200
            time.sleep(2)  # the idle worker polls meanwhile, the other waits to record
            assert [w.poll() for w in workers] == [None, None], _logs(tmp_path)
            assert server.proc.poll() is None

            # Back on the same port: every process recovers by itself.
            private_pg.resume()
            back = time.monotonic()
            wait("/readyz 200", lambda: api.get("/readyz").status_code == 200, timeout=10)
            third = _signup(api, PHONES[3])
            assert third.status_code == 201, third.text
            wait("every delivery", lambda: len(handler.accepted) == 3, timeout=15)
            recovered = time.monotonic() - back
            for r in (first, second, third):
                vid = r.json()["verifications"][0]["id"]
                got = wait(
                    "its delivery recorded",
                    lambda vid=vid: (
                        api.get(f"/v1/verifications/{vid}").json()["delivery"] == "sent"
                    ),
                    timeout=15,
                )
                assert got
            time.sleep(1)  # nothing goes out twice, not even a little later
            assert set(handler.accepted.values()) == {1}, handler.accepted
            assert sorted(handler.to.values()) == sorted(
                p.replace(" ", "") for p in (PHONES[0], PHONES[1], PHONES[3])
            )
            assert [w.poll() for w in workers] == [None, None], _logs(tmp_path)
            assert server.proc.poll() is None

    logs = [server.output()] + [
        (tmp_path / f"worker-{i}.log").read_text() for i in range(len(workers))
    ]
    for log in logs:
        assert "Traceback" not in log and PASSWORD not in log
    api_warnings = [line for line in logs[0].splitlines() if "database unavailable" in line]
    assert len(api_warnings) >= 4  # one line per failed request
    worker_lines = [
        line for log in logs[1:] for line in log.splitlines() if "database unavailable" in line
    ]
    assert worker_lines, "the workers met the outage"
    assert len(worker_lines) < 40, worker_lines  # backed off, not flooding
    print(f"recovered {recovered:.1f}s after the restart; {len(worker_lines)} worker warnings")


def test_a_worker_started_during_an_outage_waits_for_the_database(
    private_pg: PostgresServer, tmp_path: Path
) -> None:
    env = cli_env(_database(private_pg))
    env.update(VERIFYD_DB_CONNECT_TIMEOUT_SECONDS="2", VERIFYD_DISPATCH_INTERVAL_SECONDS="0.05")
    private_pg.halt()
    with _workers(env, tmp_path, 1) as workers:
        wait("the wait", lambda: "waiting for the database" in _logs(tmp_path), timeout=20)
        assert workers[0].poll() is None, _logs(tmp_path)
        private_pg.resume()
        wait("the start", lambda: _started(tmp_path, workers), timeout=30)
        os.killpg(workers[0].pid, signal.SIGTERM)
        assert workers[0].wait(timeout=30) == 0, _logs(tmp_path)
    assert "Traceback" not in _logs(tmp_path) and PASSWORD not in _logs(tmp_path)
