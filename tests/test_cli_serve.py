"""``verifyd serve`` checks everything before it announces itself, and then really serves."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from support.net import free_port, get
from test_cli import VERIFYD, cli_env

PRODUCTION_SECRET = "167451657f21970ea8c56d05f2b04074de0ce9a9da45610b65f14c156f830e98"
#: The start-up line of ``verifyd serve`` (not uvicorn's own "Uvicorn running on").
BANNER = re.compile(r"^verifyd (development|production) on http://", re.MULTILINE)


@dataclass
class Server:
    """A ``verifyd serve`` process and where its output goes."""

    proc: subprocess.Popen[bytes]
    base_url: str
    log: Path

    def output(self) -> str:
        """Everything it printed so far, stdout and stderr together."""
        return self.log.read_text()


@contextlib.contextmanager
def serving(
    env: dict[str, str], cwd: Path, *args: str, port: int | None = None
) -> Iterator[Server]:
    """Run ``verifyd serve`` on 127.0.0.1 and ``port`` (else a free one) until /healthz answers.

    The process gets its own process group, killed whole at the end.
    """
    port = port or free_port()
    log = cwd / f"serve-{port}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [*VERIFYD, "serve", "--host", "127.0.0.1", "--port", str(port), *args],
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = Server(proc, f"http://127.0.0.1:{port}", log)
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                pytest.fail(f"verifyd serve exited with {proc.returncode}:\n{server.output()}")
            with contextlib.suppress(OSError):
                if get(server.base_url + "/healthz")[0] == 200:
                    break
            if time.monotonic() > deadline:
                pytest.fail(f"no /healthz answer within 60 s:\n{server.output()}")
            time.sleep(0.1)
        yield server
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:  # pragma: no cover - a hung shutdown
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def _production(database_url: str, **extra: str) -> dict[str, str]:
    env = cli_env(database_url)
    env.update(
        VERIFYD_ENV="production",
        VERIFYD_SECRET_KEY=PRODUCTION_SECRET,
        VERIFYD_PUBLIC_BASE_URL="https://verify.example",
        **extra,
    )
    return env


def test_a_good_configuration_prints_the_banner_and_serves(tmp_path: Path) -> None:
    env = cli_env(f"sqlite:///{tmp_path}/verifyd.db")
    with serving(env, tmp_path) as server:
        assert get(server.base_url + "/readyz")[0] == 200  # development migrated first
        (banner,) = [ln for ln in server.output().splitlines() if BANNER.match(ln)]
        assert banner.startswith(f"verifyd development on {server.base_url} (sandbox on")
        assert server.proc.poll() is None
    assert server.proc.returncode in (0, -signal.SIGTERM)
    assert "Traceback" not in server.output()


def test_a_bad_configuration_or_address_fails_before_the_banner(tmp_path: Path) -> None:
    fresh = tmp_path / "fresh.db"
    # A migrated database: production would otherwise stop at "behind its migrations".
    migrated = f"sqlite:///{tmp_path}/migrated.db"
    subprocess.run([*VERIFYD, "migrate"], env=cli_env(migrated), cwd=tmp_path, check=True)
    behind = f"sqlite:///{tmp_path}/behind.db"
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    busy_port = str(busy.getsockname()[1])
    in_use = f"cannot listen on 127.0.0.1:{busy_port}: the address is already in use"
    port = str(free_port())
    unknown = {"VERIFYD_SMS_PROVIDER": "mailjet", "VERIFYD_EMAIL_PROVIDER": "mailjet"}
    cases: list[tuple[str, dict[str, str], list[str], list[str]]] = [
        # (what, environment, arguments, each line stderr must have, in order)
        (
            "production, as a new user typed it",
            _production(f"sqlite:///{fresh}", VERIFYD_SMS_PROVIDER="smtp"),
            ["--port", port],
            ["console provider"],  # the email provider is still the default, console
        ),
        (
            "production, both providers unknown",
            _production(migrated, **unknown),
            ["--port", port],
            ["no provider named 'mailjet'"],
        ),
        (
            "production, every problem at once",
            _production(behind, **unknown),
            ["--host", "127.0.0.1", "--port", busy_port],
            ["no provider named 'mailjet'", in_use, "behind its migrations; run `verifyd migrate`"],
        ),
        (
            "development, an unknown provider",
            {**cli_env(f"sqlite:///{fresh}"), "VERIFYD_SMS_PROVIDER": "mailjet"},
            ["--port", port],
            ["no provider named 'mailjet'"],
        ),
        (
            "development, the port is taken",
            cli_env(f"sqlite:///{fresh}"),
            ["--host", "127.0.0.1", "--port", busy_port],
            [in_use],
        ),
        (
            "development, an address of no interface here (TEST-NET-1)",
            cli_env(f"sqlite:///{fresh}"),
            ["--host", "192.0.2.1", "--port", port],
            ["cannot listen on 192.0.2.1:"],
        ),
    ]
    try:
        procs = [
            subprocess.Popen(
                [*VERIFYD, "serve", *args],
                env=env,
                cwd=tmp_path,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                start_new_session=True,
            )
            for _, env, args, _ in cases
        ]
        results = []
        for proc in procs:
            try:
                results.append((*proc.communicate(timeout=60), proc.returncode))
            finally:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)  # a server that did start
    finally:
        busy.close()
    for (what, _, _, problems), (out, err, code) in zip(cases, results, strict=True):
        assert code == 2, (what, code, err)
        assert not BANNER.search(out + err), f"{what}: announced a server that never ran:\n{err}"
        assert "Traceback" not in err and out == "", (what, out, err)
        lines = err.splitlines()
        assert len(lines) == len(problems), f"{what}: one line per problem:\n{err}"
        for line, problem in zip(lines, problems, strict=True):
            assert line.startswith("verifyd: ") and problem in line, (what, problem, err)
    assert not fresh.exists(), "nothing is migrated for a server that cannot start"
