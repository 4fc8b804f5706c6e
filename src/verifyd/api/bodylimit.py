"""Request bodies: at most VERIFYD_MAX_BODY_BYTES, whole within VERIFYD_BODY_TIMEOUT_SECONDS.

Without it a 100 MB body was read whole before the 422 (three 200 MB bodies at once
took the server to 1.9 GB), and a client could hold a request open by trickling its
body. A pure ASGI middleware, so it sees the body before anything buffers it:

* a ``Content-Length`` over the cap is answered ``413 payload_too_large`` before a
  byte of the body is read;
* a body without one (chunked) is counted as it arrives, and answered the same way as
  soon as the count passes the cap;
* a body still incomplete ``body_timeout`` seconds after the request began is answered
  ``408 request_timeout``. A deadline for the whole body, not a timeout per chunk: one
  byte every few seconds would pass any per-chunk timeout, and 64 KiB needs only
  6.6 KB/s to arrive within 10 s.

A few paths may take more (``larger``): the bulk label upload, whose 10,000 labels
cannot fit in 64 KiB; they are admin endpoints, so the bytes are read before the key is
checked, but the cap still bounds them.

Either answer carries ``Connection: close``: uvicorn closes the connection once it is
sent, so the rest of the body is never read. From then on the application's
``receive`` gets ``http.disconnect`` (it never sees the rest; it stops as it would for
a client gone, see ``verifyd.api.handlers``) and whatever it still sends is dropped.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from verifyd.errors import problem

_DISCONNECT: Message = {"type": "http.disconnect"}


def _framing(scope: Scope) -> tuple[int | None, bool]:
    """The declared ``Content-Length`` (``None``: not given) and whether a body may follow.

    HTTP/1.1 has a body only with a ``Content-Length`` or a ``Transfer-Encoding``; a
    request with neither (every ``GET``) needs no guard at all.
    """
    length: int | None = None
    chunked = False
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                length = int(value)
            except ValueError:  # the HTTP parser refuses it first; guard it anyway
                chunked = True
        elif name == b"transfer-encoding":
            chunked = True
    return length, chunked or bool(length)


#: Twilio's codes for the refusals below, under the Twilio-compatible surface.
_TWILIO_CODES = {413: 60200, 408: 20408}


def twilio_shaped(body: dict[str, object]) -> dict[str, object]:
    """A refusal in Twilio's error body (``/v2``: the SDK reads no problem+json)."""
    status = int(str(body["status"]))
    code = _TWILIO_CODES.get(status, status)
    return {
        "code": code,
        "message": f"Invalid parameter: {body['detail']}" if code == 60200 else body["detail"],
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }


async def _answer(send: Send, body: dict[str, object], *, twilio: bool = False) -> None:
    """Send a problem document (under ``/v2`` Twilio's body), then close the connection."""
    if twilio:
        body = twilio_shaped(body)
    payload = json.dumps(body).encode()
    kind = b"application/json" if twilio else b"application/problem+json"
    await send(
        {
            "type": "http.response.start",
            "status": body["status"],
            "headers": [
                (b"content-type", kind),
                (b"content-length", str(len(payload)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


def too_large(max_bytes: int) -> dict[str, object]:
    """The ``413 payload_too_large`` problem for a cap of ``max_bytes``."""
    return problem(
        413,
        "payload_too_large",
        "Payload too large",
        f"the request body is over {max_bytes} bytes",
    )


def too_slow(timeout: float) -> dict[str, object]:
    """The ``408 request_timeout`` problem for a body deadline of ``timeout`` seconds."""
    return problem(
        408,
        "request_timeout",
        "Request timeout",
        f"the request body did not arrive within {timeout:g} seconds",
    )


class BodyLimit:
    """Pure ASGI middleware: cap and deadline for every HTTP request body.

    Args:
        app: The application it guards.
        max_bytes: The largest body accepted (``VERIFYD_MAX_BODY_BYTES``).
        timeout: Seconds from the start of a request to its body's last byte
            (``VERIFYD_BODY_TIMEOUT_SECONDS``).
        larger: Exact paths allowed a larger body, with their cap (never a smaller one).
        twilio_prefix: Paths under it (``/v2``, when mounted) are answered in Twilio's body.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_bytes: int,
        timeout: float,
        larger: Mapping[str, int] | None = None,
        twilio_prefix: str | None = None,
    ) -> None:
        self.app = app
        self.twilio_prefix = twilio_prefix
        self.max_bytes = max_bytes
        self.timeout = timeout
        self.larger = {path: max(cap, max_bytes) for path, cap in (larger or {}).items()}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared, has_body = _framing(scope)
        if not has_body:
            await self.app(scope, receive, send)
            return
        cap = self.larger.get(scope["path"], self.max_bytes)
        prefix = self.twilio_prefix
        twilio = prefix is not None and (scope["path"] + "/").startswith(prefix + "/")
        if declared is not None and declared > cap:
            await _answer(send, too_large(cap), twilio=twilio)
            return
        guard = _Guard(receive, send, cap, self.timeout, twilio)
        await self.app(scope, guard.receive, guard.send)


class _Guard:
    """One request's ``receive`` and ``send``, counted, timed, and cut off when answered."""

    def __init__(
        self, receive: Receive, send: Send, max_bytes: int, timeout: float, twilio: bool
    ) -> None:
        self._twilio = twilio
        self._receive = receive
        self._send = send
        self._max_bytes = max_bytes
        self._timeout = timeout
        self._deadline = asyncio.get_running_loop().time() + timeout
        self._received = 0
        self._body_done = False
        self._started = False
        self._answered = False

    async def receive(self) -> Message:
        if self._answered:
            return _DISCONNECT
        if self._body_done:  # now only waiting for a disconnect: no deadline
            return await self._receive()
        try:
            async with asyncio.timeout_at(self._deadline):
                message = await self._receive()
        except TimeoutError:
            return await self._refuse(too_slow(self._timeout))
        if message["type"] == "http.request":
            self._received += len(message.get("body", b""))
            if self._received > self._max_bytes:
                return await self._refuse(too_large(self._max_bytes))
            if not message.get("more_body", False):
                self._body_done = True
        else:  # http.disconnect
            self._body_done = True
        return message

    async def _refuse(self, body: dict[str, object]) -> Message:
        """Answer (unless the app already began to), then look disconnected to the app."""
        if not self._started:
            await _answer(self._send, body, twilio=self._twilio)
            self._answered = True
        self._body_done = True
        return _DISCONNECT

    async def send(self, message: Message) -> None:
        if self._answered:
            return
        if message["type"] == "http.response.start":
            self._started = True
        await self._send(message)
