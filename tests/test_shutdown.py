"""Graceful shutdown: SIGTERM under load answers every request in flight (never a 5xx),
refuses new connections, exits 0 within the grace; a stopping worker hands back what it
claimed but had not begun to send, so nothing is lost and nothing goes out twice."""

from __future__ import annotations

import asyncio
import http.client
import json
import logging
import os
import re
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, select, text

from support.api import runtime, signup
from support.gateway import Gateway
from test_cli import cli_env, start
from test_cli_serve import serving
from test_worker import WEBHOOK_SECRET, Accepting, _phones, _webhook_env
from verifyd.app import create_app
from verifyd.leases import BATCH
from verifyd.models import Message, table_of, utcnow
from verifyd.providers.base import MessageKind, OutgoingMessage, Provider
from verifyd.registry import Registry

_messages = table_of(Message)

CLIENTS = 16
GRACE = 10
#: Send SIGTERM once this many flows were approved (and more are on their way).
SIGNAL_AFTER = 40


class Load:
    """Keep-alive clients signing up and checking back to back, recording every answer."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.lock = threading.Lock()
        self.statuses: list[int] = []  # every answer's status
        self.created: list[str] = []  # account ids answered 201
        self.approved = 0
        self.unanswered = 0  # connection errors before any answer (a balancer retries these)
        self.answered_across = 0  # started before the signal, answered after it
        self.signalled_at: float | None = None
        self.enough = threading.Event()

    def client(self, index: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        n = 0
        try:
            while True:
                n += 1
                phone = f"+99{index:04d}{n:06d}"
                status, body = self._post(conn, "/v1/accounts", {"phone": phone})
                if status != 201:
                    return
                with self.lock:
                    self.created.append(body["account"]["id"])
                vid = body["verifications"][0]["id"]
                status, _ = self._post(conn, f"/v1/verifications/{vid}/check", {"code": "1234"})
                if status != 200:
                    return
                with self.lock:
                    self.approved += 1
                    if self.approved >= SIGNAL_AFTER:
                        self.enough.set()
        except (OSError, http.client.HTTPException):
            with self.lock:
                self.unanswered += 1
        finally:
            conn.close()

    def _post(self, conn: http.client.HTTPConnection, path: str, payload: Any) -> tuple[int, Any]:
        started = time.monotonic()
        conn.request("POST", path, json.dumps(payload), {"Content-Type": "application/json"})
        response = conn.getresponse()
        body = json.loads(response.read())  # the whole answer, or an error
        with self.lock:
            self.statuses.append(response.status)
            if self.signalled_at is not None and started < self.signalled_at:
                self.answered_across += 1
        return response.status, body


def _slow_signup(port: int, phone: str) -> tuple[socket.socket, bytes]:
    """A signup whose head and half its body are sent; the rest is returned to send later."""
    body = json.dumps({"phone": phone}).encode()
    head = (
        "POST /v1/accounts HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sock.sendall(head + body[:5])
    return sock, body[5:]


def _read_answer(sock: socket.socket) -> bytes:
    chunks = []
    while chunk := sock.recv(65536):  # the server closes after answering: it is stopping
        chunks.append(chunk)
    return b"".join(chunks)


@pytest.mark.timeout(120)
def test_sigterm_under_load_answers_every_request_in_flight_and_refuses_new_ones(
    database_url: str, tmp_path: Path
) -> None:
    env = cli_env(database_url)
    env.update(
        VERIFYD_SANDBOX="1",
        VERIFYD_SANDBOX_FIXED_CODE="1234",
        VERIFYD_SANDBOX_PATTERNS=r"^\+99\d{10}$",
        VERIFYD_SHUTDOWN_GRACE_SECONDS=str(GRACE),
    )
    with serving(env, tmp_path) as server:
        port = int(server.base_url.rsplit(":", 1)[1])
        load = Load(port)
        threads = [threading.Thread(target=load.client, args=(i,)) for i in range(CLIENTS)]
        for t in threads:
            t.start()
        assert load.enough.wait(timeout=60), f"only {load.approved} flows approved"
        # In flight for certain: the head is in, the body is still coming.
        slow, rest = _slow_signup(port, "+990000999999")
        time.sleep(0.3)
        with load.lock:
            load.signalled_at = time.monotonic()
        os.kill(server.proc.pid, signal.SIGTERM)
        time.sleep(0.5)
        with pytest.raises(ConnectionRefusedError):  # no longer listening: not a 5xx
            socket.create_connection(("127.0.0.1", port), timeout=5).close()
        slow.sendall(rest)  # half a second after the signal, still answered in full
        answer = _read_answer(slow)
        slow.close()
        returncode = server.proc.wait(timeout=GRACE)
        stopped_after = time.monotonic() - load.signalled_at
        for t in threads:
            t.join(timeout=30)
        output = server.output()

    status_line, _, rest_of_answer = answer.partition(b"\r\n")
    assert status_line == b"HTTP/1.1 201 Created", answer[:300]
    head, _, body = rest_of_answer.partition(b"\r\n\r\n")
    assert b"connection: close" in head.lower()
    slow_account = json.loads(body)["account"]["id"]

    assert returncode == 0, output[-3000:]
    assert stopped_after < GRACE
    assert [s for s in load.statuses if s >= 500] == [], "a request was answered 5xx"
    assert set(load.statuses) <= {200, 201}, sorted(set(load.statuses))
    # What a client saw: the answers in flight came; the rest failed to connect or were
    # cut before an answer (retried elsewhere by a balancer), never a broken answer.
    assert load.answered_across > 0, "no load request was in flight at the signal"
    assert load.unanswered <= CLIENTS
    assert "Traceback" not in output, output[-3000:]

    engine = create_engine(database_url)  # every 201 was committed before it was sent
    try:
        with engine.connect() as conn:
            stored = set(conn.execute(text("SELECT id FROM accounts")).scalars())
    finally:
        engine.dispose()
    answered = [*load.created, slow_account]
    assert [a for a in answered if a not in stored] == []


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_request_slower_than_the_grace_does_not_hold_the_server(
    database_url: str, tmp_path: Path
) -> None:
    env = cli_env(database_url)
    env.update(VERIFYD_SHUTDOWN_GRACE_SECONDS="1", VERIFYD_BODY_TIMEOUT_SECONDS="60")
    with serving(env, tmp_path) as server:
        port = int(server.base_url.rsplit(":", 1)[1])
        stuck, _ = _slow_signup(port, "+990000999998")  # the rest of its body never comes
        time.sleep(0.3)
        signalled = time.monotonic()
        os.kill(server.proc.pid, signal.SIGTERM)
        returncode = server.proc.wait(timeout=30)
        stopped_after = time.monotonic() - signalled
        stuck.close()
        output = server.output()
    assert returncode == 0, output[-3000:]
    assert stopped_after < 5, f"stopped after {stopped_after:.1f} s, the grace is 1 s"
    assert "timeout graceful shutdown exceeded" in output


@pytest.mark.postgres
@pytest.mark.timeout(120)
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_stopped_worker_hands_back_its_claims_and_every_message_goes_out_once(
    database_url: str, make_settings: Callable[..., Any], tmp_path: Path
) -> None:
    count = 60
    handler = Accepting(delay=0.3)
    with Gateway(handler) as gateway:
        # Dispatcher off: the API only queues (as ``serve`` with VERIFYD_DISPATCHER=off).
        settings = make_settings(
            dispatcher="off",
            sms_provider="webhook",
            webhook_url=gateway.url + "/deliver",
            webhook_secret=WEBHOOK_SECRET,
            signups_per_ip_per_hour=100000,
        )
        with TestClient(create_app(settings)) as client:
            for phone in _phones(count):
                signup(client, phone=phone)
        # A lease far longer than the test: a message that waited for it would fail it.
        env = _webhook_env(
            database_url,
            gateway,
            VERIFYD_DELIVERY_LEASE_SECONDS="120",
            VERIFYD_SHUTDOWN_GRACE_SECONDS=str(GRACE),
            VERIFYD_DELIVERY_CONCURRENCY="4",  # a claim of 20 goes out 4 at a time
        )
        first = _worker(env, tmp_path)
        gateway.wait_for(6)  # mid-batch: 4 in flight, the rest of the claim waiting
        signalled = time.monotonic()
        os.kill(first.pid, signal.SIGTERM)
        _, log1 = first.communicate(timeout=GRACE)
        first_stopped = time.monotonic() - signalled
        second = _worker(env, tmp_path)
        try:
            deadline = time.monotonic() + 60
            while len(handler.accepted) < count and time.monotonic() < deadline:
                time.sleep(0.05)
            all_out = time.monotonic() - signalled
            time.sleep(0.5)  # a double delivery would arrive by now
        finally:
            os.kill(second.pid, signal.SIGTERM)
            _, log2 = second.communicate(timeout=30)

    assert first.returncode == 0, log1
    assert first_stopped < GRACE
    handed = re.search(r"outbox stopped: (\d+) claimed message\(s\) handed back unsent", log1)
    assert handed is not None, log1
    assert int(handed.group(1)) >= 1, log1
    assert len(handler.accepted) == count, f"{len(handler.accepted)} of {count} delivered"
    assert set(handler.accepted.values()) == {1}, "a message was delivered twice"
    assert all_out < 60 < 120, "the handed-back messages waited for their lease"
    assert second.returncode == 0, log2
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            statuses = list(conn.execute(select(_messages.c.status, _messages.c.lease)).all())
    finally:
        engine.dispose()
    assert statuses == [("sent", None)] * count


def _worker(env: dict[str, str], cwd: Path) -> subprocess.Popen[str]:
    proc = start(["worker"], env, cwd, new_session=True)
    assert proc.stderr is not None
    assert proc.stderr.readline().startswith("verifyd worker development"), "did not start"
    return proc


class Blocking(Provider):
    """A gateway whose calls hang until ``release`` is set (class state, fresh per test)."""

    name = "blocking"
    kinds: ClassVar[frozenset[MessageKind]] = frozenset({"sms", "email"})
    calls: ClassVar[list[str]]
    release: ClassVar[asyncio.Event]

    async def send(self, message: OutgoingMessage) -> None:
        type(self).calls.append(message.id)
        await type(self).release.wait()


@pytest.fixture
def blocking(make_settings: Callable[..., Any]) -> Iterator[Callable[[int], TestClient]]:
    """An API that queues (dispatcher off) ``count`` SMS for the ``blocking`` provider."""
    installed = Registry.from_entry_points()
    provider = type("Blocking", (Blocking,), {"calls": []})
    registry = Registry(
        channels=installed.channels, providers={**installed.providers, "blocking": provider}
    )
    clients: list[TestClient] = []

    def make(count: int) -> TestClient:
        settings = make_settings(dispatcher="off", sms_provider="blocking", delivery_concurrency=2)
        client = TestClient(create_app(settings, registry=registry))
        client.__enter__()
        clients.append(client)
        for phone in _phones(count):
            signup(client, phone=phone)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


def _rows(client: TestClient) -> list[Any]:
    with runtime(client).db.read() as conn:
        return list(conn.execute(select(_messages).order_by(_messages.c.id)).all())


async def _until(what: str, probe: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not probe():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


def test_stop_hands_back_unbegun_claims_at_once_and_lets_calls_in_flight_finish(
    blocking: Callable[[int], TestClient], caplog: pytest.LogCaptureFixture
) -> None:
    # 25 due, one claim takes 20 (BATCH): 2 calls at a time, 18 waiting, 5 unclaimed.
    client = blocking(25)
    dispatcher = runtime(client).dispatcher
    provider = dispatcher.providers["blocking"]
    calls: list[str] = type(provider).calls

    async def scenario() -> None:
        type(provider).release = asyncio.Event()
        task = asyncio.create_task(dispatcher.run())
        await _until("two calls in flight", lambda: len(calls) == 2)
        leased = [r for r in _rows(client) if r.lease is not None]
        assert len(leased) == BATCH, "one claim takes one batch"
        dispatcher.stop()
        # At once, while both calls still hang: the 18 waiting are back in the queue.
        await _until("the hand-back", lambda: dispatcher.handed_back == BATCH - 2, timeout=2)
        rows = {r.id: r for r in _rows(client)}
        back = [r for i, r in rows.items() if i not in calls]
        assert {(r.status, r.lease, r.attempts) for r in back} == {("queued", None, 0)}
        assert all(r.next_attempt_at <= utcnow() for r in back)
        assert all(rows[i].lease is not None for i in calls)
        assert not task.done()
        type(provider).release.set()  # the calls in flight finish and are recorded
        await asyncio.wait_for(task, timeout=10)

    with caplog.at_level(logging.INFO, logger="verifyd.outbox"):
        asyncio.run(scenario())
    rows = {r.id: r for r in _rows(client)}
    assert sorted(r.status for r in rows.values()) == ["queued"] * 23 + ["sent"] * 2
    assert {rows[i].status for i in calls} == {"sent"}
    assert "outbox stopped: 18 claimed message(s) handed back unsent" in caplog.text


def test_a_call_abandoned_past_the_grace_keeps_its_lease(
    blocking: Callable[[int], TestClient],
) -> None:
    client = blocking(3)
    dispatcher = runtime(client).dispatcher
    provider = dispatcher.providers["blocking"]

    async def scenario() -> None:
        type(provider).release = asyncio.Event()
        task = asyncio.create_task(dispatcher.run())
        await _until("two calls in flight", lambda: len(type(provider).calls) == 2)
        dispatcher.stop()
        await _until("the hand-back", lambda: dispatcher.handed_back == 1, timeout=2)
        task.cancel()  # the grace is spent: the calls are abandoned mid-call
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(scenario())
    rows = {r.id: r for r in _rows(client)}
    abandoned = [rows[i] for i in type(provider).calls]
    # The provider may have taken them: they wait for the lease to lapse (at least once).
    assert [(r.status, r.attempts) for r in abandoned] == [("queued", 0)] * 2
    assert all(r.lease is not None and r.next_attempt_at > utcnow() for r in abandoned)
