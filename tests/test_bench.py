"""bench/: the harness keeps working (seeding, the Lua script, the stats call, the arithmetic).

No benchmark runs here: these catch the harness rotting while the service changes
(a seeded database verifyd no longer serves, a flow.lua that no longer parses or
whose samples the report no longer reads, percentiles or targets that drifted).
"""

from __future__ import annotations

import ast
import importlib.util
import inspect
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Connection, Row, func, select

from support.api import admin_headers, runtime, sandbox_messages
from verifyd import expiry, policystore, rebuild
from verifyd import statements as sql
from verifyd.cli import parser as cli_parser
from verifyd.models import AccountLabel, SignupBlock, StatCount, table_of
from verifyd.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import population, report, seed, servers  # noqa: E402

SEEDED = 1_000
sql_stat_counts = table_of(StatCount)


# ---------------------------------------------------------------- seeding


def test_phone_ranges_are_sandbox_numbers_and_never_collide() -> None:
    pattern = re.compile(seed.SANDBOX_PATTERN)
    seeded = {seed.seeded_phone(i) for i in (0, 1, 999_999, seed.MAX_SEEDED - 1)}
    flows = {
        seed.flow_phone(run, thread, n)
        for run in (0, 1, seed.MAX_RUNS - 1)
        for thread in (1, 2, seed.MAX_THREADS - 1)
        for n in (0, 1, seed.FLOWS_PER_THREAD - 1)
    }
    assert len(flows) == 27 and len(seeded) == 4  # every (run, thread, n) its own number
    assert all(pattern.match(p) for p in seeded | flows)
    assert not seeded & flows
    assert all(p.startswith(seed.flow_prefix(int(p[5:7]))) for p in flows)
    for bad in (lambda: seed.seeded_phone(-1), lambda: seed.flow_prefix(seed.MAX_RUNS)):
        with pytest.raises(ValueError):
            bad()
    with pytest.raises(ValueError):
        seed.flow_phone(0, 1, seed.FLOWS_PER_THREAD)


def _active_phones(conn: Connection) -> list[Row[Any]]:
    """Active seeded accounts of the phone arm, oldest first, with their verification."""
    a, v = sql.accounts.c, sql.verifications.c
    return list(
        conn.execute(
            select(a.id, a.phone, a.policy_version, v.id.label("vid"))
            .join(sql.verifications, v.account_id == a.id)
            .where(a.status == "active", a.arm == "phone")
            .order_by(a.created_at)
        )
    )


