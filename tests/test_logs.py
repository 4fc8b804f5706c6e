"""Logs: text as before or one JSON object a line, request ids echoed, and no secret logged."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import httpx
import pytest
from fastapi.testclient import TestClient

from support.net import free_port
from test_cli import VERIFYD, cli_env
from verifyd.api.requestid import RequestId
from verifyd.app import create_app
from verifyd.logs import REQUEST_ID, TEXT_FORMAT, JsonFormatter, RequestIdFilter
from verifyd.settings import Settings

#: What ``RequestId`` accepts from a caller, and so what every echoed id looks like.
SANE_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}\Z")
TS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z\Z")
#: The first line of each message the console provider prints (``providers/console.py``).
CONSOLE_HEADER = re.compile(r"^\[verifyd console (sms|email)\] to ", re.MULTILINE)


@pytest.fixture
def database_url(sqlite_template: Path, tmp_path: Path) -> str:
    """SQLite only: nothing here depends on the database backend."""
    path = tmp_path / "verifyd.db"
    shutil.copyfile(sqlite_template, path)
    return f"sqlite:///{path}"


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    """verifyd's lines, as ``VERIFYD_LOG_FORMAT=json`` writes them, into a buffer."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RequestIdFilter())
    root, ours = logging.getLogger(), logging.getLogger("verifyd")
    level = ours.level
    root.addHandler(handler)
    ours.setLevel(logging.INFO)
    try:
        yield out
    finally:
        root.removeHandler(handler)
        ours.setLevel(level)


def records(out: io.StringIO) -> list[dict[str, Any]]:
    """Each line of ``out`` parsed (it must be a JSON object); the buffer is emptied."""
    lines = out.getvalue().splitlines()
    out.seek(0)
    out.truncate()
    parsed = [json.loads(line) for line in lines]
    assert all(isinstance(doc, dict) for doc in parsed), lines
    return parsed


def access_line(out: io.StringIO) -> dict[str, Any]:
    (line,) = [doc for doc in records(out) if doc["logger"] == "verifyd.access"]
    return line


def test_json_lines_carry_the_request_id_the_answer_echoes(
    client: TestClient, json_log: io.StringIO
) -> None:
    r = client.get("/healthz")
    generated = r.headers["x-request-id"]
    assert generated.startswith("req_") and SANE_ID.match(generated)
    line = access_line(json_log)
    assert line["request_id"] == generated
    assert (line["method"], line["path"], line["status"]) == ("GET", "/healthz", 200)
    assert isinstance(line["ms"], float) and line["ms"] >= 0
    assert TS.match(line["ts"]) and line["level"] == "INFO"
    assert line["message"].startswith('testclient "GET /healthz" 200 ')

    again = client.get("/healthz").headers["x-request-id"]
    assert again != generated and access_line(json_log)["request_id"] == again  # one each

    given = "edge-7f3a:trace.01_Z"
    r = client.post("/v1/accounts", json={"phone": "12"}, headers={"X-Request-Id": given})
    assert r.status_code == 422 and r.headers["x-request-id"] == given  # problem+json too
    assert access_line(json_log)["request_id"] == given

    r = client.get("/v1/nowhere", params={"to": "x"}, headers={"X-Request-Id": "a" * 128})
    assert r.status_code == 404 and r.headers["x-request-id"] == "a" * 128
    line = access_line(json_log)
    assert line["request_id"] == "a" * 128
    assert line["path"] == "/v1/nowhere" and "?[redacted]" in line["message"]


@pytest.mark.parametrize(
    "bad",
    [b"a" * 129, b"x" * 300, b"two words", b"line\nbreak", b"", b"\xc3\xbcber", b"<script>"],
    ids=["129", "300", "space", "newline", "empty", "non-ascii", "markup"],
)
def test_an_unsane_request_id_is_replaced(
    client: TestClient, json_log: io.StringIO, bad: bytes
) -> None:
    r = client.get("/healthz", headers={"X-Request-Id": bad})
    echoed = r.headers["x-request-id"]
    assert echoed.startswith("req_") and SANE_ID.match(echoed) and echoed.encode() != bad
    assert r.headers.get_list("x-request-id") == [echoed]
    assert access_line(json_log)["request_id"] == echoed


