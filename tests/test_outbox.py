"""The outbox: real destinations are queued, delivered, retried with backoff, never lost."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any, ClassVar

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from support.api import runtime, set_policy, signup
from verifyd.app import create_app
from verifyd.models import Message, table_of, utcnow
from verifyd.providers.base import DeliveryError, MessageKind, OutgoingMessage, Provider
from verifyd.registry import Registry
from verifyd.settings import Settings

_messages = table_of(Message)
REAL_PHONES = ["+1 415 555 2671", "+1 415 555 2672", "+1 415 555 2673"]


class Flaky(Provider):
    """A gateway that is down until told otherwise; ``fatal`` makes every send unrecoverable."""

    name = "flaky"
    kinds: ClassVar[frozenset[MessageKind]] = frozenset({"sms", "email"})
    down: ClassVar[bool] = True
    fatal: ClassVar[bool] = False
    sent: ClassVar[list[OutgoingMessage]]

    async def send(self, message: OutgoingMessage) -> None:
        if self.fatal:
            raise DeliveryError("21211 invalid 'To' number", retryable=False)
        if self.down:
            raise DeliveryError("503 gateway unavailable")
        type(self).sent.append(message)


Start = Callable[..., TestClient]


@pytest.fixture
def gateway() -> type[Flaky]:
    """A fresh ``Flaky`` class per test (its switches and inbox are class state)."""
    return type("Flaky", (Flaky,), {"sent": [], "down": True, "fatal": False})


@pytest.fixture
def start(make_settings: Callable[..., Settings], gateway: type[Flaky]) -> Iterator[Start]:
    """Start apps whose SMS and email go through the ``flaky`` gateway (same database)."""
    installed = Registry.from_entry_points()
    registry = Registry(
        channels=installed.channels, providers={**installed.providers, "flaky": gateway}
    )
    clients: list[TestClient] = []

    def start_app(**overrides: Any) -> TestClient:
        settings = make_settings(sms_provider="flaky", email_provider="flaky", **overrides)
        client = TestClient(create_app(settings, registry=registry), raise_server_exceptions=False)
        client.__enter__()
        clients.append(client)
        return client

    yield start_app
    for client in clients:
        client.__exit__(None, None, None)


def _wait(what: str, probe: Callable[[], Any], timeout: float = 10) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def _rows(client: TestClient, verification_id: str) -> list[Any]:
    with runtime(client).db.read() as conn:
        return list(
            conn.execute(
                select(_messages)
                .where(_messages.c.verification_id == verification_id)
                .order_by(_messages.c.generation)
            ).all()
        )


def _row(client: TestClient, verification_id: str) -> Any:
    (row,) = _rows(client, verification_id)
    return row


def _wait_row(
    client: TestClient, verification_id: str, ready: Callable[[Any], bool], timeout: float = 10
) -> Any:
    """The verification's only message, once ``ready`` holds for it."""
    return _wait(
        "the message", lambda: next(filter(ready, _rows(client, verification_id)), None), timeout
    )


def _delivery(client: TestClient, verification_id: str) -> str:
    delivery: str = client.get(f"/v1/verifications/{verification_id}").json()["delivery"]
    return delivery


def _make_due(client: TestClient) -> None:
    """Skip the backoff wait: every queued message becomes due now (time passing, faster)."""
    with runtime(client).db.write() as conn:
        conn.execute(
            update(_messages).where(_messages.c.status == "queued").values(next_attempt_at=utcnow())
        )


def _seconds_until(moment: datetime) -> float:
    return (moment - utcnow()).total_seconds()


def _check(client: TestClient, verification_id: str, code: str) -> dict[str, Any]:
    r = client.post(f"/v1/verifications/{verification_id}/check", json={"code": code})
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    assert body["status"] == "approved" and body["account"]["status"] == "active"
    return body


def test_a_real_phone_is_queued_then_printed_by_the_console_provider(
    client: TestClient, capfd: pytest.CaptureFixture[str]
) -> None:
    created = signup(client, phone="+1 415 555 2671")
    (ver,) = created["verifications"]
    assert ver["delivery"] == "queued"

    _wait("delivery", lambda: _delivery(client, ver["id"]) != "queued")
    assert _delivery(client, ver["id"]) == "sent"
    row = _row(client, ver["id"])
    assert (row.status, row.provider, row.kind, row.attempts) == ("sent", "console", "sms", 0)
    assert row.sent_at is not None and row.last_error is None

    out = capfd.readouterr().out
    printed = out.split("+14155552671", 1)[1]
    code_length = runtime(client).policies.current().sms.code_length
    code = re.findall(rf"\b\d{{{code_length}}}\b", printed)[0]
    _check(client, ver["id"], code)


def test_a_real_email_is_queued_then_printed_by_the_console_provider(
    client: TestClient, capfd: pytest.CaptureFixture[str]
) -> None:
    set_policy(client, "email")
    created = signup(client, email="someone@gmail.com")
    (ver,) = created["verifications"]
    assert (ver["channel"], ver["delivery"]) == ("email", "queued")

    _wait("delivery", lambda: _delivery(client, ver["id"]) == "sent")
    assert _row(client, ver["id"]).status == "sent"
    out = capfd.readouterr().out
    assert "someone@gmail.com" in out
    token = re.findall(r"http://testserver/v1/email/verify\?token=([\w-]+)", out)[0]
    r = client.post("/v1/email/verify", json={"token": token})
    assert r.status_code == 200, r.text
    account = client.get(f"/v1/accounts/{created['account']['id']}").json()
    assert account["status"] == "active"


