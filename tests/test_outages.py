"""Database outages are 503 ``database_unavailable`` (never a 500); bugs stay 500s.

The fast half: the classification, the handlers, a real pool timeout on SQLite and a
PostgreSQL that refuses connections. ``test_outage.py`` stops a real server under a
running API and worker.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import psycopg
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import exc as sa_exc
from sqlalchemy import text

from support.api import signup
from support.postgres import PostgresServer
from verifyd import migrate, outages
from verifyd.api import handlers
from verifyd.db import Database
from verifyd.settings import Settings


def _wrapped(kind: type[sa_exc.DBAPIError], orig: Exception) -> sa_exc.DBAPIError:
    return kind("SELECT secret FROM t WHERE phone = %(p)s", {"p": "+447911123456"}, orig)


OUTAGES = {
    "refused": _wrapped(
        sa_exc.OperationalError,
        psycopg.OperationalError('connection to server at "127.0.0.1", port 1 failed: refused'),
    ),
    "statement timeout": _wrapped(
        sa_exc.OperationalError,
        psycopg.errors.QueryCanceled("canceling statement due to statement timeout"),
    ),
    "closed": _wrapped(sa_exc.InterfaceError, psycopg.InterfaceError("the connection is closed")),
    "pool timeout": sa_exc.TimeoutError("QueuePool limit of size 1 overflow 0 reached"),
    "disconnect": sa_exc.DisconnectionError("gone"),
    "raw driver": psycopg.OperationalError("server closed the connection unexpectedly"),
}
BUGS = {
    "integrity": _wrapped(sa_exc.IntegrityError, psycopg.errors.UniqueViolation("duplicate key")),
    "programming": _wrapped(
        sa_exc.ProgrammingError, psycopg.errors.UndefinedTable('relation "x" does not exist')
    ),
    "plain": ValueError("a bug"),
}


@pytest.mark.parametrize("exc", OUTAGES.values(), ids=OUTAGES.keys())
def test_outages_are_unavailable(exc: Exception) -> None:
    assert outages.is_unavailable(exc)


@pytest.mark.parametrize("exc", BUGS.values(), ids=BUGS.keys())
def test_integrity_and_programming_errors_are_not(exc: Exception) -> None:
    assert not outages.is_unavailable(exc)


def test_the_log_line_names_the_driver_error_never_the_statement() -> None:
    line = outages.describe(OUTAGES["statement timeout"])
    assert line == "psycopg.QueryCanceled: canceling statement due to statement timeout"
    assert "+447911" not in outages.describe(OUTAGES["refused"])


def _raiser(exc: Exception) -> Callable[[], None]:
    def route() -> None:
        raise exc

    return route


def _app(raising: dict[str, Exception]) -> TestClient:
    app = FastAPI()
    handlers.install(app)
    for name, exc in raising.items():
        app.add_api_route(f"/{name.replace(' ', '-')}", _raiser(exc))
    return TestClient(app, raise_server_exceptions=False)


def test_handlers_answer_outages_503_and_bugs_500(caplog: pytest.LogCaptureFixture) -> None:
    client = _app({**OUTAGES, **BUGS})
    for name in OUTAGES:
        caplog.clear()
        r = client.get(f"/{name.replace(' ', '-')}")
        assert r.status_code == 503, (name, r.text)
        assert r.headers["content-type"] == "application/problem+json"
        assert 1 <= int(r.headers["retry-after"]) <= 5
        body = r.json()
        assert body["code"] == "database_unavailable" and body["status"] == 503
        assert "127.0.0.1" not in r.text and "SELECT" not in r.text
        # One warning line, no traceback, no statement and no parameters.
        records = [rec for rec in caplog.records if rec.name == "verifyd.api"]
        assert [rec.levelname for rec in records] == ["WARNING"], name
        assert records[0].exc_info is None
        assert "SELECT" not in records[0].getMessage() and "+4479" not in caplog.text
    for name in BUGS:
        r = client.get(f"/{name}")
        assert r.status_code == 500 and r.json()["code"] == "internal_error", name


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_pool_timeout_on_sqlite_is_503(
    make_settings: Callable[..., Settings], make_client: Callable[[Settings], TestClient]
) -> None:
    settings = make_settings(db_pool_size=1, db_pool_timeout_seconds=0.2)
    client = make_client(settings)
    vid = signup(client, phone="+44 7911 123456")["verifications"][0]["id"]
    db: Database = client.app.state.runtime.db  # type: ignore[attr-defined]
    with db.reader.connect():  # the one reader, held
        r = client.get(f"/v1/verifications/{vid}")
    assert r.status_code == 503 and r.json()["code"] == "database_unavailable", r.text
    assert client.get(f"/v1/verifications/{vid}").status_code == 200  # released: served


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # replaced below
def test_an_unreachable_postgresql_is_503_everywhere_but_healthz(
    make_settings: Callable[..., Settings], make_client: Callable[[Settings], TestClient]
) -> None:
    url = f"postgresql+psycopg://verifyd:hunter2@127.0.0.1:{_closed_port()}/verifyd"
    client = make_client(make_settings(database_url=url, db_connect_timeout_seconds=1))
    started = time.monotonic()
    r = client.get("/readyz")
    assert time.monotonic() - started < 3
    assert r.status_code == 503 and r.headers["content-type"] == "application/problem+json"
    body = r.json()
    assert body["code"] == "database_unavailable"
    assert body["checks"] == {"database": "error: OperationalError"}
    for method, path, json in (
        ("POST", "/v1/accounts", {"phone": "+44 7911 123456"}),
        ("GET", "/v1/verifications/ver_0123456789abcdef0123456789abcdef", None),
    ):
        r = client.request(method, path, json=json)
        assert r.status_code == 503, r.text
        assert r.json()["code"] == "database_unavailable" and "hunter2" not in r.text
    assert client.get("/healthz").status_code == 200


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_settings_reach_the_postgresql_pool(
    make_settings: Callable[..., Settings], database_url: str
) -> None:
    settings = make_settings(
        db_pool_size=3,
        db_pool_overflow=2,
        db_pool_timeout_seconds=1.5,
        db_connect_timeout_seconds=2.5,
        db_statement_timeout_ms=150,
    )
    db = Database.from_settings(settings)
    try:
        pool: Any = db.writer.pool
        assert (pool.size(), pool._max_overflow, pool._timeout) == (3, 2, 1.5)
        with db.read() as conn:
            assert conn.execute(text("SHOW statement_timeout")).scalar_one() == "150ms"
            with pytest.raises(sa_exc.OperationalError) as caught:
                conn.execute(text("SELECT pg_sleep(2)"))
        assert isinstance(caught.value.orig, psycopg.errors.QueryCanceled)
        assert outages.is_unavailable(caught.value)
        with db.read() as conn:  # the pool goes on after the cancel
            assert conn.execute(text("SELECT 1")).scalar_one() == 1
    finally:
        db.dispose()
    # The URL's own session options are kept beside the timeout.
    own = Database(
        settings.database_url + "?options=-c%20search_path%3Dpg_catalog",
        statement_timeout_ms=250,
    )
    try:
        with own.read() as conn:
            assert conn.execute(text("SHOW statement_timeout")).scalar_one() == "250ms"
            assert conn.execute(text("SHOW search_path")).scalar_one() == "pg_catalog"
    finally:
        own.dispose()
    quiet = Database.from_settings(settings, statement_timeout=False)
    try:
        with quiet.read() as conn:
            assert conn.execute(text("SHOW statement_timeout")).scalar_one() == "0"
    finally:
        quiet.dispose()


def test_patiently_waits_out_an_outage_but_not_a_bug() -> None:
    tries: list[int] = []

    async def flaky() -> str:
        tries.append(1)
        if len(tries) < 3:
            raise OUTAGES["refused"]
        return "recorded"

    assert asyncio.run(outages.patiently(flaky, within=10, what="message m")) == "recorded"
    assert len(tries) == 3

    async def bug() -> None:
        tries.append(1)
        raise BUGS["integrity"]

    tries.clear()
    with pytest.raises(sa_exc.IntegrityError):
        asyncio.run(outages.patiently(bug, within=10, what="message m"))
    assert len(tries) == 1

    async def down() -> None:
        raise OUTAGES["refused"]

    with pytest.raises(sa_exc.OperationalError):  # an outage longer than its bound
        asyncio.run(outages.patiently(down, within=0.3, what="message m"))


def test_poll_backoff_doubles_to_a_cap() -> None:
    assert outages.backoff(0.05, 0) == 0.05
    assert outages.backoff(0.05, 1) == 0.1
    assert outages.backoff(0.05, 3) == 0.4
    assert outages.backoff(0.05, 10_000) == outages.MAX_POLL_PAUSE


@pytest.mark.postgres
def test_migrations_are_not_cut_by_the_statement_timeout(pg_server: PostgresServer) -> None:
    """Another replica's migration holds the lock longer than a request may take."""
    name = f"m_{uuid.uuid4().hex[:12]}"
    url = pg_server.create_database(name)
    db = Database(url, statement_timeout_ms=200)
    try:
        with psycopg.connect(pg_server.dsn(name)) as other:
            other.execute("SELECT pg_advisory_xact_lock(%s)", (migrate.LOCK_ID,))
            releaser = threading.Timer(0.8, other.commit)
            releaser.start()
            migrate.upgrade(db)  # waited 0.8 s for the lock, past the 200 ms timeout
            releaser.join()
        assert migrate.is_current(db.writer)
    finally:
        db.dispose()
        pg_server.drop_database(name)
