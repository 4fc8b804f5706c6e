"""Per-address counters on PostgreSQL: counted apart, never locked for a whole request.

Every signup from one address updates that address's rows (``signup_ip``,
``velocity_ip``), every check its ``check_ip`` row. Counted inside the request's
transaction, PostgreSQL kept each row locked until that transaction committed, and
concurrent requests from one address (a NAT, an untrusted balancer, a load test)
queued behind each other: the benchmark spent 99 % of the database's time waiting
there. These tests hold a request's own transaction up (another session locks a table
it writes) and show the address's rows are free meanwhile and already counted.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import psycopg
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import make_url

from support.api import latest_code, signup
from verifyd.settings import Settings

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.parametrize("database_url", ["postgresql"], indirect=True),
]

PHONE = "+1 202 555 0142"  # a sandbox number (the tests' sandbox patterns)
E164 = "+12025550142"


def _dsn(database_url: str) -> str:
    return make_url(database_url).set(drivername="postgresql").render_as_string(False)


@contextmanager
def _table_locked(database_url: str, table: str) -> Iterator[psycopg.Connection[Any]]:
    """Another session holding ``table`` so no row can be written to it until released."""
    with psycopg.connect(_dsn(database_url)) as conn:
        conn.execute(f"LOCK TABLE {table} IN EXCLUSIVE MODE")
        yield conn
        conn.rollback()


def _counter_is_free(database_url: str, bucket: str) -> tuple[bool, int]:
    """Whether nobody holds ``bucket``'s row for 127.0.0.1 (testclient's address), and its count."""
    with psycopg.connect(_dsn(database_url)) as conn:
        try:
            row = conn.execute(
                "SELECT count FROM rate_counters WHERE key = %s FOR UPDATE NOWAIT",
                (f"{bucket}:testclient",),
            ).fetchone()
        except psycopg.errors.LockNotAvailable:
            return False, -1
        return True, row[0] if row else 0


def _in_background(call: Callable[[], httpx.Response]) -> tuple[threading.Thread, list[Any]]:
    answers: list[Any] = []
    thread = threading.Thread(target=lambda: answers.append(call()), daemon=True)
    thread.start()
    return thread, answers


def _waiting_on_lock(database_url: str) -> bool:
    with psycopg.connect(_dsn(database_url)) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
            " AND datname = current_database()"
        ).fetchone()
        return bool(row and row[0])


def _until(probe: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 10
    while not probe():
        assert time.monotonic() < deadline, "the request never waited on the lock"
        time.sleep(0.02)


def test_a_signup_holds_no_address_counter_while_its_transaction_runs(
    client: TestClient, settings: Settings
) -> None:
    url = settings.database_url
    with _table_locked(url, "accounts"):
        thread, answers = _in_background(lambda: client.post("/v1/accounts", json={"phone": PHONE}))
        _until(lambda: _waiting_on_lock(url))  # the signup's transaction is held up
        for bucket in ("sandbox_signup_ip", "sandbox_velocity_ip"):
            free, count = _counter_is_free(url, bucket)
            assert free, f"{bucket} is locked by a signup still in its transaction"
            assert count == 1, f"{bucket} was not counted before the signup's transaction"
    thread.join(timeout=10)
    assert answers and answers[0].status_code == 201, answers


def test_a_check_holds_no_address_counter_while_its_transaction_runs(
    client: TestClient, settings: Settings
) -> None:
    url = settings.database_url
    verification_id = signup(client, phone=PHONE)["verifications"][0]["id"]
    code = latest_code(client, E164)
    with _table_locked(url, "verifications"):
        thread, answers = _in_background(
            lambda: client.post(f"/v1/verifications/{verification_id}/check", json={"code": code})
        )
        _until(lambda: _waiting_on_lock(url))
        free, count = _counter_is_free(url, "sandbox_check_ip")
        assert free, "check_ip is locked by a check still in its transaction"
        assert count == 1
    thread.join(timeout=10)
    assert answers and answers[0].status_code == 200, answers
    assert answers[0].json()["status"] == "approved"


def test_the_address_limit_still_refuses_past_its_count(
    make_settings: Callable[..., Settings], make_client: Callable[[Settings], TestClient]
) -> None:
    client = make_client(make_settings(signups_per_ip_per_hour=2, sandbox_limit_multiplier=1))
    answers = [
        client.post("/v1/accounts", json={"phone": f"+1 202 555 01{n:02d}"}).status_code
        for n in range(40, 44)
    ]
    assert answers == [201, 201, 429, 429]
