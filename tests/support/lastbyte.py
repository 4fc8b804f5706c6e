"""Last-byte synchronisation: fire many HTTP/1.1 requests so they land together."""

from __future__ import annotations

import json
import socket
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

_PAUSE = 0.1  # lets the server read and parse everything but the final bytes


@dataclass
class RawResponse:
    """A parsed HTTP/1.1 response."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)  # lower-case names
    body: bytes = b""

    def json(self) -> Any:
        """Decode the body as JSON.

        Returns:
            The decoded JSON value.
        """
        return json.loads(self.body)

    @property
    def text(self) -> str:
        """The body decoded as UTF-8."""
        return self.body.decode("utf-8", errors="replace")


def build_request(
    method: str,
    path: str,
    *,
    host: str,
    json_body: Any | None = None,
    form_body: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
) -> bytes:
    """Serialise an HTTP/1.1 request with ``Content-Length`` and ``Connection: close``.

    Args:
        method: HTTP method, e.g. ``"POST"``.
        path: Request target, e.g. ``"/v1/verify?x=1"``.
        host: Value of the ``Host`` header (e.g. ``"127.0.0.1:8000"``).
        json_body: If not None, serialised as the JSON body (``Content-Type`` set).
        form_body: If not None, the body as ``application/x-www-form-urlencoded``.
        headers: Extra headers; they override the defaults (case-insensitively).

    Returns:
        The raw request bytes.
    """
    body = b"" if json_body is None else json.dumps(json_body).encode()
    merged: dict[str, tuple[str, str]] = {}
    defaults = {"Host": host, "User-Agent": "verifyd-lastbyte", "Accept": "*/*"}
    if json_body is not None:
        defaults["Content-Type"] = "application/json"
    elif form_body is not None:
        body = urlencode(form_body).encode()
        defaults["Content-Type"] = "application/x-www-form-urlencoded"
    for name, value in [*defaults.items(), *(headers or {}).items()]:
        merged[name.lower()] = (name, value)
    merged["content-length"] = ("Content-Length", str(len(body)))
    merged["connection"] = ("Connection", "close")
    lines = [f"{method} {path} HTTP/1.1", *(f"{n}: {v}" for n, v in merged.values())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def _decode_chunked(data: bytes) -> bytes:
    body = bytearray()
    pos = 0
    while True:
        eol = data.find(b"\r\n", pos)
        if eol < 0:
            raise ValueError("truncated chunked body")
        size = int(data[pos:eol].split(b";", 1)[0].strip(), 16)
        pos = eol + 2
        if size == 0:
            return bytes(body)  # trailers, if any, are ignored
        if len(data) < pos + size + 2:
            raise ValueError("truncated chunked body")
        body += data[pos : pos + size]
        pos += size + 2


def parse_response(data: bytes, *, head: bool = False) -> RawResponse:
    """Parse one complete HTTP/1.1 response (as read up to EOF).

    Args:
        data: The raw bytes received.
        head: True if the request was HEAD (the response then has no body).

    Returns:
        The parsed response.

    Raises:
        ValueError: If the response is malformed or truncated.
    """
    head_end = data.find(b"\r\n\r\n")
    if head_end < 0:
        raise ValueError(f"incomplete response head: {data[:200]!r}")
    lines = data[:head_end].decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/"):
        raise ValueError(f"bad status line: {lines[0]!r}")
    status = int(parts[1])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep:
            raise ValueError(f"bad header line: {line!r}")
        key = name.strip().lower()
        value = value.strip()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    rest = data[head_end + 4 :]
    if head or status in (204, 304) or 100 <= status < 200:
        body = b""
    elif "chunked" in headers.get("transfer-encoding", "").lower():
        body = _decode_chunked(rest)
    elif "content-length" in headers:
        length = int(headers["content-length"])
        if len(rest) < length:
            raise ValueError(f"truncated body: got {len(rest)} of {length} bytes")
        body = rest[:length]
    else:
        body = rest
    return RawResponse(status=status, headers=headers, body=body)


def _read_to_eof(sock: socket.socket, deadline: float) -> bytes:
    chunks: list[bytes] = []
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("timed out reading response")
        sock.settimeout(remaining)
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            if chunks:  # server closed hard after answering
                break
            raise
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


def fire_synchronised(
    host: str, port: int, requests: list[bytes], *, timeout: float = 30.0
) -> list[RawResponse]:
    """Send requests so that they complete at the server at (nearly) the same instant.

    Every request gets its own TCP connection. All connections are opened first,
    each request is sent except its final byte, then after a short pause the final
    bytes are sent back to back; finally each response is read to EOF and parsed.

    Args:
        host: Server address.
        port: Server port.
        requests: Raw requests, e.g. from :func:`build_request` (``Connection: close``).
        timeout: Overall deadline in seconds for connecting, sending and reading.

    Returns:
        The parsed responses, in the same order as ``requests``.

    Raises:
        ValueError: If a request is shorter than two bytes or a response is malformed.
        TimeoutError: If the deadline passes.
    """
    return fire_synchronised_at([(host, port, req) for req in requests], timeout=timeout)


def fire_synchronised_at(
    targets: list[tuple[str, int, bytes]], *, timeout: float = 30.0
) -> list[RawResponse]:
    """:func:`fire_synchronised` with an address per request: one burst over several servers.

    Args:
        targets: ``(host, port, raw request)`` for each request.
        timeout: Overall deadline in seconds for connecting, sending and reading.

    Returns:
        The parsed responses, in the same order as ``targets``.

    Raises:
        ValueError: If a request is shorter than two bytes or a response is malformed.
        TimeoutError: If the deadline passes.
    """
    requests = [req for _, _, req in targets]
    if any(len(req) < 2 for req in requests):
        raise ValueError("each request must be at least two bytes long")
    deadline = time.monotonic() + timeout
    socks: list[socket.socket] = []
    try:
        for host, port, _ in targets:
            sock = socket.create_connection(
                (host, port), timeout=max(deadline - time.monotonic(), 0.1)
            )
            socks.append(sock)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for sock, req in zip(socks, requests, strict=True):
            sock.sendall(req[:-1])
        time.sleep(_PAUSE)
        for sock, req in zip(socks, requests, strict=True):
            try:
                sock.send(req[-1:])
            except (BrokenPipeError, ConnectionResetError):
                pass  # server already answered and closed; read the response anyway
        return [
            parse_response(_read_to_eof(sock, deadline), head=req.startswith(b"HEAD "))
            for sock, req in zip(socks, requests, strict=True)
        ]
    finally:
        for sock in socks:
            sock.close()
