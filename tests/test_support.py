"""Tests that really exercise the throwaway-PostgreSQL, live-server and last-byte harnesses."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import httpx
import psycopg
import pytest
from fastapi import FastAPI, Request

from support.lastbyte import build_request, fire_synchronised, parse_response
from support.liveserver import LiveServer
from support.postgres import PostgresServer

RACERS = 30


def _require_postgres() -> None:
    """Fail when PostgreSQL is missing, unless VERIFYD_TEST_SKIP_PG=1 asks to skip."""
    if not PostgresServer.available():
        if os.environ.get("VERIFYD_TEST_SKIP_PG") == "1":
            pytest.skip("PostgreSQL binaries not available (VERIFYD_TEST_SKIP_PG=1)")
        pytest.fail("PostgreSQL binaries not found; set VERIFYD_TEST_SKIP_PG=1 to skip")


@pytest.fixture(scope="module")
def pg() -> Iterator[PostgresServer]:
    """A running throwaway PostgreSQL server; missing binaries fail unless opted out."""
    _require_postgres()
    with PostgresServer() as server:
        yield server


def test_postgres_url_and_connect(pg: PostgresServer) -> None:
    """The server listens on 127.0.0.1 with the tuned settings and the documented URL."""
    assert pg.url() == f"postgresql+psycopg://postgres@127.0.0.1:{pg.port}/postgres"
    assert pg.url("x") == f"postgresql+psycopg://postgres@127.0.0.1:{pg.port}/x"
    with psycopg.connect(pg.dsn()) as conn:
        settings: dict[str, str] = dict(
            conn.execute(
                "SELECT name, setting FROM pg_settings WHERE name IN"
                " ('fsync', 'synchronous_commit', 'full_page_writes', 'max_connections',"
                " 'listen_addresses')"
            ).fetchall()
        )
        user = conn.execute("SELECT current_user").fetchone()
    assert settings == {
        "fsync": "off",
        "synchronous_commit": "off",
        "full_page_writes": "off",
        "max_connections": "200",
        "listen_addresses": "127.0.0.1",
    }
    assert user == ("postgres",)


def test_postgres_template_clone_and_drop(pg: PostgresServer) -> None:
    """A database cloned from a template has its tables, even if the template was in use."""
    pg.create_database("tmpl_support")
    with psycopg.connect(pg.dsn("tmpl_support"), autocommit=True) as conn:
        conn.execute("CREATE TABLE widgets (id int PRIMARY KEY, name text NOT NULL)")
        conn.execute("INSERT INTO widgets VALUES (1, 'sprocket')")
    holder = psycopg.connect(pg.dsn("tmpl_support"))  # must be terminated by create_database
    try:
        url = pg.create_database("clone_support", template="tmpl_support")
    finally:
        holder.close()
    assert url == pg.url("clone_support")
    with psycopg.connect(pg.dsn("clone_support")) as conn:
        assert conn.execute("SELECT id, name FROM widgets").fetchall() == [(1, "sprocket")]

    pg.drop_database("clone_support")
    pg.drop_database("tmpl_support")
    pg.drop_database("never_existed")
    with psycopg.connect(pg.dsn()) as conn:
        names = {r[0] for r in conn.execute("SELECT datname FROM pg_database").fetchall()}
    assert not {"clone_support", "tmpl_support"} & names


def test_postgres_stop_removes_data_dir() -> None:
    """stop() shuts the cluster down and deletes its files."""
    _require_postgres()
    server = PostgresServer()
    server.start()
    data_dir = server.data_dir
    dsn = server.dsn()
    assert (data_dir / "PG_VERSION").is_file()
    server.stop()
    assert not data_dir.exists()
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(dsn, connect_timeout=2)
    server.stop()  # idempotent


def _hello_app() -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.greeting = "hello"
        yield

    app = FastAPI(lifespan=lifespan)

    @app.get("/hello")
    async def hello(request: Request) -> dict[str, str]:
        return {"greeting": request.app.state.greeting}

    return app


def test_liveserver_serves_and_stops() -> None:
    """The app is served for real, with its lifespan run, and stop() frees the port."""
    with LiveServer(_hello_app()) as server:
        assert server.base_url == f"http://127.0.0.1:{server.port}"
        response = httpx.get(f"{server.base_url}/hello", timeout=10)
        assert response.status_code == 200
        assert response.json() == {"greeting": "hello"}
        base_url = server.base_url
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{base_url}/hello", timeout=2)


def test_liveserver_reports_startup_failure() -> None:
    """A lifespan that fails to start makes start() raise instead of hanging."""

    @asynccontextmanager
    async def broken(app: FastAPI) -> AsyncIterator[None]:
        raise RuntimeError("boom")
        yield

    with pytest.raises(RuntimeError, match="failed to start"):
        LiveServer(FastAPI(lifespan=broken), log_level="critical").start()


def _racy_counter_app() -> FastAPI:
    app = FastAPI()
    state = {"counter": 0}
    lock = threading.Lock()
    inflight = {"now": 0, "max": 0}

    @app.post("/incr")
    def incr(payload: dict[str, int]) -> dict[str, int]:  # sync: runs in the threadpool
        with lock:
            inflight["now"] += 1
            inflight["max"] = max(inflight["max"], inflight["now"])
        seen = state["counter"]  # read ...
        time.sleep(0.005)
        state["counter"] = seen + 1  # ... then write: a deliberate lost-update race
        with lock:
            inflight["now"] -= 1
        return {"seen": seen, "n": payload["n"]}

    @app.get("/stats")
    def stats() -> dict[str, int]:
        return {"counter": state["counter"], "max_inflight": inflight["max"]}

    @app.post("/reset")
    def reset() -> dict[str, int]:
        state["counter"] = 0
        inflight["max"] = 0
        return state

    return app


@pytest.fixture(scope="module")
def racy() -> Iterator[LiveServer]:
    """A live server running the racy counter app."""
    with LiveServer(_racy_counter_app()) as server:
        yield server


def test_sequential_requests_do_not_lose_updates(racy: LiveServer) -> None:
    """Control: without overlap the racy endpoint counts correctly."""
    with httpx.Client(base_url=racy.base_url, timeout=10) as client:
        client.post("/reset")
        for n in range(5):
            assert client.post("/incr", json={"n": n}).status_code == 200
        assert client.get("/stats").json()["counter"] == 5


def test_fire_synchronised_creates_overlap(racy: LiveServer) -> None:
    """Synchronised requests overlap enough to lose updates, and all parse correctly."""
    host = f"{racy.host}:{racy.port}"
    httpx.post(f"{racy.base_url}/reset", timeout=10)
    requests = [
        build_request("POST", "/incr", host=host, json_body={"n": n}) for n in range(RACERS)
    ]
    responses = fire_synchronised(racy.host, racy.port, requests)

    assert len(responses) == RACERS
    for n, response in enumerate(responses):
        assert response.status == 200, response
        assert response.headers["content-type"] == "application/json"
        assert response.json()["n"] == n  # same order as the requests
    stats = httpx.get(f"{racy.base_url}/stats", timeout=10).json()
    assert stats["max_inflight"] > 1
    assert stats["counter"] < RACERS, stats  # lost updates prove the requests overlapped


def test_fire_synchronised_sixty_requests(racy: LiveServer) -> None:
    """The harness copes with 60 concurrent connections, GETs and POSTs mixed."""
    host = f"{racy.host}:{racy.port}"
    requests = [
        build_request("GET", "/stats", host=host)
        if n % 2
        else build_request("POST", "/incr", host=host, json_body={"n": n})
        for n in range(60)
    ]
    responses = fire_synchronised(racy.host, racy.port, requests)
    assert [r.status for r in responses] == [200] * 60
    assert all("counter" in r.json() for r in responses[1::2])
    assert [r.json()["n"] for r in responses[::2]] == list(range(0, 60, 2))


def test_build_request_format() -> None:
    """Requests are HTTP/1.1 with Content-Length and Connection: close."""
    raw = build_request(
        "POST", "/x?y=1", host="h:1", json_body={"a": 1}, headers={"X-Test": "t", "accept": "j"}
    )
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    assert lines[0] == "POST /x?y=1 HTTP/1.1"
    assert "Host: h:1" in lines
    assert "Content-Type: application/json" in lines
    assert f"Content-Length: {len(body)}" in lines
    assert "Connection: close" in lines
    assert "X-Test: t" in lines
    assert "accept: j" in lines and "Accept: */*" not in lines
    assert body == b'{"a": 1}'
    assert b"Content-Length: 0\r\n" in build_request("GET", "/", host="h")


def test_parse_response_chunked_and_special_cases() -> None:
    """Chunked bodies are decoded; HEAD and 204 responses have no body."""
    chunked = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-A: 1\r\nx-a: 2\r\n\r\n"
        b'4;ext=1\r\n{"a"\r\n3\r\n: 1\r\n1\r\n}\r\n0\r\n\r\n'
    )
    response = parse_response(chunked)
    assert response.status == 200
    assert response.headers["x-a"] == "1, 2"
    assert response.json() == {"a": 1}
    head = parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", head=True)
    assert head.body == b""
    assert parse_response(b"HTTP/1.1 204 No Content\r\n\r\n").body == b""
    with pytest.raises(ValueError, match="truncated"):
        parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab")
