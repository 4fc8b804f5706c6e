"""``verifyd worker``: delivery in processes of their own, none delivering a message twice,
and nothing lost or doubled when the server is killed with a send in flight."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from support.api import signup
from support.gateway import Answer, Gateway, Request
from support.outbox import delivery, wait
from test_cli import VERIFYD, cli_env, start
from test_cli_serve import serving

WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"worker-test-webhook-secret-32byte").decode()
SENT = re.compile(r"message (msg_[\w-]+) sent via webhook")


def _phones(count: int) -> list[str]:
    """Distinct real-looking UK mobiles (valid MOBILE numbers for phonenumbers), ten to a
    prefix, so the SMS budget per prefix (20 an hour) never holds them."""
    return [f"+44 7911 {120000 + 1000 * (i // 10) + i % 10}" for i in range(count)]


def _webhook_env(database_url: str, gateway: Gateway, **extra: str) -> dict[str, str]:
    env = cli_env(database_url)
    env.update(
        VERIFYD_SMS_PROVIDER="webhook",
        VERIFYD_EMAIL_PROVIDER="webhook",
        VERIFYD_WEBHOOK_URL=gateway.url + "/deliver",
        VERIFYD_WEBHOOK_SECRET=WEBHOOK_SECRET,
        VERIFYD_DISPATCH_INTERVAL_SECONDS="0.05",
        VERIFYD_SIGNUPS_PER_IP_PER_HOUR="100000",
        **extra,
    )
    return env


class Accepting:
    """A gateway handler that accepts every message after ``delay`` seconds and counts ids."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.accepted: Counter[str] = Counter()
        self.lock = threading.Lock()

    def __call__(self, request: Request) -> Answer:
        time.sleep(self.delay)
        with self.lock:
            self.accepted[request.headers["webhook-id"]] += 1
        return Answer(202, b'{"id": "gw-1"}')


@pytest.fixture
def queue(
    make_settings: Callable[..., Any], make_client: Callable[..., TestClient]
) -> Callable[[Gateway, int], tuple[TestClient, list[str]]]:
    """Sign up ``count`` phones through an API that does not deliver (dispatcher off)."""

    def make(gateway: Gateway, count: int) -> tuple[TestClient, list[str]]:
        client = make_client(
            make_settings(
                dispatcher="off",
                sms_provider="webhook",
                webhook_url=gateway.url + "/deliver",
                webhook_secret=WEBHOOK_SECRET,
                signups_per_ip_per_hour=100000,
            )
        )
        ids = [signup(client, phone=p)["verifications"][0]["id"] for p in _phones(count)]
        return client, ids

    return make


@contextlib.contextmanager
def _workers(env: dict[str, str], cwd: Path, count: int) -> Iterator[list[subprocess.Popen[str]]]:
    procs = [start(["worker"], env, cwd, new_session=True) for _ in range(count)]
    try:
        yield procs
    finally:
        for proc in procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)


def test_worker_once_delivers_what_the_api_queued(
    database_url: str, queue: Any, tmp_path: Path
) -> None:
    handler = Accepting()
    with Gateway(handler) as gateway:
        client, ids = queue(gateway, 3)
        time.sleep(0.3)
        assert gateway.requests == [], "the API itself delivers nothing with the dispatcher off"
        done = subprocess.run(
            [*VERIFYD, "worker", "--once"],
            env=_webhook_env(database_url, gateway),
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        assert "verifyd worker development (sms via webhook" in done.stderr
        assert len(handler.accepted) == 3 and set(handler.accepted.values()) == {1}
        for vid in ids:
            assert delivery(client, vid) == "sent"
        body = json.loads(gateway.requests[0].body)
        assert body["kind"] == "sms" and body["to"].startswith("+447911")


def test_two_workers_never_deliver_a_message_twice(
    database_url: str, queue: Any, tmp_path: Path
) -> None:
    # A slow gateway (20 ms a message) so both workers are busy at the same time.
    handler = Accepting(delay=0.02)
    with Gateway(handler) as gateway:
        env = _webhook_env(database_url, gateway)
        with _workers(env, tmp_path, 2) as procs:
            for proc in procs:  # both polling before the first message is queued
                assert proc.stderr is not None
                assert proc.stderr.readline().startswith("verifyd worker development")
            client, ids = queue(gateway, 60)
            wait("every delivery", lambda: len(handler.accepted) == 60, timeout=60)
            for vid in ids:  # every outcome recorded
                wait("sent", lambda v=vid: delivery(client, v) == "sent")
            time.sleep(0.5)  # any double delivery would arrive by now
        logs = [proc.communicate(timeout=30)[1] for proc in procs]
    assert all(proc.returncode == 0 for proc in procs), logs
    assert set(handler.accepted.values()) == {1}, "a message was delivered twice"
    by_worker = [set(SENT.findall(log)) for log in logs]
    assert not by_worker[0] & by_worker[1]
    assert by_worker[0] | by_worker[1] == set(handler.accepted)
    assert by_worker[0] and by_worker[1], "both workers took a share"
    assert all("stopping: finishing the deliveries in flight" in log for log in logs)


class Hanging:
    """Holds the first request open until released, then refuses it; accepts the rest."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.accepted: list[dict[str, Any]] = []

    def __call__(self, request: Request) -> Answer:
        if not self.release.is_set():
            self.release.wait(30)
            return Answer(503, b"{}")  # the client is gone: nothing was accepted
        self.accepted.append(json.loads(request.body))
        return Answer(200, b"{}")


def test_a_send_in_flight_when_the_server_is_killed_is_delivered_once_after_restart(
    database_url: str, tmp_path: Path
) -> None:
    handler = Hanging()
    with Gateway(handler) as gateway:
        # A short lease: the killed server's claim lapses in 2 s instead of a minute.
        env = _webhook_env(
            database_url,
            gateway,
            VERIFYD_DELIVERY_LEASE_SECONDS="2",
            VERIFYD_WEBHOOK_TIMEOUT_SECONDS="1",
        )
        phone = "+44 7911 123456"
        with serving(env, tmp_path) as server:
            r = _post(server.base_url + "/v1/accounts", {"phone": phone})
            assert r[0] == 201, r
            vid = r[1]["verifications"][0]["id"]
            gateway.wait_for(1)  # the send is in flight, the signup long committed
            os.killpg(server.proc.pid, signal.SIGKILL)
            server.proc.wait(10)
        handler.release.set()
        with serving(env, tmp_path) as server:
            wait("the redelivery", lambda: len(handler.accepted) == 1, timeout=30)
            (message,) = handler.accepted
            assert message["to"] == "+447911123456"
            code = re.search(r"\b(\d{4})\b", message["body"])
            assert code is not None
            status, answer = _post(
                server.base_url + f"/v1/verifications/{vid}/check", {"code": code.group(1)}
            )
            assert status == 200, answer
            time.sleep(1)
            assert len(handler.accepted) == 1, "delivered once"
    assert len(gateway.requests) == 2, "one refused try before the kill, one after"


def _post(url: str, body: dict[str, Any]) -> tuple[int, Any]:
    import urllib.error
    import urllib.request

    req = urllib.request.Request(
        url, json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())