def test_a_failing_provider_is_retried_within_its_jittered_backoff_window(
    start: Start, gateway: type[Flaky]
) -> None:
    # A 20 s first window: the retry is scheduled, not due while the test looks.
    client = start(delivery_backoff_base_seconds=20)
    (ver,) = signup(client, phone=REAL_PHONES[0])["verifications"]
    assert ver["delivery"] == "queued"

    first = _wait_row(client, ver["id"], lambda row: row.attempts == 1)
    assert first.status == "queued" and "503" in first.last_error
    assert 0 <= _seconds_until(first.next_attempt_at) <= 20, "full jitter within the window"
    assert _delivery(client, ver["id"]) == "queued"
    time.sleep(0.3)  # the dispatcher polls every 50 ms, but this message is not due yet
    assert _row(client, ver["id"]).attempts == 1

    _make_due(client)
    second = _wait_row(client, ver["id"], lambda row: row.attempts == 2)
    assert second.status == "queued" and second.last_error
    assert 0 <= _seconds_until(second.next_attempt_at) <= 40, "the window doubles"

    gateway.down = False
    _make_due(client)
    _wait("delivery", lambda: _delivery(client, ver["id"]) == "sent")
    done = _row(client, ver["id"])
    assert (done.status, done.attempts) == ("sent", 2) and done.sent_at is not None
    (message,) = gateway.sent
    assert message.to == "+14155552671" and message.code
    _check(client, ver["id"], message.code)


def test_the_first_retry_comes_by_itself_within_a_few_seconds(
    start: Start, gateway: type[Flaky]
) -> None:
    client = start()  # the default backoff: the first retry within 2 s
    (ver,) = signup(client, phone=REAL_PHONES[0])["verifications"]
    _wait_row(client, ver["id"], lambda row: row.attempts == 1)
    gateway.down = False
    _wait("the retry", lambda: _delivery(client, ver["id"]) == "sent", timeout=5)
    assert _row(client, ver["id"]).attempts == 1


def test_a_non_retryable_failure_is_dead_and_the_delivery_failed(
    start: Start, gateway: type[Flaky]
) -> None:
    gateway.fatal = True
    client = start()
    (ver,) = signup(client, phone=REAL_PHONES[0])["verifications"]
    _wait("a verdict", lambda: _delivery(client, ver["id"]) != "queued")
    assert _delivery(client, ver["id"]) == "failed"
    row = _row(client, ver["id"])
    assert (row.status, row.attempts) == ("dead", 1) and "21211" in row.last_error
    time.sleep(0.2)
    assert _row(client, ver["id"]).attempts == 1, "a dead message is not retried"


def test_retryable_failures_end_dead_after_the_last_attempt(
    start: Start, gateway: type[Flaky]
) -> None:
    client = start(delivery_max_attempts=4)
    (ver,) = signup(client, phone=REAL_PHONES[0])["verifications"]
    for attempt in range(1, 4):
        _wait(f"attempt {attempt}", lambda n=attempt: _row(client, ver["id"]).attempts == n)
        assert _row(client, ver["id"]).status == "queued"
        _make_due(client)
    _wait("the last attempt", lambda: _row(client, ver["id"]).status == "dead")
    assert _row(client, ver["id"]).attempts == 4
    assert _delivery(client, ver["id"]) == "failed"


def test_a_resend_before_delivery_cancels_the_superseded_message(
    start: Start, gateway: type[Flaky]
) -> None:
    client = start()
    set_policy(client, "phone", sms={"resend_cooldown_seconds": 0})
    (ver,) = signup(client, phone=REAL_PHONES[0])["verifications"]
    _wait("a failed attempt", lambda: _row(client, ver["id"]).attempts == 1)

    r = client.post(f"/v1/verifications/{ver['id']}/resend")
    assert r.status_code == 202, r.text
    assert r.json()["delivery"] == "queued"
    assert [m.generation for m in _rows(client, ver["id"])] == [0, 1]

    gateway.down = False
    _make_due(client)
    _wait("delivery", lambda: _delivery(client, ver["id"]) == "sent")
    _wait("the old message settled", lambda: _rows(client, ver["id"])[0].status != "queued")
    old, new = _rows(client, ver["id"])
    assert (old.status, old.sent_at) == ("canceled", None)
    assert new.status == "sent"
    (message,) = gateway.sent  # only the new code went out
    _check(client, ver["id"], message.code or "")


def test_nothing_is_lost_while_the_provider_is_down_even_across_a_restart(
    start: Start, gateway: type[Flaky]
) -> None:
    client = start()
    ids = [signup(client, phone=p)["verifications"][0]["id"] for p in REAL_PHONES]
    for vid in ids:
        _wait("a failed attempt", lambda v=vid: _row(client, v).attempts >= 1)
    client.__exit__(None, None, None)  # the worker stops while the gateway is still down

    gateway.down = False
    client = start()
    for vid in ids:
        row = _row(client, vid)
        assert row.status == "queued" and row.sent_at is None
        assert _delivery(client, vid) == "queued"
    _make_due(client)
    for vid in ids:
        _wait("delivery", lambda v=vid: _delivery(client, v) == "sent")
    assert sorted(m.to for m in gateway.sent) == sorted(p.replace(" ", "") for p in REAL_PHONES)
    codes = {m.to: m.code for m in gateway.sent}
    for vid, phone in zip(ids, REAL_PHONES, strict=True):
        assert _row(client, vid).status == "sent"
        _check(client, vid, codes[phone.replace(" ", "")] or "")