def test_an_unexpected_error_logs_its_traceback_under_the_request_id(
    settings: Settings, json_log: io.StringIO
) -> None:
    app = create_app(settings)

    def boom() -> None:
        logging.getLogger("verifyd.test").warning("about to fail")
        raise RuntimeError("kaboom")

    app.add_api_route("/boom", boom)
    with TestClient(app, raise_server_exceptions=False) as client:
        r = client.get("/boom", headers={"X-Request-Id": "trace-500"})
    assert r.status_code == 500 and r.headers["content-type"] == "application/problem+json"
    assert r.headers["x-request-id"] == "trace-500"
    lines = {doc["logger"]: doc for doc in records(json_log)}
    assert lines["verifyd.test"]["request_id"] == "trace-500"  # code deep inside the request
    assert lines["verifyd.api"]["message"] == "unhandled error"
    assert lines["verifyd.api"]["request_id"] == "trace-500"
    assert "RuntimeError: kaboom" in lines["verifyd.api"]["exc"]
    assert "Traceback" not in lines["verifyd.api"]["message"]
    assert lines["verifyd.access"]["status"] == 500
    assert lines["verifyd.access"]["request_id"] == "trace-500"


def test_the_middleware_leaves_no_id_behind_and_no_shared_headers_changed(
    json_log: io.StringIO,
) -> None:
    shared = [(b"content-type", b"text/plain")]
    seen: list[str | None] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(REQUEST_ID.get())
        await send({"type": "http.response.start", "status": 204, "headers": shared})
        await send({"type": "http.response.body", "body": b""})

    async def call(headers: list[tuple[bytes, bytes]]) -> list[dict[str, Any]]:
        sent: list[dict[str, Any]] = []

        async def send(message: Any) -> None:
            sent.append(message)

        async def receive() -> Any:
            return {"type": "http.request", "body": b""}

        scope = {"type": "http", "method": "GET", "path": "/", "headers": headers}
        await RequestId(app)(scope, receive, send)
        assert REQUEST_ID.get() is None  # reset once the request is over
        return sent

    sent = asyncio.run(call([(b"x-request-id", b"abc")]))
    assert sent[0]["headers"] == [*shared, (b"x-request-id", b"abc")]
    assert seen == ["abc"]
    assert shared == [(b"content-type", b"text/plain")]
    logging.getLogger("verifyd.test").info("outside any request")
    (line,) = records(json_log)
    assert "request_id" not in line


# --- a real ``verifyd serve`` -------------------------------------------------------------


@dataclass
class Served:
    """A ``verifyd serve`` process; its stdout and stderr, each in a file of its own."""

    proc: subprocess.Popen[bytes]
    base_url: str
    stdout: Path
    stderr: Path

    def out(self) -> str:
        return self.stdout.read_text()

    def err(self) -> str:
        return self.stderr.read_text()


@contextlib.contextmanager
def serve(env: dict[str, str], cwd: Path) -> Iterator[Served]:
    """``verifyd serve`` on 127.0.0.1 and a free port, until /healthz answers; then stopped.

    stdout and stderr are captured apart: the console provider writes its deliveries
    to stdout, logging writes to stderr.
    """
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    stdout, stderr = cwd / "stdout.log", cwd / "stderr.log"
    with stdout.open("wb") as out, stderr.open("wb") as err:
        proc = subprocess.Popen(
            [*VERIFYD, "serve", "--host", "127.0.0.1", "--port", str(port)],
            env={**env, "VERIFYD_PUBLIC_BASE_URL": base_url},
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            start_new_session=True,
        )
    served = Served(proc, base_url, stdout, stderr)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert served.proc.poll() is None, f"serve exited:\n{served.out()}{served.err()}"
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(served.base_url + "/healthz", timeout=1).status_code == 200:
                    break
            assert time.monotonic() < deadline, f"no /healthz:\n{served.err()}"
            time.sleep(0.1)
        yield served
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(served.proc.pid, signal.SIGTERM)
        try:
            served.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:  # pragma: no cover - a hung shutdown
            os.killpg(served.proc.pid, signal.SIGKILL)
            served.proc.wait(timeout=10)


def console_blocks(stdout: str) -> list[str]:
    """The console provider's deliveries; stdout must hold nothing else.

    Each delivery is ``[verifyd console <kind>] to <destination>[ | <subject>]``, the
    body (which can have blank lines of its own) and a blank line. A block runs to the
    next header: with only deliveries on stdout, that split is exact.
    """
    starts = [m.start() for m in CONSOLE_HEADER.finditer(stdout)]
    assert stdout[: starts[0] if starts else len(stdout)] == "", "stdout before any delivery"
    ends = [*starts[1:], len(stdout)] if starts else []
    blocks = [stdout[a:b] for a, b in zip(starts, ends, strict=True)]
    for block in blocks:
        assert block.endswith("\n\n"), block
        assert not any(line.startswith("{") for line in block.splitlines()), block
    return blocks


