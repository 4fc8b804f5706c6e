"""The email link: the confirm page (GET/HEAD) and the confirmation (POST form or JSON)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from support.api import runtime, sandbox_messages, set_policy, signup
from verifyd.models import Verification, table_of, utcnow
from verifyd.settings import Settings

BASE = "https://verify.example.org"
ALLOWED = ["https://app.example.com/welcome", "http://127.0.0.1:9/back"]


class _Page(HTMLParser):
    """The parts of a page these tests look at: forms, their inputs, scripts, text."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.forms: list[dict[str, Any]] = []
        self.scripts = 0
        self.text: list[str] = []
        self.result: dict[str, str | None] = {}
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "script":
            self.scripts += 1
        elif tag == "form":
            self.forms.append({**a, "inputs": {}, "buttons": 0})
        elif tag == "input" and self.forms:
            self.forms[-1]["inputs"][a.get("name")] = a
        elif tag == "button" and self.forms:
            self.forms[-1]["buttons"] += 1
        if a.get("id") == "result":
            self.result = a

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    @property
    def all_text(self) -> str:
        return " ".join(self.text)


def _csp(response: Any) -> dict[str, list[str]]:
    directives: dict[str, list[str]] = {}
    for part in response.headers["content-security-policy"].split(";"):
        name, *values = part.split()
        directives[name] = values
    return directives


def _assert_page_headers(response: Any) -> None:
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert _csp(response)["default-src"] == ["'none'"]


@pytest.fixture
def email_client(
    make_settings: Callable[..., Settings], make_client: Callable[[Settings], TestClient]
) -> TestClient:
    """The app with a public base URL that is not the test client's host, policy ``email``."""
    client = make_client(make_settings(public_base_url=BASE, redirect_allowlist=ALLOWED))
    set_policy(client, "email")
    return client


def _signup_link(client: TestClient, email: str, **body: Any) -> tuple[dict[str, Any], str]:
    """Sign up by email; the created body and the link the sandbox delivered."""
    created = signup(client, email=email, **body)
    [message] = sandbox_messages(client, email)
    assert message["kind"] == "link"
    link: str = message["link"]
    return created, link


def _token(link: str) -> str:
    [token] = parse_qs(urlsplit(link).query)["token"]
    return token


def _account(client: TestClient, created: dict[str, Any]) -> dict[str, Any]:
    r = client.get(f"/v1/accounts/{created['account']['id']}")
    assert r.status_code == 200, r.text
    account: dict[str, Any] = r.json()
    return account


def _verification(client: TestClient, created: dict[str, Any]) -> dict[str, Any]:
    r = client.get(f"/v1/verifications/{created['verifications'][0]['id']}")
    assert r.status_code == 200, r.text
    verification: dict[str, Any] = r.json()
    return verification


def _expire(client: TestClient, verification_id: str) -> None:
    v = table_of(Verification)
    with runtime(client).db.write() as conn:
        conn.execute(
            update(v)
            .where(v.c.id == verification_id)
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )


# ---------------------------------------------------------------- the confirm page


def test_get_and_head_show_a_form_and_never_consume_the_token(email_client: TestClient) -> None:
    client = email_client
    created, link = _signup_link(client, "scanner@example.test")
    token = _token(link)
    before = _verification(client, created)

    for _ in range(3):  # a mail scanner may open the link several times
        page = client.get(link.removeprefix(BASE))
        assert page.status_code == 200
        _assert_page_headers(page)
        parsed = _Page(page.text)
        assert parsed.scripts == 0 and "<script" not in page.text.lower()
        [form] = parsed.forms
        assert form["method"].lower() == "post"
        assert form["action"] == f"{BASE}/v1/email/verify"
        assert form["inputs"]["token"]["value"] == token
        assert form["inputs"]["token"]["type"] == "hidden"
        assert form["buttons"] == 1
        csp = _csp(page)
        # The form's own target, and the redirect origins the 303 may lead to.
        assert {BASE, "https://app.example.com", "http://127.0.0.1:9"} <= set(csp["form-action"])
        assert "'unsafe-inline'" not in csp.get("script-src", [])

    head = client.head("/v1/email/verify", params={"token": token})
    assert head.status_code == 200
    assert head.content == b""
    _assert_page_headers(head)
    assert head.headers["content-security-policy"] == page.headers["content-security-policy"]

    assert _account(client, created)["status"] == "pending"
    assert _verification(client, created) == before  # no attempt used, nothing changed

    r = client.post("/v1/email/verify", data={"token": token})
    assert r.status_code == 200, r.text
    assert _account(client, created)["status"] == "active"


