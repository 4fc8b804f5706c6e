"""A deadline for a request's headers, which uvicorn does not have.

uvicorn's only idle timer, ``timeout_keep_alive``, starts when a response is complete
(``on_response_complete``) and is cancelled by the first byte that arrives: a
connection that never sends a full request head, one byte every few seconds, is
never closed (read in ``uvicorn/protocols/http/h11_impl.py`` and
``httptools_impl.py``, uvicorn 0.55). A hundred such connections stayed open
indefinitely. This module adds the missing timer to uvicorn's own protocol classes:

* it starts when the connection opens, and again when a response is complete;
* when it fires and no new request's head has arrived since (``cycle`` is the one
  seen when it started, and that one is answered), the connection is closed, without
  an answer (the client never finished asking; nginx's ``client_header_timeout``
  does the same).

A request whose head has arrived is no longer this timer's business: the body has
its own deadline (``verifyd.api.bodylimit``), and the app's time is the app's.

``verifyd serve`` passes :func:`protocol` as uvicorn's ``http=``; a
``functools.partial`` of a module-level class, so it pickles into uvicorn's worker
processes.
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
except ImportError:  # pragma: no cover - uvicorn without httptools
    HttpToolsProtocol = None  # type: ignore[assignment,misc]


class _HeaderDeadline:
    """Mixin for a uvicorn HTTP protocol: close a connection whose request head is late.

    Only ``connection_made``, ``connection_lost`` and ``on_response_complete`` are
    extended, and only ``cycle``, ``loop`` and ``transport`` are read: the three
    attributes both of uvicorn's HTTP/1.1 protocols have.
    """

    cycle: Any
    loop: asyncio.AbstractEventLoop
    transport: asyncio.Transport

    def __init__(self, *args: Any, header_timeout: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_timeout = header_timeout
        self._header_timer: asyncio.TimerHandle | None = None
        self._header_cycle: Any = None

    def _arm_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
        self._header_cycle = self.cycle
        self._header_timer = self.loop.call_later(self._header_timeout, self._header_deadline)

    def _header_deadline(self) -> None:
        self._header_timer = None
        cycle = self.cycle
        waiting = cycle is self._header_cycle and (cycle is None or cycle.response_complete)
        if waiting and not self.transport.is_closing():
            self.transport.close()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[misc]
        self._arm_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None
        super().connection_lost(exc)  # type: ignore[misc]

    def on_response_complete(self) -> None:
        super().on_response_complete()  # type: ignore[misc]
        if not self.transport.is_closing():
            self._arm_header_timer()


class H11WithHeaderTimeout(_HeaderDeadline, H11Protocol):
    """uvicorn's h11 protocol with a header deadline."""


if HttpToolsProtocol is not None:

    class HttpToolsWithHeaderTimeout(_HeaderDeadline, HttpToolsProtocol):
        """uvicorn's httptools protocol with a header deadline."""


def protocol(header_timeout: float) -> Any:
    """uvicorn's ``http=`` argument: its ``auto`` choice, with a header deadline.

    Args:
        header_timeout: Seconds a connection gets, from its opening or its last
            response, to deliver a whole request head.

    Returns:
        A protocol factory (httptools when installed, as uvicorn's ``auto``, else h11).
    """
    base: type = H11WithHeaderTimeout
    if HttpToolsProtocol is not None:
        base = HttpToolsWithHeaderTimeout
    return functools.partial(base, header_timeout=header_timeout)
