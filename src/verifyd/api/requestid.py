"""``X-Request-Id``: taken from the caller when sane, else made up, echoed on every answer."""

from __future__ import annotations

import itertools
import os
import re

from starlette.applications import Starlette
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from verifyd.logs import REQUEST_ID

HEADER = b"x-request-id"
#: What a caller's id may be; anything else (too long, spaces, newlines) is replaced,
#: so a hostile header can neither forge log lines nor bloat them.
_SANE = re.compile(rb"[A-Za-z0-9._:-]{1,128}")


#: This process's random half of every id it generates; the other half counts.
_PREFIX = "req_" + os.urandom(4).hex()
_SERIAL = itertools.count(1)


def new_request_id() -> str:
    """A fresh id: ``req_``, 8 random hex digits of this process, and its next serial.

    No system call per request: ``os.urandom`` on the event loop cost the benchmark's
    flow about 0.1 ms (a GIL hand-off with the database writer thread each time). The
    id needs to be unique, not unguessable.
    """
    return f"{_PREFIX}{next(_SERIAL):08x}"


class RequestId:
    """Pure ASGI middleware: sets ``verifyd.logs.REQUEST_ID`` and echoes ``X-Request-Id``.

    It must run outside everything else, the 500 handler included, so that every
    answer carries the header and every line logged for the request its id; see
    ``install_request_ids``.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        raw = None
        for name, value in scope["headers"]:
            if name == HEADER:
                raw = value if _SANE.fullmatch(value) else None
                break
        request_id = raw.decode("ascii") if raw is not None else new_request_id()
        header = (HEADER, raw if raw is not None else request_id.encode("ascii"))

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                # A new list: the response's own may be shared (a prepared answer).
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        token = REQUEST_ID.set(request_id)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            REQUEST_ID.reset(token)


def install_request_ids(app: Starlette) -> None:
    """Wrap ``app``'s whole middleware stack in ``RequestId``.

    ``add_middleware`` would put it inside Starlette's ``ServerErrorMiddleware``,
    whose 500 answer (and the traceback logged by the handler behind it) would then
    carry no id. Call it any time before the first request: middleware added later
    still ends up inside it.

    Args:
        app: The application, before it has served anything.
    """
    build = app.build_middleware_stack

    def build_with_id() -> ASGIApp:
        return RequestId(build())

    app.build_middleware_stack = build_with_id  # type: ignore[method-assign]
