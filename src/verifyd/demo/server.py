"""The demo's private verifyd: the user's settings with a sandbox inbox for everything.

The demo never talks to the user's own server (which keeps its own settings: a console
provider, real limits, no trusted proxy). It starts another verifyd in a thread, on
127.0.0.1 and a free port, on the same database: the user's server, ``/metrics`` and
``verifyd report`` then show the demo's accounts because they read the same rows.
"""

from __future__ import annotations

import socket
import threading
import time
from types import TracebackType
from typing import Any

import uvicorn

from verifyd.demo import DemoFailure
from verifyd.settings import Settings

#: The one address the private server listens on, and the one proxy it trusts.
HOST = "127.0.0.1"
_START_TIMEOUT = 30.0
_STOP_TIMEOUT = 15.0


def demo_settings(settings: Settings) -> Settings:
    """The private server's settings: ``settings`` with what the demo needs changed.

    - every message, to any destination, goes to the ``sandbox`` provider, which keeps
      it in the sandbox inbox (nothing reaches a phone, a mailbox or the console);
    - ``X-Forwarded-For`` from 127.0.0.1 is trusted, so each synthetic person has a
      client address of its own for the per-address limits and ``velocity_ip``;
    - no dispatcher (the sandbox provider delivers inside each request, nothing is
      queued), no access log, and the policy re-read every half second.

    Returns:
        New, validated settings; limits, signals, prices and the database are the user's.
    """
    overrides: dict[str, Any] = {
        "sandbox": True,
        "sms_provider": ["sandbox"],
        "email_provider": ["sandbox"],
        "trusted_proxies": [HOST],
        "access_log": False,
        "dispatcher": "off",
        "policy_cache_seconds": min(settings.policy_cache_seconds, 0.5),
    }
    # Built again (not copied) so the result is validated like any settings.
    return Settings(**{**settings.model_dump(), **overrides})


class PrivateServer:
    """Serves an ASGI app with uvicorn in a thread; a context manager.

    The socket is bound before the thread starts, so the port is ours from the start.

    Args:
        app: The application (``create_app(demo_settings(...))``).
    """

    def __init__(self, app: Any) -> None:
        self._app = app
        self._sock: socket.socket | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self.base_url = ""

    def start(self) -> None:
        """Start serving; return once connections are accepted.

        Raises:
            DemoFailure: the app did not start (its lifespan failed) within 30 s.
        """
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((HOST, 0))
        port = sock.getsockname()[1]
        self._sock, self.base_url = sock, f"http://{HOST}:{port}"
        config = uvicorn.Config(
            self._app,
            host=HOST,
            port=port,
            lifespan="on",
            access_log=False,
            log_level="warning",
            log_config=None,  # leave the process's logging as the CLI set it
        )
        # uvicorn installs signal handlers in the main thread only: Ctrl-C stays ours.
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._run, name="verifyd-demo", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + _START_TIMEOUT
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() >= deadline:
                error = self._error
                self.stop()
                raise DemoFailure(f"the demo's server did not start: {error!r}") from error
            time.sleep(0.01)

    def _run(self) -> None:
        assert self._server is not None and self._sock is not None
        try:
            self._server.run(sockets=[self._sock])
        except BaseException as exc:  # SystemExit from a failed lifespan included
            self._error = exc

    def stop(self) -> None:
        """Stop serving and wait for the thread (idempotent)."""
        server, thread, sock = self._server, self._thread, self._sock
        self._server = self._thread = self._sock = None
        if server is not None and thread is not None:
            server.should_exit = True
            thread.join(_STOP_TIMEOUT)
            if thread.is_alive():
                server.force_exit = True
                thread.join(_STOP_TIMEOUT)
        if sock is not None:
            sock.close()

    def __enter__(self) -> PrivateServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
