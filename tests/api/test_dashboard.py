"""The dashboard over HTTP: login, its cookie, CSRF, the login limit, policy changes, logout."""

from __future__ import annotations

import re
from collections.abc import Callable
from http.cookies import SimpleCookie

import pytest
from fastapi.testclient import TestClient

from support.api import runtime, set_policy, signup, stats
from support.verify_services import seed_services
from verifyd.app import create_app
from verifyd.settings import Settings

CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def _csrf(html: str) -> str:
    found = CSRF.search(html)
    assert found, html
    return found.group(1)


def _key(client: TestClient, name: str = "ops") -> str:
    key, _ = runtime(client).admin_keys.create(name, "cli:test")
    return key


def _login(client: TestClient, key: str, **headers: str) -> str:
    """Sign in through the form; returns the page the login led to."""
    form = client.get("/admin/login")
    assert form.status_code == 200
    r = client.post(
        "/admin/login",
        data={"key": key, "csrf": _csrf(form.text)},
        headers=headers,
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    assert r.headers["location"] == "/admin"
    return client.get("/admin").text


def _set_cookie(response_headers: list[tuple[str, str]], name: str) -> str:
    for header, value in response_headers:
        if header.lower() == "set-cookie" and value.startswith(f"{name}="):
            return value
    raise AssertionError(f"no Set-Cookie for {name}")


def test_pages_need_a_session(client: TestClient) -> None:
    for path in ("/admin", "/admin/policy"):
        r = client.get(path, follow_redirects=False)
        assert (r.status_code, r.headers["location"]) == (303, "/admin/login")
    r = client.post("/admin/policy", data={"mode": "email"}, follow_redirects=False)
    assert (r.status_code, r.headers["location"]) == (303, "/admin/login")
    assert runtime(client).policies.current().version == 1


def test_login_sets_a_strict_http_only_session_cookie(client: TestClient) -> None:
    form = client.get("/admin/login")
    r = client.post(
        "/admin/login",
        data={"key": _key(client), "csrf": _csrf(form.text)},
        follow_redirects=False,
    )
    assert r.status_code == 303
    cookie = SimpleCookie(_set_cookie(r.headers.multi_items(), "verifyd_admin"))["verifyd_admin"]
    assert cookie["httponly"] and cookie["samesite"] == "strict" and cookie["path"] == "/admin"
    assert not cookie["secure"]  # served over plain HTTP here
    assert len(cookie.value) >= 43
    page = client.get("/admin")
    assert page.status_code == 200 and "key:ops" in page.text
    # The token itself is never stored: only its hash.
    from sqlalchemy import text

    with runtime(client).db.read() as conn:
        stored = conn.execute(text("SELECT token_hash FROM admin_sessions")).scalars().all()
    assert len(stored) == 1 and cookie.value not in stored[0]


def test_cookie_is_secure_behind_https(make_settings: Callable[..., Settings]) -> None:
    app = create_app(make_settings(public_base_url="https://verify.example.com"))
    with TestClient(app, base_url="https://verify.example.com") as client:
        _assert_secure_login(client)


def _assert_secure_login(client: TestClient) -> None:
    form = client.get("/admin/login")
    login_cookie = SimpleCookie(_set_cookie(form.headers.multi_items(), "verifyd_login"))
    assert login_cookie["verifyd_login"]["secure"]
    r = client.post(
        "/admin/login",
        data={"key": _key(client), "csrf": _csrf(form.text)},
        follow_redirects=False,
    )
    cookie = SimpleCookie(_set_cookie(r.headers.multi_items(), "verifyd_admin"))["verifyd_admin"]
    assert cookie["secure"]


def test_wrong_key_is_refused_and_the_login_is_rate_limited(
    make_settings: Callable[..., Settings], make_client: Callable[[Settings], TestClient]
) -> None:
    client = make_client(make_settings(admin_login_attempts_per_ip=3))
    good = _key(client)
    for wrong in ("vdk_nope_nope", "", "x" * 5000):
        form = client.get("/admin/login")
        r = client.post("/admin/login", data={"key": wrong, "csrf": _csrf(form.text)})
        assert r.status_code in (401, 413), r.text
        if r.status_code == 401:
            assert "not a valid admin key" in r.text
    form = client.get("/admin/login")
    r = client.post("/admin/login", data={"key": good, "csrf": _csrf(form.text)})
    # Past the limit even the right key is not looked at: guessing gains nothing.
    assert r.status_code == 429 and int(r.headers["retry-after"]) > 0
    assert "Too many attempts" in r.text
    assert client.get("/admin", follow_redirects=False).status_code == 303


def test_login_without_its_form_token_is_refused(client: TestClient) -> None:
    key = _key(client)
    client.get("/admin/login")
    r = client.post("/admin/login", data={"key": key, "csrf": "forged"})
    assert r.status_code == 403
    fresh = TestClient(client.app)  # no login cookie at all
    r = fresh.post("/admin/login", data={"key": key, "csrf": "x"})
    assert r.status_code == 403
    assert client.get("/admin", follow_redirects=False).status_code == 303


@pytest.mark.parametrize(
    "headers",
    [{"Origin": "https://evil.example"}, {"Sec-Fetch-Site": "cross-site"}],
    ids=["origin", "fetch-metadata"],
)
def test_cross_site_posts_are_refused(client: TestClient, headers: dict[str, str]) -> None:
    key = _key(client)
    form = client.get("/admin/login")
    r = client.post("/admin/login", data={"key": key, "csrf": _csrf(form.text)}, headers=headers)
    assert r.status_code == 403
    page = _login(client, key)
    r = client.post(
        "/admin/policy",
        data={"csrf": _csrf(page), "mode": "both", "confirm": "yes"},
        headers=headers,
    )
    assert r.status_code == 403
    assert runtime(client).policies.current().version == 1


def test_policy_change_is_previewed_then_confirmed(client: TestClient) -> None:
    page = _login(client, _key(client))
    csrf = _csrf(page)
    before = runtime(client).policies.current()
    form = {"csrf": csrf, "mode": "split", "weight_phone": "30", "weight_email": "70"}
    preview = client.post("/admin/policy", data={**form, "experiment": "exp-a"})
    assert preview.status_code == 200
    assert "Switch the policy" in preview.text and "split" in preview.text
    assert "<td>–</td><td>phone 30, email 70</td>" in preview.text  # not a dict's repr
    assert runtime(client).policies.current().version == before.version  # nothing yet
    done = client.post(
        "/admin/policy",
        data={**form, "experiment": "exp-a", "confirm": "yes"},
        follow_redirects=False,
    )
    assert done.status_code == 303
    after = runtime(client).policies.current()
    assert done.headers["location"] == f"/admin/policy?changed={after.version}"
    assert (after.mode, after.weights, after.experiment) == (
        "split",
        {"phone": 30, "email": 70},
        "exp-a",
    )
    assert after.changed_by == "key:ops"
    assert client.get("/v1/policy").json()["mode"] == "split"
    # The code and link knobs were kept, not reset.
    assert after.sms == before.sms and after.email == before.email
    shown = client.get(done.headers["location"]).text
    assert f"Version {after.version} is in force" in shown
    assert "<code>weights</code>: – → phone 30, email 70" in shown  # the history
    assert "{&#39;" not in shown and "{&#39;" not in preview.text
    # the guess bound and the owner's longest wait, as the policy document states them
    assert "1 in 500 per destination per day: at most 20 guesses per number" in shown
    assert "nobody waits more than 240 minutes" in shown


def test_a_form_the_policy_cannot_take_is_shown_again_with_the_reason(
    client: TestClient,
) -> None:
    csrf = _csrf(_login(client, _key(client)))
    cases = [
        ({"mode": "split", "weight_phone": "0", "weight_email": "0"}, "must not all be zero"),
        ({"mode": "split", "weight_phone": "-1", "weight_email": "5"}, "weight_phone"),
        ({"mode": "split", "weight_phone": "١", "weight_email": "5"}, "weight_phone"),
        ({"mode": "sideways"}, "choose one of"),
        ({"mode": "email", "experiment": "no spaces"}, "experiment"),
        ({"mode": "email", "experiment": "x" * 65}, "experiment"),
    ]
    for form, reason in cases:
        r = client.post("/admin/policy", data={"csrf": csrf, "confirm": "yes", **form})
        assert r.status_code == 422, (form, r.status_code)
        assert reason in r.text, (form, r.text)
    assert runtime(client).policies.current().version == 1


def test_logout_ends_the_session_and_revoking_the_key_ends_the_others(
    client: TestClient,
) -> None:
    page = _login(client, _key(client))
    r = client.post("/admin/logout", data={"csrf": _csrf(page)}, follow_redirects=False)
    assert (r.status_code, r.headers["location"]) == (303, "/admin/login")
    assert client.get("/admin", follow_redirects=False).status_code == 303
    other = TestClient(client.app)
    _login(other, _key(client, "second"))
    assert other.get("/admin").status_code == 200
    runtime(client).admin_keys.revoke("second", "cli:test")
    assert other.get("/admin", follow_redirects=False).status_code == 303


def test_a_logout_without_the_form_token_is_refused(client: TestClient) -> None:
    _login(client, _key(client))
    assert client.post("/admin/logout", data={"csrf": "nope"}).status_code == 403
    assert client.get("/admin").status_code == 200


def test_any_process_on_the_database_accepts_the_session(
    settings: Settings, make_client: Callable[[Settings], TestClient]
) -> None:
    first, second = make_client(settings), make_client(settings)
    _login(first, _key(first))
    cookie = first.cookies.get("verifyd_admin")
    assert cookie
    second.cookies.set("verifyd_admin", cookie, path="/admin")
    assert second.get("/admin").status_code == 200


def test_every_page_forbids_scripts_framing_and_foreign_resources(client: TestClient) -> None:
    page = _login(client, _key(client))
    for path in ("/admin", "/admin/policy", "/admin/login"):
        r = client.get(path, follow_redirects=False)
        csp = r.headers["content-security-policy"]
        assert "default-src 'none'" in csp and "style-src 'self'" in csp
        assert "script-src" not in csp and "form-action 'self'" in csp
        assert "frame-ancestors 'none'" in csp
        assert r.headers["cache-control"] == "no-store"
        assert r.headers["x-frame-options"] == "DENY"
    assert "<script" not in page
    css = client.get("/admin/style.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")


def test_the_overview_shows_the_stats_of_the_version_in_force(client: TestClient) -> None:
    version = set_policy(client, "split", weights={"phone": 50, "email": 50})["version"]
    for i in range(12):
        signup(client, phone=f"+1202555{100 + i:04d}", email=f"u{i}@example.test", subject=f"s{i}")
    page = _login(client, _key(client))
    assert f"Policy version {version}" in page
    answer = stats(client, policy_version=version)
    (shown,) = answer["versions"]
    for arm in shown["arms"]:
        row = re.search(rf'<tr data-arm="{arm["arm"]}">(.*?)</tr>', page, re.S)
        assert row, arm["arm"]
        cells = re.findall(r"<td[^>]*>(.*?)</td>", row.group(1), re.S)
        assert cells[2] == f"{arm['signups']:,}"
    assert page.count("<svg") >= 6
    assert "Verdict" in page


@pytest.mark.parametrize(
    "query",
    [
        "version=abc",
        "version=0",
        "version=99999999999",
        "compare=1",
        "compare=x,y",
        "compare=0,1",
        "version=١",
    ],
)
def test_bad_queries_get_a_clear_page_not_a_500(client: TestClient, query: str) -> None:
    _login(client, _key(client))
    r = client.get(f"/admin?{query}")
    assert r.status_code == 422, r.text
    assert 'id="error"' in r.text


def test_an_oversized_form_is_refused_unread(client: TestClient) -> None:
    csrf = _csrf(_login(client, _key(client)))
    r = client.post("/admin/policy", data={"csrf": csrf, "mode": "email", "pad": "x" * 20000})
    assert r.status_code == 413
    assert runtime(client).policies.current().version == 1


def test_the_overview_lists_the_verify_services(client: TestClient) -> None:
    page = _login(client, _key(client))
    assert 'id="services"' not in page
    acme, beta = seed_services(runtime(client).db)
    page = client.get("/admin").text
    assert "Policy version 0" not in page
    rows = re.findall(r'<tr data-service="([^"]*)" data-channel="([^"]*)">(.*?)</tr>', page, re.S)
    assert [(sid, channel) for sid, channel, _ in rows] == [
        (acme.sid, "email"),
        (acme.sid, "sms"),
        (beta.sid, "sms"),
    ]
    cells = re.findall(r"<td[^>]*>(.*?)</td>", rows[1][2], re.S)
    assert cells[1:4] == ["sms", "4", "2"] and cells[5] == "1"
    assert "(deleted)" in rows[2][2] and "(deleted)" not in rows[0][2]