def test_the_link_comes_from_public_base_url_never_from_host(email_client: TestClient) -> None:
    client = email_client
    r = client.post(
        "/v1/accounts", json={"email": "host@example.test"}, headers={"Host": "evil.example"}
    )
    assert r.status_code == 201, r.text
    [message] = sandbox_messages(client, "host@example.test")
    assert message["link"].startswith(f"{BASE}/v1/email/verify?token=")
    assert "evil.example" not in message["body"]

    page = client.get(
        "/v1/email/verify",
        params={"token": _token(message["link"])},
        headers={"Host": "evil.example"},
    )
    assert page.status_code == 200
    [form] = _Page(page.text).forms
    assert form["action"] == f"{BASE}/v1/email/verify"
    assert "evil.example" not in page.text


def test_form_action_allows_only_verifyd_without_an_allow_list(
    make_settings: Callable[..., Settings], make_client: Callable[[Settings], TestClient]
) -> None:
    client = make_client(make_settings(public_base_url=BASE, redirect_allowlist=[]))
    page = client.get("/v1/email/verify", params={"token": "x"})
    assert page.status_code == 200
    assert sorted(_csp(page)["form-action"]) == sorted(["'self'", BASE])


# ---------------------------------------------------------------- POST, as a form


def test_form_confirm_without_redirect_shows_a_success_page(email_client: TestClient) -> None:
    client = email_client
    created, link = _signup_link(client, "plain@example.test")
    r = client.post("/v1/email/verify", data={"token": _token(link)}, follow_redirects=False)
    assert r.status_code == 200, r.text
    _assert_page_headers(r)
    page = _Page(r.text)
    assert page.result.get("data-status") == "verified"
    assert "confirmed" in page.all_text.lower()
    assert page.scripts == 0
    account = _account(client, created)
    assert account["status"] == "active"
    assert account["verified"] == {"phone": False, "email": True}


@pytest.mark.parametrize(
    ("redirect_url", "expected"),
    [
        ("https://app.example.com/welcome", "https://app.example.com/welcome?status=verified"),
        (
            "https://app.example.com/welcome/next?ref=mail&x=1",
            "https://app.example.com/welcome/next?ref=mail&x=1&status=verified",
        ),
    ],
    ids=["bare", "with-query"],
)
def test_form_confirm_redirects_to_the_signups_redirect_url(
    email_client: TestClient, redirect_url: str, expected: str
) -> None:
    client = email_client
    created, link = _signup_link(client, "redirect@example.test", redirect_url=redirect_url)
    r = client.post("/v1/email/verify", data={"token": _token(link)}, follow_redirects=False)
    assert r.status_code == 303, r.text
    assert r.headers["location"] == expected
    assert _account(client, created)["status"] == "active"


def test_form_confirm_twice_shows_verification_closed(email_client: TestClient) -> None:
    client = email_client
    created, link = _signup_link(client, "twice@example.test")
    token = _token(link)
    assert client.post("/v1/email/verify", data={"token": token}).status_code == 200
    r = client.post("/v1/email/verify", data={"token": token}, follow_redirects=False)
    assert r.status_code == 409
    _assert_page_headers(r)
    page = _Page(r.text)
    assert page.result.get("data-code") == "verification_closed"
    assert "verification_closed" in page.all_text
    assert _account(client, created)["status"] == "active"


def test_a_second_press_after_success_says_the_address_is_already_verified(
    email_client: TestClient,
) -> None:
    client = email_client
    created, link = _signup_link(client, "again@example.test")
    token = _token(link)
    assert client.post("/v1/email/verify", data={"token": token}).status_code == 200
    r = client.post("/v1/email/verify", data={"token": token}, follow_redirects=False)
    assert r.status_code == 409  # the status stays what the JSON answer says
    _assert_page_headers(r)
    page = _Page(r.text)
    assert page.result.get("data-status") == "verified"
    assert "already verified" in page.all_text
    assert "cannot be used" not in page.all_text and "new link" not in page.all_text
    j = client.post("/v1/email/verify", json={"token": token})
    assert (j.status_code, j.json()["verification_status"]) == (409, "approved")
    # A link that really is dead still says so.
    _expire(client, _signup_link(client, "late@example.test")[0]["verifications"][0]["id"])
    late = _token(sandbox_messages(client, "late@example.test")[0]["link"])
    r = client.post("/v1/email/verify", data={"token": late}, follow_redirects=False)
    assert r.status_code == 410 and "new link" in _Page(r.text).all_text


def test_an_expired_link_says_the_link_expired(
    email_client: TestClient,
) -> None:
    client = email_client
    created, link = _signup_link(client, "old@example.test")
    _expire(client, created["verifications"][0]["id"])
    r = client.post("/v1/email/verify", data={"token": _token(link)}, follow_redirects=False)
    assert r.status_code == 410
    page = _Page(r.text)
    assert "the link has expired" in page.all_text
    assert "the code has expired" not in page.all_text


