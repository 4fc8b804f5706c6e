"""The installed ``verifyd`` command, run as an operator runs it, against a live app's database.

The helpers here (``VERIFYD``, ``cli_env``, ``start``, ``finish``, ``run_all``, ``ok``,
``run_main``) are shared by the other ``test_cli_*.py`` modules.
"""

from __future__ import annotations

import getpass
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from support.api import runtime
from verifyd.cli import main
from verifyd.models import AdminKey, AuditEvent, PolicyVersion, table_of
from verifyd.settings import Settings

CLI_SECRET = "cli-test-secret-key-that-is-long-enough-0123456789"
ACTOR = f"cli:{getpass.getuser()}"


def _command() -> list[str]:
    """The console script installed beside this interpreter, else the one on PATH."""
    beside = Path(sys.executable).with_name("verifyd")
    if beside.exists():
        return [str(beside)]
    found = shutil.which("verifyd")
    return [found] if found else [sys.executable, "-m", "verifyd.cli"]


VERIFYD = _command()

Run = Callable[..., subprocess.CompletedProcess[str]]


def cli_env(database_url: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VERIFYD_")}
    env["VERIFYD_SECRET_KEY"] = CLI_SECRET
    if database_url is not None:
        env["VERIFYD_DATABASE_URL"] = database_url
    return env


def start(
    args: Sequence[str],
    env: dict[str, str],
    cwd: Path,
    *,
    stdout: Any = subprocess.PIPE,
    stderr: Any = subprocess.PIPE,
    new_session: bool = False,
) -> subprocess.Popen[str]:
    """``verifyd ARGS`` as a process (stdin closed); ``new_session`` to signal its group."""
    return subprocess.Popen(
        [*VERIFYD, *args],
        env=env,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=stdout,
        stderr=stderr,
        text=True,
        start_new_session=new_session,
    )


def finish(proc: subprocess.Popen[str]) -> subprocess.CompletedProcess[str]:
    out, err = proc.communicate(timeout=60)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def run_all(
    argvs: Sequence[Sequence[str]], env: dict[str, str], cwd: Path
) -> list[subprocess.CompletedProcess[str]]:
    """Run several commands at once (each is mostly interpreter start-up)."""
    procs = [start(args, env, cwd) for args in argvs]
    return [finish(p) for p in procs]


@pytest.fixture
def cli(database_url: str, tmp_path: Path) -> Run:
    """Run ``verifyd …`` on this test's database; asserts nothing about the outcome."""
    env = cli_env(database_url)

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return finish(start(args, env, tmp_path))

    return run


def ok(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert result.returncode == 0, f"{result.args}: {result.returncode}\n{result.stderr}"
    assert "Traceback" not in result.stderr
    return result


def _rows(client: TestClient, model: Any) -> list[Any]:
    table = table_of(model)
    with runtime(client).db.read() as conn:
        return list(conn.execute(select(table)).all())


def test_admin_key_create_list_use_revoke(
    cli: Run,
    make_settings: Callable[..., Settings],
    make_client: Callable[[Settings], TestClient],
) -> None:
    client = make_client(make_settings())

    created = ok(cli("admin-key", "create", "--name", "ops-alice"))
    key = created.stdout.strip()
    assert created.stdout == key + "\n", "stdout must carry the key alone"
    prefix, key_id, secret = key.split("_", 2)
    assert prefix == "vdk" and key_id and len(secret) >= 22
    assert "ops-alice" in created.stderr and key_id in created.stderr
    assert secret not in created.stderr

    (row,) = _rows(client, AdminKey)
    assert (row.id, row.name, row.created_by) == (key_id, "ops-alice", ACTOR)
    stored = " ".join(str(value) for value in row)
    assert secret not in stored and key not in stored
    assert len(row.secret_hash) == 64 and int(row.secret_hash, 16) >= 0

    listed = ok(cli("admin-key", "list")).stdout
    (line,) = [ln for ln in listed.splitlines() if "ops-alice" in ln]
    assert key_id in line and "active" in line and secret not in listed

    auth = {"Authorization": f"Bearer {key}"}
    r = client.get("/v1/admin/policy", headers=auth)
    assert r.status_code == 200, r.text
    assert r.json()["mode"] == "phone"

    revoked = ok(cli("admin-key", "revoke", "ops-alice"))
    assert "ops-alice" in revoked.stderr
    r = client.get("/v1/admin/policy", headers=auth)
    assert r.status_code == 401
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["code"] == "unauthorized"

    listed = ok(cli("admin-key", "list")).stdout
    (line,) = [ln for ln in listed.splitlines() if "ops-alice" in ln]
    assert "revoked" in line

    actions = [(e.actor, e.action, e.target) for e in _rows(client, AuditEvent)]
    assert (ACTOR, "admin_key.create", "key:ops-alice") in actions
    assert (ACTOR, "admin_key.revoke", "key:ops-alice") in actions


def test_policy_show_and_set_reach_a_running_app(
    cli: Run,
    make_settings: Callable[..., Settings],
    make_client: Callable[[Settings], TestClient],
) -> None:
    client = make_client(make_settings(policy_cache_seconds=0))
    auth = {"Authorization": f"Bearer {runtime(client).admin_keys.create('ops', 'cli:test')[0]}"}
    assert client.get("/v1/policy").json()["mode"] == "phone"

    shown = json.loads(ok(cli("policy", "show")).stdout)
    served = client.get("/v1/admin/policy", headers=auth).json()
    # the attacker's bound per destination and the owner's longest wait, by default
    assert (shown["guess_bound"], shown["guess_limit"]["per_day"]) == (
        "1 in 500 per destination per day",
        20,
    )
    assert shown["guess_limit"]["longest_owner_lockout_seconds"] == 14400
    assert (
        shown["send_limit"]["per_hour"],
        shown["send_limit"]["longest_owner_lockout_seconds"],
    ) == (
        11,
        900,
    )
    assert datetime.fromisoformat(shown.pop("changed_at")) == datetime.fromisoformat(
        served.pop("changed_at").replace("Z", "+00:00")
    )
    assert shown == served

    switched = json.loads(ok(cli("policy", "set", "email")).stdout)
    assert (switched["mode"], switched["changed_by"]) == ("email", ACTOR)
    public = client.get("/v1/policy").json()
    assert (public["mode"], public["require"]) == ("email", ["email"])
    assert public["policy_version"] == switched["version"] == served["version"] + 1

    split_args = ("policy", "set", "split", "--weights", "phone=70,email=30", "--experiment")
    split = json.loads(ok(cli(*split_args, "exp_a")).stdout)
    assert split["weights"] == {"phone": 70, "email": 30}
    assert split["experiment"] == "exp_a"
    doc = client.get("/v1/admin/policy", headers=auth).json()
    assert (doc["version"], doc["mode"], doc["weights"]) == (
        split["version"],
        "split",
        split["weights"],
    )
    arms = {client.get("/v1/policy", params={"subject": f"s{i}"}).json()["arm"] for i in range(40)}
    assert arms == {"phone", "email"}

    again = json.loads(ok(cli(*split_args, "exp_a")).stdout)
    assert again["version"] == split["version"], "an identical document creates no version"
    history = client.get("/v1/admin/policy/history", headers=auth).json()["versions"]
    assert [v["version"] for v in history] == [split["version"], switched["version"], 1]
    assert [v["changed_by"] for v in history[:2]] == [ACTOR, ACTOR]
    assert history[1]["changes"]["mode"] == ["phone", "email"]

    changes = [e for e in _rows(client, AuditEvent) if e.action == "policy.change"]
    by_cli = [e for e in changes if e.actor == ACTOR]
    assert len(by_cli) == 2
    email_change = next(e for e in by_cli if e.after["mode"] == "email")
    assert email_change.before["mode"] == "phone"
    assert len(_rows(client, PolicyVersion)) == 3


def run_main(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """``verifyd.cli:main`` in-process (what the console script calls): exit code, out, err."""
    try:
        code = main(list(args))
    except SystemExit as exc:  # argparse's --help and usage errors
        code = exc.code if isinstance(exc.code, int) else 1
    out, err = capsys.readouterr()
    return code, out, err


BAD_INPUT: list[tuple[list[str], str]] = [
    (["policy", "set", "split", "--weights", "phone=x"], "phone=x"),
    (["policy", "set", "split", "--weights", "phone=60.5,email=40"], "60.5"),
    (["policy", "set", "split", "--weights", "phone=-10,email=30"], "non-negative"),
    (["policy", "set", "split", "--weights", "phone=0,email=0"], "zero"),
    (["policy", "set", "split", "--weights", "sms=50,email=50"], "sms"),
    (["policy", "set", "phone", "--code-length", "3"], "code-length"),
    (["policy", "set", "phone", "--code-length", "11"], "code-length"),
    (["policy", "set", "phone", "--weights", "phone=70,email=30"], "split"),
    (["policy", "set", "sms"], "sms"),
    (["admin-key", "revoke", "nobody"], "nobody"),
]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_bad_input_exits_non_zero_with_a_message_and_changes_nothing(
    database_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    make_settings: Callable[..., Settings],
    make_client: Callable[[Settings], TestClient],
) -> None:
    client = make_client(make_settings())
    client.get("/v1/policy")  # version 1 exists
    env = cli_env(database_url)

    # The console script itself: a usage error and a refused document, side by side.
    script_cases = [BAD_INPUT[0], BAD_INPUT[2]]
    results = run_all([args for args, _ in script_cases], env, tmp_path)
    for (args, mention), result in zip(script_cases, results, strict=True):
        assert result.returncode != 0, args
        assert "Traceback" not in result.stderr, (args, result.stderr)
        assert mention in result.stderr and result.stdout == "", (args, result)

    # The rest through the same entry function, without paying interpreter start-up.
    for name in ("VERIFYD_DATABASE_URL", "VERIFYD_SECRET_KEY"):
        monkeypatch.setenv(name, env[name])
    monkeypatch.chdir(tmp_path)
    for args, mention in BAD_INPUT:
        code, out, err = run_main(capsys, *args)
        assert code != 0, args
        assert mention in err and out == "", (args, out, err)
    assert [p.version for p in _rows(client, PolicyVersion)] == [1]

    assert run_main(capsys, "admin-key", "create", "--name", "ops")[0] == 0
    code, out, err = run_main(capsys, "admin-key", "create", "--name", "ops")
    assert code != 0 and out == "" and "ops" in err
    assert len(_rows(client, AdminKey)) == 1


COMMANDS = [
    ["serve"],
    ["migrate"],
    ["policy"],
    ["policy", "show"],
    ["policy", "set"],
    ["admin-key"],
    ["admin-key", "create"],
    ["admin-key", "list"],
    ["admin-key", "revoke"],
]


def test_help_of_every_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    env = cli_env(None)
    top, deep, bare = run_all([["--help"], ["policy", "set", "--help"], []], env, tmp_path)
    for result in (top, deep):
        ok(result)
        assert result.stdout.startswith("usage: verifyd"), result.stdout
    for name in ("serve", "migrate", "policy", "admin-key"):
        assert name in top.stdout
    assert "--weights" in deep.stdout and "--experiment" in deep.stdout
    assert bare.returncode != 0 and "usage: verifyd" in bare.stderr
    assert "Traceback" not in bare.stderr
    assert not list(tmp_path.iterdir()), "--help must not create files"

    for command in COMMANDS:
        code, out, err = run_main(capsys, *command, "--help")
        assert code == 0 and err == "", (command, err)
        assert out.startswith(f"usage: verifyd {' '.join(command)}"), out


def test_a_bad_setting_is_named_without_a_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("VERIFYD_SMS_CODE_LENGTH", "3")
    monkeypatch.setenv("VERIFYD_ENV", "prod")
    code, out, err = run_main(capsys, "policy", "show")
    assert code == 2 and out == ""
    assert "VERIFYD_SMS_CODE_LENGTH" in err and "VERIFYD_ENV" in err
    assert not list(tmp_path.iterdir()), "nothing is created before the settings are valid"