def wait_delivery(served: Served, to: str) -> str:
    """The first console delivery to ``to`` (waiting for the dispatcher to send it)."""
    deadline = time.monotonic() + 20
    while True:
        for block in console_blocks(served.out()):
            header = block.split("\n", 1)[0]
            if header.split("] to ", 1)[1].split(" | ", 1)[0] == to:
                return block
        assert time.monotonic() < deadline, f"nothing delivered to the console:\n{served.err()}"
        time.sleep(0.05)


def phone_spellings(e164: str, national: str) -> set[str]:
    """``e164`` and ``national`` written every way a log could spell them."""
    digits = e164[1:]
    compact_national = re.sub(r"\D", "", national)
    return {e164, digits, national, compact_national, quote(e164), quote_plus(national)}


def email_spellings(address: str) -> set[str]:
    return {address, quote(address), quote_plus(address)}


def leaks(text: str, needles: set[str]) -> list[str]:
    """The needles found in ``text``, ignoring case.

    A needle that starts or ends with a digit must not continue into more digits
    there: ``7911123456`` inside ``07911123456`` is that spelling's own needle's
    find, and an eight-digit code is not found inside a longer number.
    """
    found = []
    for needle in needles:
        before = r"(?<!\d)" if needle[0].isdigit() else ""
        after = r"(?!\d)" if needle[-1].isdigit() else ""
        if re.search(before + re.escape(needle) + after, text, flags=re.IGNORECASE):
            found.append(needle)
    return sorted(found)


def test_a_real_server_logs_json_and_never_a_secret(tmp_path: Path) -> None:
    env = cli_env(f"sqlite:///{tmp_path}/verifyd.db")
    env.update(
        VERIFYD_LOG_FORMAT="json",
        VERIFYD_SANDBOX="true",
        VERIFYD_SMS_PROVIDER="console",
        VERIFYD_EMAIL_PROVIDER="console",
        VERIFYD_POLICY_MODE="either",
        VERIFYD_DEFAULT_REGION="GB",  # so the national spelling 07911 123456 is accepted
        # Eight digits: a four-digit code could also "match" a year or a pid in a line.
        VERIFYD_SMS_CODE_LENGTH="8",
        VERIFYD_DISPATCH_INTERVAL_SECONDS="0.05",
    )
    wrong = "13572468"
    # Real-looking destinations go through the console provider, sandbox ones through
    # the sandbox provider (read back from /v1/sandbox/messages).
    real = phone_spellings("+447911123456", "07911 123456") | {"+44 7911 123456", "7911123456"}
    real |= email_spellings("someone@example.com")
    sandbox = phone_spellings("+12025550142", "(202) 555-0142") | {"202-555-0142", "2025550142"}
    sandbox |= email_spellings("new-user@example.test")
    refused = {"+4479119876", "someone@@example.com"}
    echoed: list[str] = []
    collected: list[str] = []  # the codes and link tokens delivered

    with serve(env, tmp_path) as served, httpx.Client(base_url=served.base_url) as http:

        def call(method: str, url: str, **kwargs: Any) -> httpx.Response:
            r = http.request(method, url, **kwargs)
            echoed.append(r.headers["x-request-id"])
            return r

        def sandbox_message(to: str) -> dict[str, Any]:
            r = call("GET", "/v1/sandbox/messages", params={"to": to})
            assert r.status_code == 200, r.text
            message: dict[str, Any] = r.json()["messages"][0]
            return message

        def sms_flow(typed: str, e164: str, secrets: set[str]) -> None:
            r = call("POST", "/v1/accounts", json={"phone": typed})
            assert r.status_code == 201, r.text
            (ver,) = r.json()["verifications"]
            if secrets is real:
                found = re.search(r"code is (\d+)", wait_delivery(served, e164))
                assert found is not None
                code = found[1]
            else:
                code = sandbox_message(e164)["code"]
            assert len(code) == 8 and code != wrong
            secrets.add(code)
            collected.append(code)
            r = call("POST", f"/v1/verifications/{ver['id']}/check", json={"code": wrong})
            assert r.status_code >= 400 and r.json()["code"], r.text
            r = call("POST", f"/v1/verifications/{ver['id']}/resend")  # too soon: refused
            assert r.status_code == 429, r.text
            r = call("POST", f"/v1/verifications/{ver['id']}/check", json={"code": code})
            assert r.status_code == 200 and r.json()["account"]["status"] == "active", r.text

        def email_flow(address: str, secrets: set[str]) -> None:
            r = call("POST", "/v1/accounts", json={"email": address})
            assert r.status_code == 201, r.text
            account = r.json()["account"]["id"]
            if secrets is real:
                link = wait_delivery(served, address)
            else:
                link = sandbox_message(address)["link"]
            found = re.search(r"token=([A-Za-z0-9_-]+)", link)
            assert found is not None
            token = found[1]
            secrets.add(token)
            collected.append(token)
            r = call("GET", "/v1/email/verify", params={"token": token})
            assert r.status_code == 200 and "<form" in r.text
            r = call("POST", "/v1/email/verify", data={"token": token})
            assert r.status_code == 200 and "Email confirmed" in r.text
            assert call("GET", f"/v1/accounts/{account}").json()["status"] == "active"

        sms_flow("07911 123456", "+447911123456", real)
        sms_flow("+1 (202) 555-0142", "+12025550142", sandbox)
        email_flow("someone@example.com", real)
        email_flow("new-user@example.test", sandbox)
        for body in ({"phone": "+4479119876"}, {"email": "someone@@example.com"}):
            assert call("POST", "/v1/accounts", json=body).status_code == 422
        r = call("POST", "/v1/accounts", headers={"X-Request-Id": "given-by-the-edge"}, json={})
        assert r.status_code == 422

    stdout, stderr = served.out(), served.err()
    lines = [json.loads(line) for line in stderr.splitlines()]  # each line parses...
    assert lines and all(isinstance(doc, dict) for doc in lines)  # ...as one object
    for doc in lines:
        assert {"ts", "level", "logger", "message"} <= doc.keys() and TS.match(doc["ts"]), doc
    loggers = {doc["logger"] for doc in lines}
    assert {"verifyd", "uvicorn.error", "verifyd.access", "verifyd.outbox"} <= loggers
    access = [doc for doc in lines if doc["logger"] == "verifyd.access"]
    assert [doc["request_id"] for doc in access if doc["path"] != "/healthz"] == echoed
    assert echoed[-1] == "given-by-the-edge"
    assert not [doc for doc in lines if doc["logger"] == "uvicorn.error" and "request_id" in doc]

    everything = real | sandbox | refused | {wrong}
    assert len(set(collected)) == 4
    assert leaks(stderr, everything) == []
    # The console provider prints each message whole to stdout: that is its delivery,
    # by design. Logging never writes to stdout, so stdout is left out of the scan, but
    # only once it is shown to hold those deliveries and nothing else: one block per
    # message sent via console (the two real destinations), no log line among them.
    blocks = console_blocks(stdout)
    via_console = [doc for doc in lines if doc["message"].endswith("sent via console")]
    assert len(blocks) == len(via_console) == 2
    assert leaks(stdout, real), "the scan does find secrets where they are"
    assert leaks(stdout, sandbox | refused | {wrong}) == []  # never on the console at all


