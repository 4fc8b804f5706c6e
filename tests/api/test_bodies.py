"""Oversized, slow and abandoned request bodies, sent over real sockets to a real server.

The attacks of issue 10: a 100 MB body (declared, and chunked without a length) is
refused with 413 before it is read; a body that trickles is cut off with 408; a client
that hangs up mid-body is no server error (no 500, no traceback, no ERROR line).
"""

from __future__ import annotations

import json
import logging
import select
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest

from support.lastbyte import RawResponse, parse_response
from support.liveserver import LiveServer
from verifyd.api.bodylimit import BodyLimit
from verifyd.app import create_app
from verifyd.settings import Settings

SQLITE = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

MB = 1024 * 1024
CHUNK = b"x" * (64 * 1024)


@contextmanager
def serving(settings: Settings) -> Iterator[LiveServer]:
    with LiveServer(create_app(settings)) as server:
        yield server


def connect(server: LiveServer) -> socket.socket:
    sock = socket.create_connection((server.host, server.port), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def head(path: str, **headers: str) -> bytes:
    lines = [
        f"POST {path} HTTP/1.1",
        "Host: verifyd.test",
        *(f"{k}: {v}" for k, v in headers.items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def read_all(sock: socket.socket, timeout: float = 10) -> bytes:
    """Everything the server sends until it closes (a reset after its answer is a close)."""
    sock.settimeout(timeout)
    data = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return data
        if not chunk:
            return data
        data += chunk


def stream(sock: socket.socket, total: int, *, chunked: bool) -> tuple[int, bytes]:
    """Send up to ``total`` body bytes until the server answers or hangs up.

    Returns:
        How many body bytes went out, and what the server answered (read to its close).
    """
    sent = 0
    while sent < total:
        readable, _, _ = select.select([sock], [], [], 0)
        if readable:
            break
        piece = b"%x\r\n%s\r\n" % (len(CHUNK), CHUNK) if chunked else CHUNK
        try:
            sock.sendall(piece)
        except (BrokenPipeError, ConnectionResetError):
            break
        sent += len(CHUNK)
    return sent, read_all(sock)


def problem_of(raw: bytes) -> RawResponse:
    response = parse_response(raw)
    assert response.headers["content-type"] == "application/problem+json", response
    return response


@SQLITE
@pytest.mark.parametrize(
    "framing",
    [
        pytest.param({"Content-Length": str(100 * MB)}, id="declared"),
        pytest.param({"Transfer-Encoding": "chunked"}, id="chunked"),
    ],
)
def test_a_100_mb_body_is_refused_before_more_than_the_cap_is_read(
    make_settings: Callable[..., Settings], framing: dict[str, str]
) -> None:
    """A declared length over the cap is answered before a byte of the body is read; a
    chunked body is cut off as soon as it passes the cap. Either way the answer comes
    while the client is still sending: it got at most what the socket buffers took."""
    chunked = "Transfer-Encoding" in framing
    with serving(make_settings()) as server, connect(server) as sock:
        sock.sendall(head("/v1/accounts", **{"Content-Type": "application/json", **framing}))
        sent, raw = stream(sock, 100 * MB, chunked=chunked)
        response = problem_of(raw)
        assert response.status == 413
        assert response.json()["code"] == "payload_too_large"
        assert sent < 8 * MB
        if not chunked:
            assert response.headers["connection"] == "close"


@SQLITE
def test_the_cap_is_the_setting_and_a_body_within_it_is_served(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(max_body_bytes=2048)
    with serving(settings) as server:
        fits = json.dumps({"phone": "+1 202 555 0142", "subject": "s" * 150}).encode()
        with connect(server) as sock:
            sock.sendall(
                head(
                    "/v1/accounts",
                    **{
                        "Content-Type": "application/json",
                        "Content-Length": str(len(fits)),
                        "Connection": "close",
                    },
                )
                + fits
            )
            assert parse_response(read_all(sock)).status == 201
        over = json.dumps({"phone": "+1 202 555 0142", "subject": "s" * 2100}).encode()
        with connect(server) as sock:
            sock.sendall(
                head(
                    "/v1/accounts",
                    **{"Content-Type": "application/json", "Content-Length": str(len(over))},
                )
                + over
            )
            response = problem_of(read_all(sock))
            assert response.status == 413
            assert "2048 bytes" in response.json()["detail"]


@SQLITE
def test_bulk_labels_have_a_larger_cap_of_their_own(make_settings: Callable[..., Settings]) -> None:
    """5,000 labels (the demo's batch) are far over 64 KiB, and still accepted."""
    app = create_app(make_settings())
    key, _ = app.state.runtime.admin_keys.create("ops", "cli:test")
    auth = {"Authorization": f"Bearer {key}"}
    labels = [{"account_id": f"acc_{i:020d}", "label": "fake"} for i in range(5000)]
    with LiveServer(app) as server, httpx.Client(base_url=server.base_url, timeout=20) as http:
        r = http.post("/v1/admin/labels", json={"labels": labels}, headers=auth)
        assert r.status_code == 200, r.text
        assert len(r.content) > 0
        r = http.post("/v1/admin/labels", content=b" " * (9 * MB), headers=auth)
        assert r.status_code == 413
        assert r.json()["code"] == "payload_too_large"
        r = http.post(
            "/v1/admin/accounts/acc_x/labels", json={"label": "fake", "reason": "r" * 70_000}
        )
        assert r.status_code == 413


def test_the_app_never_sees_the_body_past_the_cap() -> None:
    """Behind the middleware, an app that reads everything gets the cap and a disconnect."""
    seen: list[Any] = []

    async def greedy(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        total = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                seen.append(("disconnect", total))
                return
            total += len(message.get("body", b""))
            if not message.get("more_body"):
                seen.append(("complete", total))
                break
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    app = BodyLimit(greedy, max_bytes=100_000, timeout=10)
    with LiveServer(app) as server, connect(server) as sock:
        sock.sendall(head("/", **{"Transfer-Encoding": "chunked"}))
        _, raw = stream(sock, 50 * MB, chunked=True)
    assert parse_response(raw).status == 413
    [(what, total)] = seen
    assert what == "disconnect"
    assert total <= 100_000


@SQLITE
def test_a_body_that_trickles_is_cut_off_at_the_deadline(
    make_settings: Callable[..., Settings],
) -> None:
    with serving(make_settings(body_timeout_seconds=1)) as server, connect(server) as sock:
        sock.sendall(
            head("/v1/accounts", **{"Content-Type": "application/json", "Content-Length": "200"})
        )
        start = time.monotonic()
        answered = b""
        for _ in range(40):  # one byte every 0.1 s would take 20 s
            readable, _, _ = select.select([sock], [], [], 0.1)
            if readable:
                answered = read_all(sock)
                break
            try:
                sock.sendall(b" ")
            except (BrokenPipeError, ConnectionResetError):
                break
        elapsed = time.monotonic() - start
        response = problem_of(answered)
        assert response.status == 408
        assert response.json()["code"] == "request_timeout"
        assert 0.9 < elapsed < 3


@pytest.mark.parametrize(
    ("path", "content_type", "body"),
    [
        ("/v1/email/verify", "application/x-www-form-urlencoded", b"token=" + b"a" * 300),
        ("/v1/email/verify", "application/json", json.dumps({"token": "a" * 300}).encode()),
        (
            "/v1/accounts",
            "application/json",
            json.dumps({"phone": "+1 202 555 0142" * 20}).encode(),
        ),
    ],
)
@SQLITE
def test_a_client_that_hangs_up_mid_body_is_not_a_server_error(
    make_settings: Callable[..., Settings],
    caplog: pytest.LogCaptureFixture,
    path: str,
    content_type: str,
    body: bytes,
) -> None:
    caplog.set_level(logging.DEBUG)
    with serving(make_settings()) as server:
        for _ in range(3):
            with connect(server) as sock:
                sock.sendall(
                    head(path, **{"Content-Type": content_type, "Content-Length": str(len(body))})
                    + body[: len(body) // 2]
                )
                time.sleep(0.1)  # the server is now waiting for the rest
            # closed: the rest never comes
        time.sleep(0.3)
        with connect(server) as sock:  # and the server still serves
            sock.sendall(
                b"GET /healthz HTTP/1.1\r\nHost: verifyd.test\r\nConnection: close\r\n\r\n"
            )
            assert parse_response(read_all(sock)).status == 200
    problems = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert problems == []
    access = [r for r in caplog.records if r.name == "verifyd.access"]
    assert [getattr(r, "status", None) for r in access if getattr(r, "path", "") == path] == [
        499
    ] * 3
    gone = [r for r in caplog.records if "client disconnected" in r.getMessage()]
    assert len(gone) == 3
    assert all(r.levelno == logging.DEBUG for r in gone)
