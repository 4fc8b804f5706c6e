"""Serve an ASGI app for real with uvicorn, in a background thread, on 127.0.0.1.

``verifyd demo`` serves its private verifyd this way; the tests serve apps under test
with it too (``tests/support/liveserver.py``).
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Generator
from types import TracebackType
from typing import Any

import uvicorn

_START_TIMEOUT = 30.0
_STOP_TIMEOUT = 15.0


class _ThreadServer(uvicorn.Server):
    """A uvicorn server that never touches process-wide signal handlers."""

    def install_signal_handlers(self) -> None:  # uvicorn < 0.29
        """Do nothing: signals belong to the main thread (pytest, the CLI's Ctrl-C)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:  # uvicorn >= 0.29
        """Do nothing: signals belong to the main thread (pytest, the CLI's Ctrl-C)."""
        yield


def bind_loopback() -> socket.socket:
    """A TCP socket bound to a free port of 127.0.0.1, not yet listening.

    Bind one first to know the server's URL before the app is built (an app whose
    ``public_base_url`` must be its own address), then hand it to :class:`LiveServer`.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


class LiveServer:
    """Run an ASGI application with uvicorn on 127.0.0.1 and a free port.

    The listening socket is bound before the server thread starts, so there is no
    window in which another process could grab the port. Usable as a context manager.
    """

    def __init__(
        self, app: Any, *, log_level: str = "warning", sock: socket.socket | None = None
    ) -> None:
        """Prepare (but do not start) the server.

        Args:
            app: The ASGI application, e.g. a FastAPI instance.
            log_level: uvicorn log level.
            sock: A socket from :func:`bind_loopback` to serve on (the server takes it
                over and closes it on :meth:`stop`); by default one is bound at start.
        """
        self.app = app
        self.log_level = log_level
        self.host = "127.0.0.1"
        self._given = sock
        self._sock: socket.socket | None = None
        self._port: int | None = None
        self._server: _ThreadServer | None = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    @property
    def port(self) -> int:
        """The TCP port the server listens on (only while started)."""
        if self._port is None:
            raise RuntimeError("LiveServer is not running")
        return self._port

    @property
    def base_url(self) -> str:
        """Base URL of the running server, ``http://127.0.0.1:PORT``."""
        return f"http://{self.host}:{self.port}"

    def start(self) -> None:
        """Start serving and return once the server accepts connections.

        Raises:
            RuntimeError: If the server (e.g. the app's lifespan startup) fails or does
                not start within 30 seconds.
        """
        if self._thread is not None:
            raise RuntimeError("LiveServer already started")
        sock, self._given = (self._given or bind_loopback()), None
        self._sock = sock
        self._port = sock.getsockname()[1]
        config = uvicorn.Config(
            self.app,
            host=self.host,
            port=self.port,
            lifespan="on",
            access_log=False,
            # As ``verifyd serve``: whose X-Forwarded-For counts is VERIFYD_TRUSTED_PROXIES'
            # to say, not uvicorn's (which would believe any header from 127.0.0.1).
            proxy_headers=False,
            log_level=self.log_level,
            log_config=None,  # leave process-wide logging as the caller set it
        )
        self._server = _ThreadServer(config)
        self._error = None
        self._thread = threading.Thread(target=self._run, name="verifyd-liveserver", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + _START_TIMEOUT
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() >= deadline:
                error = self._error
                self.stop(raise_errors=False)
                raise RuntimeError(f"uvicorn failed to start: {error!r}") from error
            time.sleep(0.01)

    def _run(self) -> None:
        assert self._server is not None and self._sock is not None
        try:
            # Server.run creates (and closes) a fresh event loop in this thread.
            self._server.run(sockets=[self._sock])
        except BaseException as exc:  # incl. SystemExit from a failed lifespan startup
            self._error = exc

    def stop(self, *, raise_errors: bool = True) -> None:
        """Ask uvicorn to exit, wait for the thread, and release the socket. Idempotent.

        Args:
            raise_errors: Re-raise (as RuntimeError) an exception that crashed the server.

        Raises:
            RuntimeError: If the server thread crashed or does not stop in time.
        """
        server, thread, sock = self._server, self._thread, self._sock
        self._server = self._thread = self._sock = None
        self._port = None
        hung = False
        if server is not None and thread is not None:
            server.should_exit = True
            thread.join(_STOP_TIMEOUT)
            if thread.is_alive():
                server.force_exit = True
                thread.join(_STOP_TIMEOUT)
                hung = thread.is_alive()
        if sock is not None:
            sock.close()
        if raise_errors and hung:
            raise RuntimeError("uvicorn did not shut down")
        if raise_errors and self._error is not None:
            error, self._error = self._error, None
            raise RuntimeError(f"uvicorn crashed: {error!r}") from error

    def __enter__(self) -> LiveServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
