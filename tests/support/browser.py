"""Debian's Chromium under Playwright, a live app at its own URL, and where screenshots go."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, sync_playwright
from starlette.types import ASGIApp, Receive, Scope, Send

from support.liveserver import LiveServer

CHROMIUM = "/usr/bin/chromium"
#: As root Chromium needs --no-sandbox; the rest stop it reaching the internet at start.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
# Read at import: conftest's autouse fixture clears VERIFYD_* before each test runs.
SKIP_BROWSER = os.environ.get("VERIFYD_TEST_SKIP_BROWSER") == "1"
#: Where the browser tests leave their screenshots (kept after the run: CI's artefacts).
ARTIFACTS = Path(
    os.environ.get("VERIFYD_TEST_ARTIFACTS", Path(__file__).resolve().parents[2] / "artifacts")
)


@contextmanager
def chromium() -> Iterator[Browser]:
    """One headless Chromium; fails (not skips) when it is missing, unless told to skip."""
    if not os.access(CHROMIUM, os.X_OK):
        if SKIP_BROWSER:
            pytest.skip("Chromium not installed and VERIFYD_TEST_SKIP_BROWSER=1")
        pytest.fail(
            f"{CHROMIUM} not found: apt-get install -y chromium "
            "(or set VERIFYD_TEST_SKIP_BROWSER=1 to skip the browser tests knowingly)"
        )
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def log_in(page: Page, base_url: str, key: str) -> None:
    """Open the dashboard, get sent to its login form, sign in with an admin key."""
    page.goto(f"{base_url}/admin")
    assert page.url == f"{base_url}/admin/login"
    page.fill("#key", key)
    with page.expect_navigation():
        page.click("#sign-in")
    assert page.url == f"{base_url}/admin"


def screenshot_path(name: str) -> Path:
    """A path under the artefacts directory for a screenshot called ``name``."""
    path = ARTIFACTS / "screenshots" / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


class AppAtItsOwnUrl:
    """The verifyd app, built on first use, once the server knows its port.

    ``LiveServer`` binds its port in ``start()``; the app's ``public_base_url`` must be that
    address, so the app is built at the lifespan start-up, in the server's thread.
    """

    def __init__(self, build: Callable[[str], ASGIApp]) -> None:
        self.build = build
        self.server: LiveServer | None = None
        self.app: Any = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.app is None:
            assert self.server is not None
            self.app = self.build(self.server.base_url)
        await self.app(scope, receive, send)


@contextmanager
def serve_at_own_url(build: Callable[[str], ASGIApp]) -> Iterator[LiveServer]:
    """Serve ``build(base_url)`` on a loopback port, its base URL its own address."""
    wrapper = AppAtItsOwnUrl(build)
    server = LiveServer(wrapper)
    wrapper.server = server
    with server:
        yield server
