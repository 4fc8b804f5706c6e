"""A live verifyd for the ``twilio`` SDK: its own URL as public base URL, a CLI credential."""

from __future__ import annotations

import itertools
import os
import re
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from twilio.rest import Client

from support.liveserver import LiveServer, bind_loopback
from support.postgres import PostgresServer
from test_cli import VERIFYD, cli_env
from verifyd.app import create_app
from verifyd.settings import Settings

SECRET = "sdk-test-secret-key-that-is-long-enough-0123456789"
SID = {prefix: re.compile(rf"^{prefix}[0-9a-f]{{32}}$") for prefix in ("VA", "VE", "AC")}
PRINTED = re.compile(r"TWILIO_ACCOUNT_SID=(AC[0-9a-f]{32})\nTWILIO_AUTH_TOKEN=([0-9a-f]{32})\n")

_numbers = itertools.count(10)


def sandbox_phone() -> str:
    """A fresh sandbox number (+1 202 555 01xx), so no test shares another's limits."""
    n = next(_numbers)
    assert n < 100, "the module ran out of sandbox numbers"
    return f"+120255501{n:02d}"


@dataclass
class Live:
    """One backend's verifyd, and the verify credential the CLI printed for it."""

    url: str
    database_url: str
    printed: str
    account_sid: str
    auth_token: str
    inbox: httpx.Client

    def messages(self, to: str) -> list[dict[str, Any]]:
        """What the sandbox delivered to ``to``, newest first (the one non-SDK call)."""
        r = self.inbox.get("/v1/sandbox/messages", params={"to": to})
        assert r.status_code == 200, r.text
        messages: list[dict[str, Any]] = r.json()["messages"]
        return messages

    def code(self, to: str) -> str:
        """The code of the newest message to ``to``."""
        code: str = self.messages(to)[0]["code"]
        return code


def pointed(client: Client, url: str) -> Client:
    """The only lines an application changes: verifyd's URL, no edge/region rewrite."""
    client.edge = client.region = None
    client.verify.base_url = url
    return client


def create_key(database_url: str, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``verifyd admin-key create ARGS`` as an operator runs it."""
    proc = subprocess.run(
        [*VERIFYD, "admin-key", "create", *args],
        env=cli_env(database_url),
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return proc


def credential(database_url: str, cwd: Path, name: str) -> tuple[str, str, str]:
    """A verify credential from the CLI: (its stdout, account SID, auth token)."""
    out = create_key(database_url, cwd, "--name", name, "--scope", "verify").stdout
    found = PRINTED.fullmatch(out)
    assert found is not None, f"stdout is exactly the two TWILIO_* lines: {out!r}"
    return out, found[1], found[2]


def settings(database_url: str, base_url: str, **overrides: Any) -> Settings:
    """Test settings (sandbox on) for a server at ``base_url``; keywords override."""
    with pytest.MonkeyPatch.context() as env:  # no VERIFYD_* of the shell leaks in
        for name in [n for n in os.environ if n.startswith("VERIFYD_")]:
            env.delenv(name)
        values: dict[str, Any] = {
            "database_url": database_url,
            "secret_key": SECRET,
            "sandbox": True,
            "public_base_url": base_url,
            "dispatch_interval_seconds": 0.05,
            "policy_cache_seconds": 0,
            **overrides,
        }
        return Settings(**values)


def serve(database_url: str, **overrides: Any) -> LiveServer:
    """A started verifyd whose ``public_base_url`` is its own address."""
    sock = bind_loopback()
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    server = LiveServer(create_app(settings(database_url, url, **overrides)), sock=sock)
    server.start()
    assert server.base_url == url
    return server


def database(request: pytest.FixtureRequest, backend: str, tmp: Path) -> Iterator[str]:
    """A migrated database of ``backend`` (copied from the session's template) until closed."""
    if backend == "sqlite":
        path = tmp / "verifyd.db"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        yield f"sqlite:///{path}"
        return
    pg: PostgresServer = request.getfixturevalue("pg_server")
    name = f"sdk_{uuid.uuid4().hex[:12]}"
    yield pg.create_database(name, template=request.getfixturevalue("pg_template"))
    pg.drop_database(name)
