"""Slow and greedy clients against ``verifyd serve`` itself: real sockets, a real process.

The attacks of issue 10: 100 connections trickling their request heads (they stayed open
forever), a kept-alive connection trickling its next request, and three concurrent 200 MB
uploads (they took the server to 1.9 GB). Each must fail for the attacker, and the server
must go on serving.
"""

from __future__ import annotations

import re
import select
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.net import get
from test_cli import cli_env
from test_cli_serve import Server, serving

HEADER_TIMEOUT = 1.0
#: How late past its deadline the server may close a connection (a loaded 2-core CI box).
SLACK = 3.0
MB = 1024 * 1024


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One ``verifyd serve`` with a 1 s header deadline and a 30 s keep-alive."""
    tmp = tmp_path_factory.mktemp("slow")
    env = cli_env(f"sqlite:///{tmp}/verifyd.db")
    env.update(
        VERIFYD_HEADER_TIMEOUT_SECONDS=str(HEADER_TIMEOUT),
        VERIFYD_KEEP_ALIVE_SECONDS="30",
        VERIFYD_ACCESS_LOG="false",
    )
    with serving(env, tmp) as running:
        yield running


def _address(server: Server) -> tuple[str, int]:
    host, port = server.base_url.removeprefix("http://").split(":")
    return host, int(port)


def _closed(sock: socket.socket) -> bool:
    """Whether the server has closed this connection (readable with nothing, or reset)."""
    readable, _, _ = select.select([sock], [], [], 0)
    if not readable:
        return False
    try:
        return sock.recv(4096) == b""
    except (ConnectionResetError, BrokenPipeError):
        return True


def _trickle_until_closed(socks: list[socket.socket], opened: float, limit: float) -> list[float]:
    """Send one header line every 0.25 s on each open socket; when did the server close each?"""
    closed_at: dict[int, float] = {}
    while len(closed_at) < len(socks) and time.monotonic() - opened < limit:
        for i, sock in enumerate(socks):
            if i in closed_at:
                continue
            if _closed(sock):
                closed_at[i] = time.monotonic() - opened
                continue
            try:
                sock.sendall(b"X-Trickle: 1\r\n")
            except (BrokenPipeError, ConnectionResetError):
                closed_at[i] = time.monotonic() - opened
        time.sleep(0.25)
    return [closed_at.get(i, float("inf")) for i in range(len(socks))]


def test_a_hundred_connections_trickling_their_headers_are_all_closed(server: Server) -> None:
    socks = []
    try:
        opened = time.monotonic()
        for _ in range(100):
            sock = socket.create_connection(_address(server), timeout=5)
            sock.sendall(b"POST /v1/accounts HTTP/1.1\r\nHost: verifyd.test\r\n")
            socks.append(sock)
        closed = _trickle_until_closed(socks, opened, limit=HEADER_TIMEOUT + 10)
    finally:
        for sock in socks:
            sock.close()
    assert max(closed) <= HEADER_TIMEOUT + SLACK, sorted(closed)[-5:]
    assert min(closed) >= HEADER_TIMEOUT * 0.9  # the deadline, not an immediate refusal
    assert get(server.base_url + "/healthz")[0] == 200


def test_a_kept_alive_connection_trickling_its_next_request_is_closed(server: Server) -> None:
    with socket.create_connection(_address(server), timeout=5) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: verifyd.test\r\n\r\n")
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.endswith(b"}"):
            answer += sock.recv(4096)
        assert answer.startswith(b"HTTP/1.1 200")
        # uvicorn's keep-alive timer (30 s here) is cancelled by the first byte of the
        # next request: only the header deadline, re-armed after the answer, closes it.
        opened = time.monotonic()
        sock.sendall(b"POST /v1/accounts HTTP/1.1\r\n")
        [closed] = _trickle_until_closed([sock], opened, limit=HEADER_TIMEOUT + 10)
    assert HEADER_TIMEOUT * 0.9 <= closed <= HEADER_TIMEOUT + SLACK


def test_a_request_whose_head_arrived_in_time_is_not_cut(server: Server) -> None:
    """The header deadline ends with the head: a slow answer is the app's business."""
    with socket.create_connection(_address(server), timeout=10) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: verifyd.test\r\n")
        time.sleep(HEADER_TIMEOUT / 2)
        sock.sendall(b"Connection: close\r\n\r\n")
        time.sleep(HEADER_TIMEOUT)  # past the deadline counted from the connection's opening
        assert sock.recv(4096).startswith(b"HTTP/1.1 200")


def _memory(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (the peak) of a process, in kB."""
    status = Path(f"/proc/{pid}/status").read_text()
    return {k: int(v) for k, v in re.findall(r"^(VmRSS|VmHWM):\s+(\d+) kB", status, re.MULTILINE)}


def _upload(server: Server, size: int, *, chunked: bool, answers: list[bytes]) -> None:
    """Stream ``size`` bytes of body at ``POST /v1/accounts`` until the server stops it."""
    framing = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {size}"
    chunk = b"x" * (256 * 1024)
    piece = b"%x\r\n%s\r\n" % (len(chunk), chunk) if chunked else chunk
    with socket.create_connection(_address(server), timeout=30) as sock:
        sock.sendall(
            f"POST /v1/accounts HTTP/1.1\r\nHost: verifyd.test\r\n"
            f"Content-Type: application/json\r\n{framing}\r\n\r\n".encode()
        )
        # A moment for an answer before the body, as a client sending Expect: 100-continue.
        select.select([sock], [], [], 0.2)
        sent = 0
        try:
            while sent < size and not select.select([sock], [], [], 0)[0]:
                sock.sendall(piece)
                sent += len(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed while the body was on its way
        try:
            answers.append(sock.recv(4096) or b"closed")
        except ConnectionResetError:
            answers.append(b"reset")


def test_three_200_mb_uploads_at_once_leave_the_servers_memory_alone(server: Server) -> None:
    pid = server.proc.pid
    warm: list[bytes] = []
    _upload(server, 1 * MB, chunked=True, answers=warm)  # every code path loaded once
    before = _memory(pid)
    answers: list[bytes] = []
    uploads = [
        threading.Thread(
            target=_upload, args=(server, 200 * MB), kwargs={"chunked": c, "answers": answers}
        )
        for c in (True, True, False)
    ]
    for t in uploads:
        t.start()
    health = get(server.base_url + "/healthz", timeout=10)
    for t in uploads:
        t.join(60)
    after = _memory(pid)
    assert health[0] == 200
    assert get(server.base_url + "/healthz")[0] == 200
    assert len(answers) == 3
    assert all(a.startswith(b"HTTP/1.1 413") or a in (b"reset", b"closed") for a in answers), (
        answers
    )
    assert any(a.startswith(b"HTTP/1.1 413") for a in answers), answers
    # Read whole, three 200 MB bodies took the server to 1.9 GB; refused, a few MB at most.
    assert after["VmRSS"] - before["VmRSS"] < 30 * 1024, (before, after)
    assert after["VmHWM"] - before["VmHWM"] < 30 * 1024, (before, after)
