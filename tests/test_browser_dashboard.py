"""The operator dashboard in headless Chromium: log in, switch the policy, read the charts."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, Request

from support.browser import chromium, log_in, screenshot_path, serve_at_own_url
from support.liveserver import LiveServer
from verifyd.app import create_app
from verifyd.settings import Settings

pytestmark = [
    pytest.mark.browser,
    pytest.mark.parametrize("database_url", ["sqlite"], indirect=True),
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One headless Chromium for the module."""
    with chromium() as launched:
        yield launched


@pytest.fixture
def verifyd(make_settings: Callable[..., Settings]) -> Iterator[LiveServer]:
    """verifyd served for real at its own address, with a little login headroom."""
    with serve_at_own_url(
        lambda base_url: create_app(
            make_settings(public_base_url=base_url, admin_login_attempts_per_ip=5)
        )
    ) as server:
        yield server


@pytest.fixture
def api(verifyd: LiveServer) -> Iterator[httpx.Client]:
    """An HTTP client on the live server."""
    with httpx.Client(base_url=verifyd.base_url, timeout=10) as client:
        yield client


@pytest.fixture
def admin_key(verifyd: LiveServer) -> str:
    """A fresh admin key, made the way ``verifyd admin-key create`` makes one."""
    app: Any = verifyd.app
    key, _ = app.app.state.runtime.admin_keys.create("operator", "cli:test")
    return str(key)


class Watched:
    """A page, and every request it made and console complaint it got."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.requests: list[str] = []
        self.console: list[str] = []
        page.on("request", self._request)
        page.on("console", self._console)

    def _request(self, request: Request) -> None:
        self.requests.append(request.url)

    def _console(self, message: ConsoleMessage) -> None:
        # A refused login's 401 is reported too; only what the CSP blocked counts here.
        if "Content Security Policy" in message.text or "Refused to" in message.text:
            self.console.append(message.text)


@pytest.fixture
def watched(browser: Browser, verifyd: LiveServer) -> Iterator[Watched]:
    """A fresh context and page; at the end, nothing it loaded came from elsewhere."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(10_000)
    w = Watched(context.new_page())
    yield w
    context.close()
    foreign = [u for u in w.requests if not u.startswith(f"{verifyd.base_url}/")]
    assert not foreign, foreign
    assert not w.console, w.console  # a CSP violation is reported here


def test_log_in_switch_the_policy_and_see_it_in_force(
    verifyd: LiveServer, api: httpx.Client, admin_key: str, watched: Watched
) -> None:
    page, base = watched.page, verifyd.base_url
    page.goto(f"{base}/admin/login")
    page.fill("#key", "vdk_wrong_key")
    with page.expect_navigation():
        page.click("#sign-in")
    assert "not a valid admin key" in page.locator("#error").inner_text()
    page.screenshot(path=screenshot_path("dashboard-login-refused"), full_page=True)

    log_in(page, base, admin_key)
    cookies = {c["name"]: c for c in page.context.cookies()}
    session = cookies["verifyd_admin"]
    assert session["httpOnly"] and session["sameSite"] == "Strict" and session["path"] == "/admin"
    # No script can read it.
    assert "verifyd_admin" not in page.evaluate("document.cookie")

    assert api.get("/v1/policy").json()["mode"] == "phone"
    page.click("text=Policy")
    page.check("#mode-split")
    page.fill("#weight_phone", "25")
    page.fill("#weight_email", "75")
    page.fill("#experiment", "browser-test")
    with page.expect_navigation():
        page.click("#review")
    diff = page.locator("#diff").inner_text()
    assert "mode" in diff and "split" in diff and "weights" in diff
    page.screenshot(path=screenshot_path("dashboard-policy-confirm"), full_page=True)
    assert api.get("/v1/policy").json()["mode"] == "phone"  # not before the confirmation

    with page.expect_navigation():
        page.click("#confirm")
    assert "is in force" in page.locator("#changed").inner_text()
    assert api.get("/v1/policy").json()["mode"] == "split"
    auth = {"authorization": f"Bearer {admin_key}"}
    policy = api.get("/v1/admin/policy", headers=auth).json()
    assert (policy["weights"], policy["changed_by"]) == ({"phone": 25, "email": 75}, "key:operator")
    assert page.locator("#current-mode").inner_text() == "split"
    assert page.locator("#history tbody tr").count() == 2
    page.screenshot(path=screenshot_path("dashboard-policy"), full_page=True)

    with page.expect_navigation():
        page.click("#logout")
    assert page.url == f"{base}/admin/login"
    page.goto(f"{base}/admin")
    assert page.url == f"{base}/admin/login"  # the session ended with the logout