def test_a_seeded_database_is_served_and_its_phones_are_taken(
    database_url: str,
    make_settings: Callable[..., Settings],
    make_client: Callable[[Settings], TestClient],
) -> None:
    seeded = seed.seed(database_url, SEEDED)
    assert seeded.rows["accounts"] == seeded.rows["verifications"] == SEEDED
    client = make_client(
        make_settings(sandbox_fixed_code="1234", sandbox_patterns=[seed.SANDBOX_PATTERN])
    )
    db = runtime(client).db
    a = sql.accounts.c
    with db.read() as conn:
        assert conn.execute(select(func.count()).select_from(sql.accounts)).scalar() == SEEDED
        active = conn.execute(select(func.count()).where(a.status == "active")).scalar()
        identities = conn.execute(select(func.count()).select_from(sql.identities)).scalar()
        assert identities == active == seeded.rows["identities"] and 0 < active < SEEDED
        phones = _active_phones(conn)
    for row in (phones[0], phones[-1]):  # each reads, through the API, as a flow leaves it
        account = client.get(f"/v1/accounts/{row.id}").json()
        assert account["status"] == "active" and account["verified"]["phone"] is True
        assert client.get(f"/v1/verifications/{row.vid}").json()["status"] == "approved"
    assert (phones[0].policy_version, phones[-1].policy_version) == (1, 3)

    # A seeded phone is taken: 201 and a pending verification like any signup, nothing
    # sent, and the sandbox code does not approve it.
    taken = phones[len(phones) // 2].phone
    r = client.post("/v1/accounts", json={"phone": taken})
    assert r.status_code == 201, r.text
    [ver] = r.json()["verifications"]
    assert ver["status"] == "pending"
    assert sandbox_messages(client, taken) == []
    check = client.post(f"/v1/verifications/{ver['id']}/check", json={"code": "1234"})
    assert check.status_code == 422 and check.json()["code"] == "code_incorrect"
    assert client.get(r.headers["location"]).json()["status"] == "pending"

    # A flow's number next to the seeded ones is served as the bench drives it: under the
    # current version, unflagged (no seeded refusal makes it look blocked before).
    fresh = seed.flow_phone(0, 1, 0)
    r = client.post("/v1/accounts", json={"phone": fresh})
    assert r.status_code == 201, r.text
    assert r.json()["account"]["policy_version"] == population.CURRENT.number
    assert len(sandbox_messages(client, fresh)) == 1
    ver_id = r.json()["verifications"][0]["id"]
    check = client.post(f"/v1/verifications/{ver_id}/check", json={"code": "1234"})
    assert check.status_code == 200 and check.json()["account"]["status"] == "active"
    with db.read() as conn:
        flags = conn.execute(select(a.flags).where(a.phone == fresh)).scalar()
        assert flags == []
        # The seeded rollup and the flows' counters add up to what the rows say, exactly.
        counts: dict[tuple[int, str, str, int], int] = {}
        for r in conn.execute(select(sql_stat_counts)):  # PostgreSQL's shards summed
            key = (r.policy_version, r.arm, r.name, r.hour)
            counts[key] = counts.get(key, 0) + r.value
        # A signup writes some counters with zero (rollup.write), which rebuilding omits.
        assert {k: n for k, n in counts.items() if n} == rebuild.compute(conn)


def test_the_seeded_history_is_what_the_stats_summarise(
    database_url: str,
    make_settings: Callable[..., Settings],
    make_client: Callable[[Settings], TestClient],
) -> None:
    end = datetime.now(UTC)
    seeded = seed.seed(database_url, SEEDED, end=end)
    settings = make_settings(sandbox_fixed_code="1234", sandbox_patterns=[seed.SANDBOX_PATTERN])
    # The current version is the one an empty database starts with: the flows do the same.
    assert population.CURRENT.policy.knobs() == policystore.defaults(settings).knobs()
    client = make_client(settings)
    policy = client.get("/v1/policy").json()
    assert (policy["policy_version"], policy["mode"]) == (population.CURRENT.number, "phone")
    db = runtime(client).db
    with db.read() as conn:
        assert conn.execute(select(func.count()).select_from(sql_stat_counts)).scalar() == (
            seeded.counters
        )
        # Nothing for the server to do: no message queued, no pending code run out of time.
        m = sql.messages.c
        assert not conn.execute(select(m.id).where(m.status == "queued")).first()
        assert expiry.sweep(conn, end) == 0
        blocks = table_of(SignupBlock).c
        assert not conn.execute(select(blocks.id).where(blocks.ip == "127.0.0.1")).first()
        labels = conn.execute(select(func.count()).select_from(table_of(AccountLabel))).scalar()
        assert labels == seeded.rows["account_labels"] > 0

    answer = client.get("/v1/admin/stats", headers=admin_headers(client)).json()
    by_version = {v["policy_version"]: v for v in answer["versions"]}
    assert list(by_version) == [3, 2, 1]
    assert [by_version[n]["mode"] for n in (3, 2, 1)] == ["phone", "split", "phone"]
    arms = [arm for v in answer["versions"] for arm in v["arms"]]
    assert sum(arm["signups"] for arm in arms) == SEEDED
    assert sum(arm["verifications"]["created"] for arm in arms) == SEEDED
    split = {arm["arm"]: arm for arm in by_version[2]["arms"]}
    assert set(split) == {"phone", "email"} and "comparison" in by_version[2]
    for arm in split.values():  # exposed subjects, more of them than signed up
        assert arm["exposures"] > arm["exposed_signups"] == arm["signups"] > 0
    assert split["email"]["link_views"]["views"] > 0
    for figure in (
        lambda arm: arm["conversion"]["count"],
        lambda arm: arm["verifications"]["expired"],
        lambda arm: arm["suspect"]["count"],
        lambda arm: arm["labels"]["fake"],
        lambda arm: arm["messages"]["failed"],
        lambda arm: arm["messages"]["resends"],
        lambda arm: arm["time_to_verify"]["count"],
    ):
        assert sum(figure(arm) for arm in arms) > 0
    assert sum(arm["verifications"]["locked"] for arm in arms if arm["arm"] == "phone") > 0
    countries = {
        basis.split(".")[2]
        for v in (1, 3)
        for basis, _ in _sent(db, v)  # what the outbox rows were priced by
    }
    assert {"US", "GB"} <= countries


def _sent(db: Any, version: int) -> list[tuple[str, int]]:
    c = sql_stat_counts.c
    with db.read() as conn:
        rows = conn.execute(
            select(c.name, func.sum(c.value))
            .where(c.policy_version == version, c.name.like("sent.sms.%"))
            .group_by(c.name)
        )
        return [(name, int(n)) for name, n in rows]


# ---------------------------------------------------------------- flow.lua


LUA = BENCH / "flow.lua"


def _lua_code() -> str:
    """flow.lua without comments and string contents (what the block check reads)."""
    text = re.sub(r"--\[(=*)\[.*?\]\1\]", " ", LUA.read_text(), flags=re.DOTALL)
    text = re.sub(r"\[(=*)\[.*?\]\1\]", '""', text, flags=re.DOTALL)
    text = re.sub(r"\"(?:\\.|[^\"\\\n])*\"|'(?:\\.|[^'\\\n])*'", '""', text)
    return re.sub(r"--[^\n]*", " ", text)


def test_flow_lua_is_whole_and_writes_what_the_report_reads() -> None:
    """Always runs (no Lua needed): blocks balance, wrk's hooks exist, formats match."""
    code = _lua_code()
    words = re.findall(r"[A-Za-z_]\w*", code)
    opened = sum(words.count(w) for w in ("function", "if", "do", "repeat"))
    assert opened == words.count("end") + words.count("until") > 0
    assert code.count("(") == code.count(")") and code.count("{") == code.count("}")
    for hook in ("setup", "init", "request", "response", "done"):
        assert re.search(rf"^function {hook}\(", code, re.MULTILINE), hook
    formats = re.findall(r'out:write\(string\.format\("([^"]*)\\n"', LUA.read_text())
    assert {f.split()[0] for f in formats} == {"R", "S", "F"}
    samples = report.Samples()
    for f in formats:  # each line flow.lua writes is one the report reads
        samples.add_line(re.sub(r"%d", "200", f), "noop")
    done = re.search(r'"(RESULT [^"]*)\\n"', LUA.read_text())
    assert done is not None
    keys = report.parse_wrk(re.sub(r"%d", "1", done.group(1)))
    assert {"duration_us", "requests", *report.SOCKET_ERRORS} <= set(keys)


def need(tool: str) -> str:
    """The tool's path; a failure, never a skip, without it (make test installs it)."""
    path = shutil.which(tool)
    if path is None:
        pytest.fail(f"{tool} is not installed: scripts/test-prerequisites installs it")
    return path


def test_flow_lua_compiles_with_luajit() -> None:
    done = subprocess.run([need("luajit"), "-bl", str(LUA)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


class _Stub(BaseHTTPRequestHandler):
    """verifyd's two flow answers (and the reference's), recording each phone signed up."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are two writes
    phones: list[str] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.path == "/v1/accounts":
            self.phones.append(json.loads(body)["phone"])
            status, answer = 201, {"account": {"id": "acc_x"}, "verifications": [{"id": "ver_x1"}]}
        else:
            status, answer = 200, {"status": "approved"}
        data = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        pass


class _StubServer(ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):  # wrk hanging up at the end
            super().handle_error(request, client_address)  # type: ignore[arg-type]


@pytest.fixture
def stub() -> Iterator[str]:
    _Stub.phones = []
    server = _StubServer(("127.0.0.1", 0), _Stub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join()


def test_flow_lua_under_wrk(stub: str, tmp_path: Path) -> None:
    need("wrk")
    for mode in ("flow", "noop", "insert-def"):
        out = tmp_path / mode
        out.mkdir()
        cmd = ["wrk", "-t2", "-c2", "-d1s", "-s", str(LUA), stub, "--", mode, "1234"]
        done = subprocess.run(
            [*cmd, seed.flow_prefix(7), str(out)], capture_output=True, text=True, timeout=30
        )
        assert done.returncode == 0 and ".lua" not in done.stderr, done.stderr
        totals = report.parse_wrk(done.stdout)
        samples = report.read_samples(out, mode)
        assert not samples.errors and totals["requests"] > 0
        if mode != "flow":
            assert len(samples.latency_us["request"]) > 0
            continue
        assert samples.flows > 0
        assert set(samples.latency_us) == {"signup", "check", "flow"}
        signups, whole = samples.latency_us["signup"], samples.latency_us["flow"]
        assert all(f >= s for s, f in zip(signups, whole, strict=True))
        # every signup its own number: thread t's flows n, n + 1, ... of run 7
        phones = _Stub.phones
        assert len(set(phones)) == len(phones) >= samples.flows
        for thread in (1, 2):
            mine = sorted(p for p in phones if p.startswith(seed.flow_prefix(7) + f"{thread:03d}"))
            first = int(mine[0][-6:])
            assert first <= 1  # wrk may build one request per thread that it never sends
            assert mine == [seed.flow_phone(7, thread, first + k) for k in range(len(mine))]


# ---------------------------------------------------------------- reference app, servers


@pytest.fixture
def reference(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    monkeypatch.setenv("BENCH_REFERENCE_DB", str(tmp_path / "reference.db"))
    spec = importlib.util.spec_from_file_location(
        "bench_reference_under_test", BENCH / "reference.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    yield module
    module.conn.close()
    module.def_conn.close()


def test_reference_app_answers_and_each_insert_is_committed(
    reference: ModuleType, tmp_path: Path
) -> None:
    assert reference.conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    assert reference.conn.execute("PRAGMA synchronous").fetchone() == (2,)  # FULL
    with TestClient(reference.app) as client:
        noop = client.post("/noop")
        assert noop.status_code == 200 and isinstance(noop.json(), dict)
        for _ in range(3):
            assert client.post("/insert").status_code == 200
        other = sqlite3.connect(tmp_path / "reference.db")  # another reader sees them
        try:
            assert other.execute("SELECT count(*) FROM hits").fetchone() == (3,)
        finally:
            other.close()


def test_reference_def_floor_is_a_sync_endpoint_and_commits_each_insert(
    reference: ModuleType, tmp_path: Path
) -> None:
    # a plain def: FastAPI runs it in its thread pool, as a sync FastAPI app's endpoint
    assert not inspect.iscoroutinefunction(reference.insert_def)
    def_conn = reference.def_conn
    assert def_conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    assert def_conn.execute("PRAGMA synchronous").fetchone() == (2,)  # FULL
    assert def_conn.execute("PRAGMA busy_timeout").fetchone() == (10000,)
    with TestClient(reference.app) as client:
        ids = []
        for _ in range(3):
            answer = client.post("/insert-def")
            assert answer.status_code == 200 and answer.json()["ok"] is True
            ids.append(answer.json()["id"])
        assert client.post("/insert").status_code == 200  # both floors, one table
        other = sqlite3.connect(tmp_path / "reference.db")  # committed: another reader sees them
        try:
            rows = other.execute("SELECT id FROM hits ORDER BY id").fetchall()
        finally:
            other.close()
    assert len(set(ids)) == 3 and [r[0] for r in rows][:3] == ids and len(rows) == 4


def test_verifyd_runs_without_its_access_log_and_no_shell_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from bench import environment

    monkeypatch.setenv("VERIFYD_SANDBOX_FIXED_CODE", "0000")  # a developer's shell
    env = environment.verifyd("sqlite:///bench.db", 8123)
    assert env["VERIFYD_ACCESS_LOG"] == "false" and env["VERIFYD_SANDBOX_FIXED_CODE"] == "1234"
    for key in [k for k in os.environ if k.startswith("VERIFYD_")]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        if key.startswith("VERIFYD_"):
            monkeypatch.setenv(key, value)
    settings = Settings()
    assert settings.access_log is False and settings.port == 8123
    ref = environment.reference(Path("r.db"), 8124)
    assert ref["BENCH_REFERENCE_PORT"] == "8124" and not any(k.startswith("VERIFYD_") for k in ref)


def test_reference_runs_with_the_flags_of_verifyd_serve(reference: ModuleType) -> None:
    source = (ROOT / "src" / "verifyd" / "cli" / "serve.py").read_text()
    [call] = [
        node
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Call) and ast.unparse(node.func) == "uvicorn.run"
    ]
    literal = {
        k.arg: k.value.value
        for k in call.keywords
        if isinstance(k.value, ast.Constant) and k.arg not in ("factory", "host", "port")
    }
    flags = dict(reference.UVICORN)
    assert flags.pop("workers") == cli_parser().parse_args(["serve"]).workers
    assert literal == flags  # a loop, http or log flag added to serve must be added here


def test_the_stats_call_is_measured_on_a_served_seeded_database(tmp_path: Path) -> None:
    from bench import environment, stats

    url = f"sqlite:///{tmp_path / 'seeded.db'}"
    seed.migrate(url)
    seeded = seed.seed(url, 200)
    port = servers.free_port()
    env = environment.verifyd(url, port)
    verifyd = Path(sys.executable).parent / "verifyd"
    cpu = min(os.sched_getaffinity(0))
    probe = ("GET", "/readyz")
    argv = [str(verifyd), "serve"]
    with servers.Server(
        "verifyd", argv, cpu=cpu, env=env, cwd=tmp_path, port=port, probe=probe
    ) as s:
        key = stats.admin_key(verifyd, env, tmp_path)
        run = stats.measure(s.url, key, database_url=url, accounts=200, calls=2)
        with pytest.raises(servers.HarnessError, match="401"):
            stats.measure(s.url, key + "x", database_url=url, accounts=200, calls=1)
        with pytest.raises(
            servers.HarnessError, match="200 signups of 201 seeded"
        ):  # an answer short of them
            stats.measure(s.url, key, database_url=url, accounts=201, calls=1)
        with pytest.raises(servers.HarnessError, match="admin-key create failed"):
            stats.admin_key(verifyd, env, tmp_path)  # the name is taken
    assert (run.accounts, run.signups, run.versions) == (200, 200, [3, 2, 1])
    assert run.rollup_rows == seeded.counters  # neither the key nor a stats call counts
    assert {q: len(ms) for q, ms in run.latency_ms.items()} == {q: 2 for q in stats.QUERIES}
    text = "\n".join(stats.lines(run))
    assert f"{seeded.counters:,} rollup rows" in text and key not in text
    verdicts = stats.targets(run)  # pass or fail: this machine's speed is not under test
    assert len(verdicts) == len(stats.QUERIES)
    assert all("at 200 accounts" in t and "<= 1000 ms" in t for t, _ in verdicts)
    json.dumps(run.as_dict())  # what --json writes


def test_tree_cpu_counts_reaped_children() -> None:
    before = servers.tree_cpu_seconds(os.getpid())
    spin = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.3: pass"
    subprocess.run([sys.executable, "-c", spin], check=True)
    assert servers.tree_cpu_seconds(os.getpid()) - before >= 0.25


def test_run_reads_its_options() -> None:
    from bench import run

    args = run.parse_args(["--concurrency", "16, 64", "--seed", "0", "--database", "postgresql"])
    assert (args.concurrency, args.seed, args.database) == ([16, 64], 0, "postgresql")
    defaults = run.parse_args([])
    assert (defaults.duration, defaults.warmup, defaults.seed) == (15, 3, 1_000_000)
    assert defaults.stats_calls == 10 and run.parse_args(["--stats-calls", "0"]).stats_calls == 0
    assert defaults.workers == 1 and run.parse_args(["--workers", "2"]).workers == 2
    for bad in (
        ["--workers", "0"],
        ["--concurrency", "0"],
        ["--concurrency", ""],
        ["--duration", "0"],
        ["--stats-calls", "-1"],
    ):
        with pytest.raises(SystemExit):
            run.parse_args(bad)
