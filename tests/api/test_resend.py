"""POST /v1/verifications/{id}/resend: a new code or link, the old one dies, attempts stay."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
from fastapi.testclient import TestClient
from sqlalchemy import update

from support.api import latest_code, latest_token, runtime, sandbox_messages, set_policy, signup
from verifyd.models import Verification, table_of, utcnow

PHONE = "+1 202 555 0142"
EMAIL = "resend@example.test"
PROBLEM = "application/problem+json"

_verifications = table_of(Verification)


def check(client: TestClient, verification_id: str, code: str) -> httpx.Response:
    return client.post(f"/v1/verifications/{verification_id}/check", json={"code": code})


def resend(client: TestClient, verification_id: str) -> httpx.Response:
    return client.post(f"/v1/verifications/{verification_id}/resend")


def wrong(code: str) -> str:
    return str((int(code) + 1) % 10 ** len(code)).zfill(len(code))


def assert_problem(r: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith(PROBLEM)
    body: dict[str, Any] = r.json()
    assert body["code"] == code
    return body


def no_cooldown(client: TestClient) -> None:
    # 8 digits: two generations of one verification cannot collide by chance
    set_policy(client, "phone", sms={"resend_cooldown_seconds": 0, "code_length": 8})


def test_resend_sends_a_new_code_and_kills_the_old_one(client: TestClient) -> None:
    no_cooldown(client)
    created = signup(client, phone=PHONE)
    [ver] = created["verifications"]
    old = latest_code(client, PHONE)
    assert_problem(check(client, ver["id"], wrong(old)), 422, "code_incorrect")

    r = resend(client, ver["id"])
    assert r.status_code == 202, r.text
    view = r.json()
    assert view["id"] == ver["id"]
    assert (view["channel"], view["status"]) == ("sms", "pending")
    assert view["to"] == ver["to"] and "0142" not in view["to"]  # still masked
    assert view["attempts_left"] == 4  # the miss before the resend still counts
    assert view["expires_at"] >= ver["expires_at"]

    messages = sandbox_messages(client, PHONE)
    assert len(messages) == 2
    new = messages[0]["code"]
    assert new != old and len(new) == len(old)

    body = assert_problem(check(client, ver["id"], old), 422, "code_incorrect")
    assert body["attempts_left"] == 3
    r = check(client, ver["id"], new)
    assert r.status_code == 200, r.text
    assert r.json()["account"]["status"] == "active"


def test_resend_does_not_reset_attempts(client: TestClient) -> None:
    no_cooldown(client)
    [ver] = signup(client, phone=PHONE)["verifications"]
    code = latest_code(client, PHONE)
    for _ in range(4):
        check(client, ver["id"], wrong(code))
    assert resend(client, ver["id"]).json()["attempts_left"] == 1
    assert client.get(f"/v1/verifications/{ver['id']}").json()["attempts_left"] == 1
    code = latest_code(client, PHONE)
    body = assert_problem(check(client, ver["id"], wrong(code)), 422, "code_incorrect")
    assert body["attempts_left"] == 0

    # locked: no resend can reopen it, and the fresh code of the last resend is dead too
    body = assert_problem(resend(client, ver["id"]), 409, "verification_closed")
    assert body["verification_status"] == "locked"
    assert len(sandbox_messages(client, PHONE)) == 2
    assert_problem(check(client, ver["id"], code), 409, "verification_closed")


def test_resend_within_the_cooldown_is_rate_limited(client: TestClient) -> None:
    policy = set_policy(client, "phone")
    cooldown = policy["sms"]["resend_cooldown_seconds"]
    assert cooldown == 30  # the contract's default
    [ver] = signup(client, phone=PHONE)["verifications"]
    code = latest_code(client, PHONE)

    r = resend(client, ver["id"])
    assert_problem(r, 429, "rate_limited")
    assert cooldown - 5 <= int(r.headers["retry-after"]) <= cooldown, r.headers
    assert len(sandbox_messages(client, PHONE)) == 1  # nothing was sent

    # once the cooldown has passed, the same call succeeds
    with runtime(client).db.write() as conn:
        conn.execute(
            update(_verifications)
            .where(_verifications.c.id == ver["id"])
            .values(resend_available_at=utcnow() - timedelta(seconds=1))
        )
    r = resend(client, ver["id"])
    assert r.status_code == 202, r.text
    new = latest_code(client, PHONE)
    assert len(sandbox_messages(client, PHONE)) == 2
    # ... and starts a new cooldown
    assert_problem(resend(client, ver["id"]), 429, "rate_limited")
    if new != code:  # 4 digits: 1 in 10,000 the two generations coincide
        assert_problem(check(client, ver["id"], code), 422, "code_incorrect")
    assert check(client, ver["id"], new).status_code == 200


def test_resend_of_an_approved_verification_is_refused(client: TestClient) -> None:
    no_cooldown(client)
    [ver] = signup(client, phone=PHONE)["verifications"]
    assert check(client, ver["id"], latest_code(client, PHONE)).status_code == 200
    body = assert_problem(resend(client, ver["id"]), 409, "verification_closed")
    assert body["verification_status"] == "approved"
    assert len(sandbox_messages(client, PHONE)) == 1


def test_resend_of_unknown_verification(client: TestClient) -> None:
    assert_problem(resend(client, "ver_doesnotexist"), 404, "verification_not_found")


def test_email_resend_sends_a_new_link_and_the_old_one_dies(client: TestClient) -> None:
    set_policy(client, "email", sms={"resend_cooldown_seconds": 0})
    created = signup(client, email=EMAIL)
    [ver] = created["verifications"]
    assert ver["channel"] == "email"
    old = latest_token(client, EMAIL)

    r = resend(client, ver["id"])
    assert r.status_code == 202, r.text
    assert (r.json()["id"], r.json()["status"]) == (ver["id"], "pending")
    messages = sandbox_messages(client, EMAIL)
    assert len(messages) == 2 and messages[0]["kind"] == "link"
    new = latest_token(client, EMAIL)
    assert new != old

    r = client.post("/v1/email/verify", json={"token": old})
    assert_problem(r, 422, "token_invalid")
    r = client.post("/v1/email/verify", data={"token": old})  # the form shows the same
    assert r.status_code == 422 and "token_invalid" in r.text
    assert client.get(f"/v1/accounts/{created['account']['id']}").json()["status"] == "pending"

    r = client.post("/v1/email/verify", json={"token": new})
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "approved"
    assert client.get(f"/v1/accounts/{created['account']['id']}").json()["status"] == "active"
    body = assert_problem(resend(client, ver["id"]), 409, "verification_closed")
    assert body["verification_status"] == "approved"
