"""POST /v1/accounts: the answer's shape, validation, delivery, reads, limits, enumeration."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from support.api import latest_code, sandbox_messages, set_policy, signup
from verifyd.settings import Settings

ACCOUNT_FIELDS = {"id", "status", "phone", "email", "policy_version", "arm", "created_at"}
VERIFICATION_FIELDS = {
    "id",
    "channel",
    "status",
    "to",
    "expires_at",
    "attempts_left",
    "resend_available_at",
    "delivery",
}
REAL_MOBILE = "+1 415 555 2671"  # NANP: FIXED_LINE_OR_MOBILE, must not be blocked


def assert_problem(
    r: httpx.Response, status: int, code: str, field: str | None = None
) -> dict[str, Any]:
    """An RFC 9457 problem with a stable code (and the offending field, if given)."""
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = r.json()
    assert {"type", "title", "status", "detail", "code"} <= set(body)
    assert body["status"] == status and body["code"] == code
    assert body["title"] and body["detail"] and body["type"]
    if field is not None:
        assert field in [e["field"] for e in body["errors"]], body
    return body


def when(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def wait_for(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


# ---------------------------------------------------------------- the 201


def test_phone_signup_answer_matches_design(client: TestClient) -> None:
    version = client.get("/v1/policy").json()["policy_version"]
    r = client.post("/v1/accounts", json={"phone": "+1 202 555 0142"})
    assert r.status_code == 201, r.text
    body = r.json()
    assert set(body) == {"account", "verifications"}
    account = body["account"]
    assert set(account) == ACCOUNT_FIELDS
    assert account["id"].startswith("acc_") and len(account["id"]) >= 4 + 16
    assert r.headers["location"] == f"/v1/accounts/{account['id']}"
    assert account["status"] == "pending"
    assert account["phone"] == "+1 202-555-••42"
    assert account["email"] is None
    assert (account["policy_version"], account["arm"]) == (version, "phone")
    [ver] = body["verifications"]
    assert set(ver) == VERIFICATION_FIELDS
    assert ver["id"].startswith("ver_") and len(ver["id"]) >= 4 + 16
    assert (ver["channel"], ver["status"], ver["to"]) == ("sms", "pending", "+1 202-555-••42")
    assert ver["attempts_left"] == 5
    assert ver["delivery"] in ("queued", "sent")
    created = when(account["created_at"])
    assert when(ver["expires_at"]) - created == timedelta(minutes=10)
    assert when(ver["resend_available_at"]) - created == timedelta(seconds=30)
    assert "0142" not in r.text  # masked everywhere but the sandbox inbox


def test_email_signup_answer_matches_design(client: TestClient) -> None:
    set_policy(client, "email")
    r = client.post("/v1/accounts", json={"email": "alice@example.test"})
    assert r.status_code == 201, r.text
    account, [ver] = r.json()["account"], r.json()["verifications"]
    assert (account["email"], account["phone"], account["arm"]) == (
        "a•••@example.test",
        None,
        "email",
    )
    assert (ver["channel"], ver["to"], ver["status"]) == ("email", "a•••@example.test", "pending")
    assert when(ver["expires_at"]) - when(account["created_at"]) == timedelta(hours=24)
    assert "alice" not in r.text
    [message] = sandbox_messages(client, "alice@example.test")
    assert message["kind"] == "link" and message["link"].startswith("http://testserver/")


def test_location_header_and_reads(client: TestClient) -> None:
    r = client.post("/v1/accounts", json={"phone": "+1 202 555 0143"})
    created = r.json()
    account = client.get(r.headers["location"])
    assert account.status_code == 200
    assert account.json() == {**created["account"], "verified": {"phone": False, "email": False}}
    ver_id = created["verifications"][0]["id"]
    ver = client.get(f"/v1/verifications/{ver_id}")
    assert ver.status_code == 200
    assert ver.json() == created["verifications"][0]

    code = latest_code(client, "+12025550143")
    assert client.post(f"/v1/verifications/{ver_id}/check", json={"code": code}).status_code == 200
    after = client.get(r.headers["location"]).json()
    assert after["status"] == "active"
    assert after["verified"] == {"phone": True, "email": False}
    read = client.get(f"/v1/verifications/{ver_id}").json()
    assert (read["status"], read["attempts_left"]) == ("approved", 4)


def test_unknown_ids_are_404(client: TestClient) -> None:
    assert_problem(client.get("/v1/accounts/acc_nope"), 404, "account_not_found")
    assert_problem(client.get("/v1/verifications/ver_nope"), 404, "verification_not_found")


def test_each_signup_gets_fresh_ids(client: TestClient) -> None:
    a = signup(client, phone="+1 202 555 0144")
    b = signup(client, phone="+1 202 555 0144")
    assert a["account"]["id"] != b["account"]["id"]
    assert a["verifications"][0]["id"] != b["verifications"][0]["id"]


# ---------------------------------------------------------------- validation


def test_invalid_phones(client: TestClient) -> None:
    for phone in ("not a number", "+1 202 555 01", "+999 123", "12025550142x", ""):
        r = client.post("/v1/accounts", json={"phone": phone})
        assert_problem(r, 422, "invalid_phone", "phone")


def test_invalid_emails(client: TestClient) -> None:
    set_policy(client, "email")
    for email in ("no-at-sign", "a@b", "@example.com", "a@localhost", ""):
        r = client.post("/v1/accounts", json={"email": email})
        assert_problem(r, 422, "invalid_email", "email")


def test_blocked_number_types(client: TestClient) -> None:
    # toll-free, UK fixed line, US premium rate
    for phone in ("+1 800 253 0000", "+44 20 7946 0958", "+1 900 253 0000"):
        r = client.post("/v1/accounts", json={"phone": phone})
        assert_problem(r, 422, "number_type_blocked", "phone")


def test_real_nanp_mobile_is_accepted_and_printed_by_the_console(
    client: TestClient, capfd: pytest.CaptureFixture[str]
) -> None:
    created = signup(client, phone=REAL_MOBILE)
    ver = created["verifications"][0]
    assert created["account"]["phone"] == "+1 415-555-••71"

    def sent() -> bool:
        return client.get(f"/v1/verifications/{ver['id']}").json()["delivery"] == "sent"

    wait_for(sent)
    out = capfd.readouterr().out
    assert "+14155552671" in out
    assert "verification code" in out.lower()
    # A real destination never lands in the sandbox inbox.
    assert sandbox_messages(client, "+14155552671") == []


def test_real_email_goes_to_the_console(
    client: TestClient, capfd: pytest.CaptureFixture[str]
) -> None:
    set_policy(client, "email")
    created = signup(client, email="carol@example.com")
    ver = created["verifications"][0]
    wait_for(lambda: client.get(f"/v1/verifications/{ver['id']}").json()["delivery"] == "sent")
    out = capfd.readouterr().out
    assert "carol@example.com" in out
    assert "http://testserver/v1/email/verify?token=" in out
    assert sandbox_messages(client, "carol@example.com") == []


def test_country_allow_list(
    make_settings: Callable[..., Settings], make_client: Callable[[Settings], TestClient]
) -> None:
    client = make_client(make_settings(allowed_countries=["US"]))
    r = client.post("/v1/accounts", json={"phone": "+33 6 12 34 56 78"})
    assert_problem(r, 422, "country_not_allowed", "phone")
    signup(client, phone=REAL_MOBILE)
    signup(client, phone="+44 7700 900123")  # sandbox: no country check


def test_malformed_bodies_are_invalid_request(client: TestClient) -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"phone": 12025550142}, "phone"),  # a number, not a string
        ({"phone": "+1 202 555 0142", "arm": "email"}, "arm"),  # the arm is never the client's
        ({"phone": "+1 202 555 0142", "bogus": 1}, "bogus"),
        ({"phone": ["+1 202 555 0142"]}, "phone"),
        ({"phone": "+1 202 555 0142", "subject": 7}, "subject"),
    ]
    for body, field in cases:
        assert_problem(client.post("/v1/accounts", json=body), 422, "invalid_request", field)
    assert sandbox_messages(client, "+12025550142") == []


def test_non_object_bodies_are_problems(client: TestClient) -> None:
    for content in (b"not json", b"[]", b'"phone"', b"", b"{"):
        r = client.post(
            "/v1/accounts", content=content, headers={"content-type": "application/json"}
        )
        assert_problem(r, 422, "invalid_request")


def test_redirect_allow_list(client: TestClient) -> None:
    refused = (
        "https://evil.example/welcome",
        "https://app.example.com/other",
        "https://app.example.com/welcomex",
        "https://app.example.com.evil.example/welcome",
        "https://app.example.com@evil.example/welcome",
        "http://app.example.com/welcome",
        "https://app.example.com:8443/welcome",
        "javascript:alert(1)",
        "//app.example.com/welcome",
        "/welcome",
    )
    for url in refused:
        r = client.post("/v1/accounts", json={"phone": "+1 202 555 0142", "redirect_url": url})
        assert_problem(r, 422, "redirect_not_allowed", "redirect_url")
    assert sandbox_messages(client, "+12025550142") == []
    allowed = (
        "https://app.example.com/welcome",
        "https://app.example.com/welcome/step-2?from=signup",
        "https://APP.example.com/welcome",
    )
    for url in allowed:
        signup(client, phone="+1 202 555 0142", redirect_url=url)


# ---------------------------------------------------------------- sandbox off


def test_sandbox_off(
    make_settings: Callable[..., Settings], make_client: Callable[[Settings], TestClient]
) -> None:
    client = make_client(make_settings(sandbox=False))
    assert_problem(
        client.get("/v1/sandbox/messages", params={"to": "+12025550142"}), 404, "not_found"
    )
    r = client.post("/v1/accounts", json={"phone": "+1 999 555 0199"})
    assert_problem(r, 422, "invalid_phone", "phone")
    r = client.post("/v1/accounts", json={"phone": "+44 7700 900123"})
    assert_problem(r, 422, "invalid_phone", "phone")
    set_policy(client, "email")
    r = client.post("/v1/accounts", json={"email": "alice@example.test"})
    assert_problem(r, 422, "invalid_email", "email")


def test_sandbox_off_fictional_nanp_number_is_invalid(
    make_settings: Callable[..., Settings], make_client: Callable[[Settings], TestClient]
) -> None:
    client = make_client(make_settings(sandbox=False))
    r = client.post("/v1/accounts", json={"phone": "+1 202 555 0142"})
    assert_problem(r, 422, "invalid_phone", "phone")


# ---------------------------------------------------------------- rate limits


def test_signups_per_ip(
    make_settings: Callable[..., Settings], make_client: Callable[[Settings], TestClient]
) -> None:
    client = make_client(make_settings(signups_per_ip_per_hour=2, sandbox_limit_multiplier=2))
    signup(client, phone="+1 415 555 2671")
    signup(client, phone="+1 415 555 2672")
    r = client.post("/v1/accounts", json={"phone": "+1 415 555 2673"})
    body = assert_problem(r, 429, "rate_limited")
    assert 1 <= int(r.headers["retry-after"]) <= 3600, body
    # Sandbox signups count in their own bucket (2 x 2 here), so a load test is not throttled
    # by the real traffic's limit, but they are limited too.
    for n in range(4):
        signup(client, phone=f"+1 202 555 01{n:02d}")
    r = client.post("/v1/accounts", json={"phone": "+1 202 555 0150"})
    assert_problem(r, 429, "rate_limited")
    assert "retry-after" in r.headers


def test_sends_per_destination(
    make_settings: Callable[..., Settings], make_client: Callable[[Settings], TestClient]
) -> None:
    client = make_client(
        make_settings(sends_per_destination_per_hour=2, sandbox_limit_multiplier=3)
    )
    signup(client, phone=REAL_MOBILE)
    signup(client, phone=REAL_MOBILE)
    r = client.post("/v1/accounts", json={"phone": REAL_MOBILE})
    assert_problem(r, 429, "rate_limited")
    assert 1 <= int(r.headers["retry-after"]) <= 3600
    signup(client, phone="+1 415 555 2672")  # another destination is not limited
    for _ in range(6):  # the sandbox destination's bucket is 2 x 3
        signup(client, phone="+1 202 555 0142")
    assert len(sandbox_messages(client, "+12025550142")) == 6
    r = client.post("/v1/accounts", json={"phone": "+1 202 555 0142"})
    assert_problem(r, 429, "rate_limited")
    assert len(sandbox_messages(client, "+12025550142")) == 6


# ---------------------------------------------------------------- enumeration


@pytest.fixture
def fixed_code_client(
    make_settings: Callable[..., Settings], make_client: Callable[[Settings], TestClient]
) -> TestClient:
    """Sandbox destinations all get code 4242, so 'the code it would have had' is known."""
    return make_client(make_settings(sandbox_fixed_code="4242", sms_resend_cooldown_seconds=0))


def test_signup_for_an_active_phone_looks_normal_and_sends_nothing(
    fixed_code_client: TestClient,
) -> None:
    client = fixed_code_client
    owner = signup(client, phone="+1 202 555 0142")
    ver_id = owner["verifications"][0]["id"]
    r = client.post(f"/v1/verifications/{ver_id}/check", json={"code": "4242"})
    assert r.status_code == 200 and r.json()["account"]["status"] == "active"
    assert len(sandbox_messages(client, "+12025550142")) == 1

    fresh = client.post("/v1/accounts", json={"phone": "+1 202 555 0177"})
    again = client.post("/v1/accounts", json={"phone": "+1 202 555 0142"})
    assert again.status_code == fresh.status_code == 201
    assert again.headers["location"] == f"/v1/accounts/{again.json()['account']['id']}"
    a, f = again.json(), fresh.json()
    assert set(a) == set(f)
    assert set(a["account"]) == set(f["account"]) and a["account"]["status"] == "pending"
    [av], [fv] = a["verifications"], f["verifications"]
    assert {
        k: v for k, v in av.items() if k not in ("id", "to", "expires_at", "resend_available_at")
    } == {k: v for k, v in fv.items() if k not in ("id", "to", "expires_at", "resend_available_at")}
    assert a["account"]["id"] != owner["account"]["id"] and av["id"] != ver_id
    assert len(sandbox_messages(client, "+12025550142")) == 1  # nothing sent

    # Reads look like any pending account and verification.
    acc = client.get(f"/v1/accounts/{a['account']['id']}").json()
    other = client.get(f"/v1/accounts/{f['account']['id']}").json()
    assert acc["status"] == other["status"] == "pending"
    assert acc["verified"] == other["verified"] == {"phone": False, "email": False}
    ver = client.get(f"/v1/verifications/{av['id']}").json()
    other_ver = client.get(f"/v1/verifications/{fv['id']}").json()
    assert (ver["status"], ver["delivery"], ver["attempts_left"]) == (
        other_ver["status"],
        other_ver["delivery"],
        other_ver["attempts_left"],
    )

    # A resend answers like a real one and still sends nothing.
    resent = client.post(f"/v1/verifications/{av['id']}/resend")
    assert resent.status_code == 202, resent.text
    assert len(sandbox_messages(client, "+12025550142")) == 1

    # No code ever activates it: not the code a real verification would have had, nor any.
    for code in ("4242", "0000", "1234", "9999", "4242"):
        r = client.post(f"/v1/verifications/{av['id']}/check", json={"code": code})
        assert r.status_code in (409, 422), r.text
    final = client.get(f"/v1/accounts/{a['account']['id']}").json()
    assert final["status"] == "pending" and final["verified"]["phone"] is False


def test_signup_for_an_active_email_sends_no_link(client: TestClient) -> None:
    set_policy(client, "email")
    owner = signup(client, email="owner@example.test")
    token = sandbox_messages(client, "owner@example.test")[0]["link"].split("token=", 1)[1]
    r = client.post("/v1/email/verify", json={"token": token})
    assert r.status_code == 200 and r.json()["account"]["status"] == "active"
    again = signup(client, email="Owner@Example.test")
    assert again["account"]["status"] == "pending"
    assert again["verifications"][0]["status"] == "pending"
    assert len(sandbox_messages(client, "owner@example.test")) == 1
    assert client.get(f"/v1/accounts/{again['account']['id']}").json()["status"] == "pending"
    assert client.get(f"/v1/accounts/{owner['account']['id']}").json()["status"] == "active"


def test_two_pending_signups_only_one_activates(client: TestClient) -> None:
    first = signup(client, phone="+1 202 555 0142")
    first_code = latest_code(client, "+12025550142")
    second = signup(client, phone="+1 202 555 0142")
    second_code = latest_code(client, "+12025550142")
    v1, v2 = first["verifications"][0]["id"], second["verifications"][0]["id"]
    r = client.post(f"/v1/verifications/{v2}/check", json={"code": second_code})
    assert r.status_code == 200 and r.json()["account"]["status"] == "active"
    r = client.post(f"/v1/verifications/{v1}/check", json={"code": first_code})
    assert_problem(r, 409, "verification_closed")
    assert client.get(f"/v1/accounts/{first['account']['id']}").json()["status"] == "pending"
