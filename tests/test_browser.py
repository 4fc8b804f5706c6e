"""The email link in a real browser: Debian's Chromium, driven by Playwright, on a live server."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

from support.browser import AppAtItsOwnUrl, chromium, screenshot_path
from support.liveserver import LiveServer
from verifyd.app import create_app
from verifyd.settings import Settings

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One headless Chromium for the module."""
    with chromium() as launched:
        yield launched


async def _landing(_: Request) -> HTMLResponse:
    return HTMLResponse("<!doctype html><title>app</title><h1 id=landed>back in the app</h1>")


@pytest.fixture
def redirect_target() -> Iterator[LiveServer]:
    """Another origin standing in for the signup frontend a confirmed link returns to."""
    with LiveServer(Starlette(routes=[Route("/back", _landing)])) as server:
        yield server


@pytest.fixture
def verifyd(
    make_settings: Callable[..., Settings], redirect_target: LiveServer
) -> Iterator[LiveServer]:
    """verifyd served for real, its public base URL its own address, policy ``email``."""
    wrapper = AppAtItsOwnUrl(
        lambda base_url: create_app(
            make_settings(
                public_base_url=base_url,
                policy_mode="email",
                redirect_allowlist=[f"{redirect_target.base_url}/back"],
            )
        )
    )
    server = LiveServer(wrapper)
    wrapper.server = server
    with server:
        yield server


@pytest.fixture
def api(verifyd: LiveServer) -> Iterator[httpx.Client]:
    """An HTTP client on the live server."""
    with httpx.Client(base_url=verifyd.base_url, timeout=10) as client:
        yield client


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh browser context and page; CSP violations reported on the console fail the test."""
    context = browser.new_context()
    context.set_default_timeout(10_000)
    tab = context.new_page()
    console: list[str] = []

    def record(message: ConsoleMessage) -> None:
        if message.type in ("error", "warning"):
            console.append(message.text)

    tab.on("console", record)
    yield tab
    context.close()
    assert not [m for m in console if "Content Security Policy" in m], console


def _signup_link(api: httpx.Client, email: str, **body: Any) -> tuple[str, str]:
    """Sign up; the account id and the link the sandbox delivered."""
    r = api.post("/v1/accounts", json={"email": email, **body})
    assert r.status_code == 201, r.text
    messages = api.get("/v1/sandbox/messages", params={"to": email}).json()["messages"]
    link: str = messages[0]["link"]
    return r.json()["account"]["id"], link


def _status(api: httpx.Client, account_id: str) -> str:
    r = api.get(f"/v1/accounts/{account_id}")
    assert r.status_code == 200, r.text
    status: str = r.json()["status"]
    return status


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_open_the_link_then_press_the_button(
    verifyd: LiveServer, api: httpx.Client, page: Page
) -> None:
    assert api.get("/v1/policy").json()["mode"] == "email"
    account_id, link = _signup_link(api, "browser@example.test")
    assert link.startswith(f"{verifyd.base_url}/v1/email/verify?token=")

    response = page.goto(link)
    assert response is not None and response.status == 200
    assert page.locator("h1").inner_text() == "Confirm your email address"
    button = page.locator("form button[type=submit]")
    assert button.is_visible()
    page.screenshot(path=screenshot_path("email-confirm"), full_page=True)
    page.reload()  # a second look (or a mail scanner) consumes nothing
    assert _status(api, account_id) == "pending"

    with page.expect_navigation():
        button.click()
    assert page.locator("#result").get_attribute("data-status") == "verified"
    assert "Email confirmed" in page.locator("h1").inner_text()
    assert _status(api, account_id) == "active"

    page.go_back()  # the confirm page again: pressing the button once more is refused
    with page.expect_navigation():
        page.locator("form button[type=submit]").click()
    assert page.locator("#result").get_attribute("data-code") == "verification_closed"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_button_returns_to_the_allowed_redirect_url(
    verifyd: LiveServer, redirect_target: LiveServer, api: httpx.Client, page: Page
) -> None:
    back = f"{redirect_target.base_url}/back?from=mail"
    account_id, link = _signup_link(api, "redirect@example.test", redirect_url=back)

    page.goto(link)
    assert _status(api, account_id) == "pending"
    with page.expect_navigation(url=f"{back}&status=verified"):
        page.locator("form button[type=submit]").click()
    # A CSP form-action that left out the redirect origin would stop Chromium here.
    assert page.url == f"{back}&status=verified"
    assert page.locator("#landed").inner_text() == "back in the app"
    assert _status(api, account_id) == "active"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_page_works_when_opened_under_another_host_name(
    verifyd: LiveServer, api: httpx.Client, page: Page
) -> None:
    # A proxy or an internal name can serve the page at an origin other than the public
    # base URL the form posts to: form-action must still allow that post.
    account_id, link = _signup_link(api, "alias@example.test")
    page.goto(link.replace("//127.0.0.1:", "//localhost:", 1))
    assert page.url.startswith("http://localhost:")
    with page.expect_navigation():
        page.locator("form button[type=submit]").click()
    assert page.locator("#result").get_attribute("data-status") == "verified"
    assert _status(api, account_id) == "active"
