"""Urdu and Arabic laid out right to left in a real browser: the confirm page and the email.

Debian's Chromium, driven by Playwright, on a live server (as ``test_browser.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page

from support.browser import AppAtItsOwnUrl, chromium, screenshot_path
from support.liveserver import LiveServer
from verifyd.app import create_app
from verifyd.channels.base import VerificationRef
from verifyd.channels.email import EmailChannel
from verifyd.codes import Secrets
from verifyd.models import utcnow
from verifyd.settings import Settings

pytestmark = pytest.mark.browser


#: locale sent at signup -> (html lang, computed direction, the button's text)
PAGES = {
    "ur-PK": ("ur", "rtl", "میرے ای میل کی تصدیق کریں"),
    "ar-EG": ("ar", "rtl", "تأكيد بريدي الإلكتروني"),
    "en": ("en", "ltr", "Confirm my email"),
}


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One headless Chromium for the module."""
    with chromium() as launched:
        yield launched


@pytest.fixture
def api(make_settings: Callable[..., Settings]) -> Iterator[httpx.Client]:
    """An HTTP client on verifyd served for real, policy ``email``."""
    wrapper = AppAtItsOwnUrl(
        lambda base_url: create_app(
            make_settings(public_base_url=base_url, policy_mode="email", app_name="Example")
        )
    )
    server = LiveServer(wrapper)
    wrapper.server = server
    with server, httpx.Client(base_url=server.base_url, timeout=10) as client:
        yield client


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh page; any console error (a CSP violation, a script) fails the test."""
    context = browser.new_context()
    context.set_default_timeout(10_000)
    tab = context.new_page()
    errors: list[str] = []
    tab.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    yield tab
    context.close()
    assert not errors, errors


def _layout(page: Page) -> dict[str, Any]:
    """What the browser computed: direction, language, and where the button sits."""
    found: dict[str, Any] = page.evaluate(
        """() => {
            const button = document.querySelector('#confirm');
            const form = button.closest('form').getBoundingClientRect();
            const box = button.getBoundingClientRect();
            return {
                lang: document.documentElement.lang,
                direction: getComputedStyle(document.body).direction,
                headingDirection: getComputedStyle(document.querySelector('h1')).direction,
                fromLeft: box.left - form.left,
                fromRight: form.right - box.right,
            };
        }"""
    )
    return found


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("locale", list(PAGES))
def test_the_confirm_page_lays_out_in_the_signups_direction_and_confirms(
    api: httpx.Client, page: Page, locale: str
) -> None:
    lang, direction, label = PAGES[locale]
    email = f"{lang}@example.test"
    r = api.post("/v1/accounts", json={"email": email, "locale": locale})
    assert r.status_code == 201, r.text
    account_id = r.json()["account"]["id"]
    [message] = api.get("/v1/sandbox/messages", params={"to": email}).json()["messages"]

    response = page.goto(message["link"])
    assert response is not None and response.status == 200
    layout = _layout(page)
    assert (layout["lang"], layout["direction"], layout["headingDirection"]) == (
        lang,
        direction,
        direction,
    )
    # The layout follows: the button starts at the form's right edge in RTL, left in LTR.
    start, end = ("fromRight", "fromLeft") if direction == "rtl" else ("fromLeft", "fromRight")
    assert abs(layout[start]) < 1 and layout[end] > 50, layout
    button = page.locator("#confirm")
    assert button.is_visible() and button.inner_text() == label
    page.screenshot(path=screenshot_path(f"email-confirm-{lang}"), full_page=True)

    with page.expect_navigation():
        button.click()
    result = page.locator("#result")
    assert result.get_attribute("data-status") == "verified"
    assert page.evaluate("getComputedStyle(document.body).direction") == direction
    assert page.evaluate("document.documentElement.lang") == lang
    account = api.get(f"/v1/accounts/{account_id}").json()
    assert account["status"] == "active"


@pytest.mark.parametrize("locale", ["ur", "ar"])
def test_the_html_email_lays_out_right_to_left(page: Page, locale: str) -> None:
    settings = Settings(
        database_url="sqlite:///:memory:",
        secret_key="browser-rtl-secret-0123456789-0123456789",
        public_base_url="https://verify.example.com",
        app_name="Example",
    )
    channel = EmailChannel(settings, Secrets(settings.resolve_secret()))
    now = utcnow()
    ref = VerificationRef(
        id="ver_0123456789abcdef01234567",
        destination="someone@example.com",
        generation=0,
        sandbox=False,
        expires_at=now + timedelta(days=1),
        locale=locale,
    )
    message = channel.render(ref, "msg_1", now)
    assert message.html is not None
    # As a mail client shows it: no network, no script.
    page.route("**/*", lambda route: route.abort())
    page.set_content(message.html)
    found = page.evaluate(
        """() => {
            const wrapper = document.body.firstElementChild;
            const link = [...document.querySelectorAll('a')];
            return {
                direction: getComputedStyle(wrapper).direction,
                align: getComputedStyle(wrapper).textAlign,
                linkLine: getComputedStyle(link[1].parentElement).direction,
                hrefs: link.map(a => a.href),
                images: document.images.length,
                scripts: document.scripts.length,
                sheets: document.styleSheets.length,
            };
        }"""
    )
    assert found == {
        "direction": "rtl",
        "align": "right",
        "linkLine": "ltr",  # the URL reads left to right inside the right-to-left text
        "hrefs": [message.link, message.link],
        "images": 0,
        "scripts": 0,
        "sheets": 0,
    }
    page.screenshot(path=screenshot_path(f"email-{locale}"), full_page=True)
