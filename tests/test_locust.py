"""loadtest/locustfile.py, run headless as a load-tester runs it, against a real ``verifyd serve``.

Locust patches the standard library with gevent when it is imported, so it only ever runs
here as a subprocess (the ``locust`` command installed beside this interpreter), and what
it did is read from its CSV files: requests and failures per named request.
"""

from __future__ import annotations

import base64
import csv
import json
import os
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from support.net import get
from test_cli import VERIFYD, cli_env
from test_cli_serve import Server, serving

LOCUSTFILE = Path(__file__).resolve().parent.parent / "loadtest" / "locustfile.py"
LOCUST = Path(sys.executable).with_name("locust")
CODE = "1234"

#: Every request the file names, by the user class that makes it first.
NAMED = {
    ("POST", "/v1/accounts"),  # SmsFlowUser, EmailFlowUser, MixUser
    ("POST", "/v1/verifications/{id}/check"),  # SmsFlowUser, MixUser
    ("GET", "/v1/sandbox/messages"),  # EmailFlowUser, MixUser
    ("GET", "/v1/email/verify"),  # EmailFlowUser: the confirm page
    ("POST", "/v1/email/verify"),  # EmailFlowUser: the button
    ("POST", "/v1/verifications/{id}/resend"),  # MixUser
    ("GET", "/v1/admin/stats"),  # StatsReader
    ("POST", "/v2/Services"),  # TwilioVerifyUser: the service, once per process
    ("POST", "/v2/Services/{sid}/Verifications"),  # TwilioVerifyUser
    ("POST", "/v2/Services/{sid}/VerificationCheck"),  # TwilioVerifyUser
}
TWILIO = {name for name in NAMED if name[1].startswith("/v2/")}


@dataclass
class Target:
    """The server under load, an admin key and a verify-scoped credential for it."""

    server: Server
    admin_key: str
    #: ``TWILIO_ACCOUNT_SID`` and ``TWILIO_AUTH_TOKEN``, as the CLI prints them.
    twilio: dict[str, str]


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    """``verifyd serve`` configured as the locustfile's docstring says, on a fresh SQLite file.

    The policy is left at its default (``phone``): the file switches it with the admin key.
    """
    if not LOCUST.exists():
        pytest.fail(f"no {LOCUST}: install the dev extra (pip install -e '.[dev]')")
    tmp = tmp_path_factory.mktemp("locust")
    env = cli_env(f"sqlite:///{tmp}/loadtest.db")
    env.update(
        VERIFYD_SANDBOX="1",
        VERIFYD_SANDBOX_FIXED_CODE=CODE,
        VERIFYD_SANDBOX_PATTERNS=r"^\+9992\d{11}$",
        VERIFYD_SANDBOX_LIMIT_MULTIPLIER="1000000",
        VERIFYD_SMS_RESEND_COOLDOWN_SECONDS="0",
        VERIFYD_ACCESS_LOG="false",
    )
    with serving(env, tmp) as server:

        def key(name: str, *scope: str) -> str:
            return subprocess.run(
                [*VERIFYD, "admin-key", "create", "--name", name, *scope],
                env=env,
                cwd=tmp,
                capture_output=True,
                text=True,
                check=True,
            ).stdout

        admin = key("loadtest").strip()
        # Two shell-sourceable lines, TWILIO_ACCOUNT_SID=AC… and TWILIO_AUTH_TOKEN=….
        credential = dict(
            line.split("=", 1) for line in key("loadtest-verify", "--scope", "verify").splitlines()
        )
        assert set(credential) == {"TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN"}, credential
        yield Target(server, admin, credential)


@dataclass
class Run:
    """What one headless Locust run did."""

    returncode: int
    output: str
    requests: dict[tuple[str, str], int]
    failures: dict[tuple[str, str], int]
    errors: str