def _seed(api: httpx.Client, key: str) -> int:
    """A 50/50 split with exposures, signups, verifications and labels in both arms."""
    auth = {"authorization": f"Bearer {key}"}
    r = api.put(
        "/v1/admin/policy",
        json={"mode": "split", "weights": {"phone": 50, "email": 50}, "experiment": "seeded"},
        headers=auth,
    )
    assert r.status_code == 200, r.text
    version: int = r.json()["version"]
    labels = []
    for i in range(40):
        subject = f"visitor-{i}"
        arm = api.get("/v1/policy", params={"subject": subject}).json()["arm"]
        if i % 5 == 4:
            continue  # saw the form, never submitted
        body: dict[str, Any] = {"subject": subject}
        if arm == "phone":
            body["phone"] = f"+1202555{100 + i:04d}"
        else:
            body["email"] = f"visitor{i}@example.test"
        r = api.post("/v1/accounts", json=body)
        assert r.status_code == 201, r.text
        created = r.json()
        account, verification = created["account"]["id"], created["verifications"][0]["id"]
        to = body.get("phone") or body["email"]
        (message, *_) = api.get("/v1/sandbox/messages", params={"to": to}).json()["messages"]
        if i % 3 == 0:
            continue  # never verified
        if arm == "phone":
            r = api.post(f"/v1/verifications/{verification}/check", json={"code": message["code"]})
        else:
            token = message["link"].split("token=", 1)[1]
            r = api.post("/v1/email/verify", data={"token": token}, follow_redirects=False)
        assert r.status_code in (200, 303), r.text
        labels.append({"account_id": account, "label": "fake" if i % 4 == 0 else "genuine"})
    r = api.post("/v1/admin/labels", json={"labels": labels}, headers=auth)
    assert r.status_code == 200, r.text
    return version


def _cells(page: Page, arm: str) -> list[str]:
    return page.locator(f'#arms tr[data-arm="{arm}"] td').all_inner_texts()


def test_the_charts_render_with_seeded_data_and_agree_with_the_api(
    verifyd: LiveServer, api: httpx.Client, admin_key: str, watched: Watched
) -> None:
    version = _seed(api, admin_key)
    page = watched.page
    log_in(page, verifyd.base_url, admin_key)
    assert f"Policy version {version}" in page.locator("#section-title").inner_text()

    auth = {"authorization": f"Bearer {admin_key}"}
    stats = api.get("/v1/admin/stats", params={"policy_version": version}, headers=auth).json()
    (shown,) = stats["versions"]
    for arm in shown["arms"]:
        cells = _cells(page, arm["arm"])
        assert cells[0] == arm["arm"]
        assert [int(c.replace(",", "")) for c in cells[1:5]] == [
            arm["exposures"],
            arm["signups"],
            arm["blocked"]["total"],
            arm["conversion"]["count"],
        ]
        assert cells[9].startswith(f"{arm['labels']['fake_verified']} of ")
    verdict = page.locator("#verdict li").all_inner_texts()
    assert verdict == shown["comparison"]["verdict"]

    for chart in ("funnel", "ttv", "cost", "conversion", "suspect", "fake"):
        svg = page.locator(f"#chart-{chart} svg")
        assert svg.count() == 1, chart
        box = svg.bounding_box()
        assert box is not None and box["width"] > 200 and box["height"] > 50, (chart, box)
        # Something was drawn: a shape per arm at least, and text naming both arms.
        assert svg.locator("rect, line, circle, path").count() >= 2, chart
        text = svg.text_content() or ""
        assert re.search("phone", text) and re.search("email", text), (chart, text)
    page.screenshot(path=screenshot_path("dashboard-comparison"), full_page=True)

    page.goto(f"{verifyd.base_url}/admin?version=abc")
    assert "not a policy version" in page.locator("#error").inner_text()
