"""The demo's private verifyd: the user's settings with a sandbox inbox for everything.

The demo never talks to the user's own server (which keeps its own settings: a console
provider, real limits, no trusted proxy). It starts another verifyd in a thread, on
127.0.0.1 and a free port, on the same database: the user's server, ``/metrics`` and
``verifyd report`` then show the demo's accounts because they read the same rows.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from verifyd.demo import DemoFailure
from verifyd.liveserver import LiveServer
from verifyd.settings import Settings

#: The address LiveServer listens on, and so the one proxy the private server trusts.
HOST = "127.0.0.1"


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


@contextmanager
def private_server(app: Any) -> Iterator[LiveServer]:
    """Serve ``app`` on 127.0.0.1 and a free port while the block runs.

    Raises:
        DemoFailure: the app did not start (its lifespan failed) within 30 s.
    """
    server = LiveServer(app)
    try:
        server.start()
    except RuntimeError as exc:
        raise DemoFailure(f"the demo's server did not start: {exc}") from exc
    try:
        yield server
    finally:
        # A server that crashed mid-run already failed the run through its answers.
        server.stop(raise_errors=False)