def locust(target: Target, tmp_path: Path, seconds: int, **env_extra: str) -> Run:
    """Run the locustfile headless with 8 users against ``target``; read its CSV files."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VERIFYD_", "TWILIO_"))}
    env.update(env_extra)
    prefix = tmp_path / "run"
    # cwd: a directory of its own, so no locust.conf or pyproject.toml is read.
    proc = subprocess.run(
        [
            str(LOCUST),
            "-f",
            str(LOCUSTFILE),
            "--headless",
            "-u",
            "8",
            "-r",
            "8",
            "-t",
            f"{seconds}s",
            "--host",
            target.server.base_url,
            "--csv",
            str(prefix),
            "--only-summary",
            "--exit-code-on-error",
            "1",
        ],
        env=env,
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=seconds + 60,
    )
    requests: dict[tuple[str, str], int] = {}
    failures: dict[tuple[str, str], int] = {}
    with open(f"{prefix}_stats.csv", newline="") as f:
        for row in csv.DictReader(f):
            key = (row["Type"], row["Name"])
            requests[key] = int(row["Request Count"])
            failures[key] = int(row["Failure Count"])
    errors = "".join(Path(f"{prefix}_{k}.csv").read_text() for k in ("failures", "exceptions"))
    return Run(proc.returncode, proc.stdout + proc.stderr, requests, failures, errors)


def test_thirty_seconds_of_every_user_class_without_a_failure(
    target: Target, tmp_path: Path
) -> None:
    run = locust(
        target,
        tmp_path,
        30,
        VERIFYD_LOADTEST_FIXED_CODE=CODE,
        VERIFYD_LOADTEST_ADMIN_KEY=target.admin_key,
        **target.twilio,
    )
    report = f"exit {run.returncode}\n{run.output}\n{run.errors}"
    assert run.returncode == 0, report
    assert "Traceback" not in run.output, report
    # Every class ran, and each of its requests was made: a server that was down (or a
    # class Locust never spawned) leaves a name at 0 even when nothing failed.
    for name in sorted(NAMED):
        assert run.requests.get(name, 0) > 0, f"{name} never requested\n{report}"
    assert set(run.requests) == NAMED | {("", "Aggregated")}, report
    assert sum(run.failures.values()) == 0, report
    assert run.requests[("", "Aggregated")] >= 100, report
    # The Twilio-shaped users made one service for the run (the first one to start made
    # it, the others waited), then verified through it.
    assert run.requests[("POST", "/v2/Services")] == 1, report
    listed = _get(target, "/v2/Services", basic=target.twilio)["services"]
    assert [s["friendly_name"] for s in listed] == ["verifyd load test"], listed
    assert listed[0]["code_length"] == len(CODE)
    # The file switched the default policy (phone) to one that takes both flows.
    status, body = get(target.server.base_url + "/v1/policy")
    assert (status, json.loads(body)["mode"]) == (200, "either")
    # Nothing reached a phone or a mailbox: the sandbox delivers in the request and
    # leaves the outbox alone, so any row there would be a message queued for a real
    # provider, or a shadow (a destination signed up twice, which sends nothing).
    messages = _get(target, "/v1/admin/messages?status=all&limit=200")["messages"]
    assert messages == []
    assert "Traceback" not in target.server.output()


def _get(target: Target, path: str, basic: dict[str, str] | None = None) -> Any:
    """A JSON GET with the admin key (or, given ``basic``, the verify credential)."""
    if basic is None:
        authorization = f"Bearer {target.admin_key}"
    else:
        pair = f"{basic['TWILIO_ACCOUNT_SID']}:{basic['TWILIO_AUTH_TOKEN']}"
        authorization = "Basic " + base64.b64encode(pair.encode()).decode()
    request = urllib.request.Request(
        target.server.base_url + path, headers={"authorization": authorization}
    )
    with urllib.request.urlopen(request, timeout=10) as resp:
        return json.loads(resp.read())


def test_a_refused_flow_is_a_locust_failure_and_fails_the_run(
    target: Target, tmp_path: Path
) -> None:
    # A fixed code the server does not use: every SMS flow's check answers 422
    # code_incorrect, which the file does not expect there.
    run = locust(target, tmp_path, 3, VERIFYD_LOADTEST_FIXED_CODE="9876")
    report = f"exit {run.returncode}\n{run.output}\n{run.errors}"
    assert run.returncode == 1, report
    assert run.failures[("POST", "/v1/verifications/{id}/check")] > 0, report
    assert "answered 422 code_incorrect" in run.errors, report
    # Without an admin key there is no stats reader, without a credential no Twilio user.
    assert ("GET", "/v1/admin/stats") not in run.requests, report
    assert not TWILIO & set(run.requests), report