@pytest.mark.parametrize(
    "data",
    [{"token": "not-a-real-token"}, {"token": ""}, {}, {"token": "a" * 500}],
    ids=["unknown", "empty", "missing", "too-long"],
)
def test_form_with_a_bad_token_shows_token_invalid(
    email_client: TestClient, data: dict[str, str]
) -> None:
    client = email_client
    r = client.post("/v1/email/verify", data=data, follow_redirects=False)
    assert 400 <= r.status_code < 500
    _assert_page_headers(r)
    page = _Page(r.text)
    assert page.result.get("data-code") == "token_invalid"
    assert "token_invalid" in page.all_text
    # The form and JSON answers agree on the status.
    j = client.post("/v1/email/verify", json={"token": "not-a-real-token"})
    assert j.status_code == r.status_code


def test_form_with_an_expired_token_shows_code_expired(email_client: TestClient) -> None:
    client = email_client
    created, link = _signup_link(client, "late@example.test")
    _expire(client, created["verifications"][0]["id"])
    for _ in range(2):  # the first answer marks it expired; the next says the same
        r = client.post("/v1/email/verify", data={"token": _token(link)}, follow_redirects=False)
        assert r.status_code == 410
        _assert_page_headers(r)
        assert _Page(r.text).result.get("data-code") == "code_expired"
    assert _verification(client, created)["status"] == "expired"
    assert _account(client, created)["status"] == "pending"


# ---------------------------------------------------------------- POST, as JSON


def test_json_confirm_answers_approved(email_client: TestClient) -> None:
    client = email_client
    created, link = _signup_link(client, "json@example.test", redirect_url=ALLOWED[0])
    r = client.post("/v1/email/verify", json={"token": _token(link)}, follow_redirects=False)
    assert r.status_code == 200, r.text  # JSON never redirects
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert body["status"] == "approved"
    assert body["verification"]["id"] == created["verifications"][0]["id"]
    assert body["verification"]["status"] == "approved"
    assert body["verification"]["channel"] == "email"
    assert body["account"]["id"] == created["account"]["id"]
    assert body["account"]["status"] == "active"
    assert "json@example.test" not in r.text  # masked
    assert _account(client, created)["status"] == "active"


def _problem(r: Any, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = r.json()
    assert body["status"] == status and body["code"] == code
    assert body["title"] and body["detail"]
    return body


def test_json_failures_are_problems(email_client: TestClient) -> None:
    client = email_client
    created, link = _signup_link(client, "jfail@example.test")
    token = _token(link)

    r = client.post("/v1/email/verify", json={"token": "nope"})
    assert 400 <= r.status_code < 500
    _problem(r, r.status_code, "token_invalid")

    assert client.post("/v1/email/verify", json={"token": token}).status_code == 200
    body = _problem(
        client.post("/v1/email/verify", json={"token": token}), 409, "verification_closed"
    )
    assert body["verification_status"] == "approved"

    other, other_link = _signup_link(client, "jlate@example.test")
    _expire(client, other["verifications"][0]["id"])
    _problem(
        client.post("/v1/email/verify", json={"token": _token(other_link)}), 410, "code_expired"
    )


@pytest.mark.parametrize(
    "content",
    [b'{"token": 5}', b'{"token": null}', b"{}", b'{"token": "x", "extra": 1}', b"{nope"],
    ids=["number", "null", "missing", "extra-field", "not-json"],
)
def test_json_with_a_malformed_body_is_invalid_request(
    email_client: TestClient, content: bytes
) -> None:
    r = email_client.post(
        "/v1/email/verify", content=content, headers={"Content-Type": "application/json"}
    )
    _problem(r, 422, "invalid_request")


# ---------------------------------------------------------------- logs


def test_the_token_never_reaches_the_access_log(
    email_client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    client = email_client
    _, link = _signup_link(client, "logs@example.test")
    token = _token(link)
    caplog.set_level(logging.DEBUG)  # every logger of the app, at every level
    caplog.clear()
    assert client.get(link.removeprefix(BASE)).status_code == 200
    assert client.head(link.removeprefix(BASE)).status_code == 200
    assert client.post("/v1/email/verify", data={"token": token}).status_code == 200
    access = [rec.getMessage() for rec in caplog.records if rec.name == "verifyd.access"]
    assert any('"GET /v1/email/verify?[redacted]" 200' in line for line in access), access
    assert any('"HEAD /v1/email/verify?[redacted]" 200' in line for line in access), access
    assert any('"POST /v1/email/verify" 200' in line for line in access), access
    # httpx/httpcore are the test client's side of the wire: they log the URL it sent.
    server_side = [r for r in caplog.records if not r.name.startswith(("httpx", "httpcore"))]
    assert server_side
    for rec in server_side:
        assert token not in rec.getMessage(), rec.name