def test_a_real_server_in_text_mode_prints_as_before(tmp_path: Path) -> None:
    env = cli_env(f"sqlite:///{tmp_path}/verifyd.db")
    with serve(env, tmp_path) as served:
        r = httpx.get(served.base_url + "/v1/policy?x=1", headers={"X-Request-Id": "req-7b3e91"})
        assert r.headers["x-request-id"] == "req-7b3e91"
    lines = served.err().splitlines()
    assert lines[0].startswith(f"verifyd development on {served.base_url} (sandbox on")
    uvicorn = [ln for ln in lines if ln.startswith("INFO:     ")]
    assert any("Uvicorn running on" in ln for ln in uvicorn)
    ours = [ln for ln in lines[1:] if ln not in uvicorn]
    text = re.compile(r"(DEBUG|INFO|WARNING|ERROR|CRITICAL) verifyd[.\w]*: ")
    assert ours and all(text.match(ln) for ln in ours), ours
    assert re.search(
        r'^INFO verifyd.access: 127\.0\.0\.1 "GET /v1/policy\?\[redacted\]" 200 \d+\.\dms$',
        served.err(),
        re.MULTILINE,
    )
    assert "{" not in served.err() and "req-7b3e91" not in served.err()
    assert TEXT_FORMAT == "%(levelname)s %(name)s: %(message)s"


def test_the_worker_logs_json_too(tmp_path: Path) -> None:
    env = {**cli_env(f"sqlite:///{tmp_path}/verifyd.db"), "VERIFYD_LOG_FORMAT": "json"}
    done = subprocess.run(
        [*VERIFYD, "worker", "--once"],
        env=env,
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stderr.splitlines()]
    banner = [doc for doc in lines if doc["message"].startswith("verifyd worker development")]
    assert len(banner) == 1 and banner[0]["logger"] == "verifyd" and TS.match(banner[0]["ts"])
    assert done.stdout == ""
