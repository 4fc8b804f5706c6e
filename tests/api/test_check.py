"""POST /v1/verifications/{id}/check: approval, wrong codes, lockout, expiry, limits, hashing."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import httpx
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from support.api import latest_code, latest_token, runtime, sandbox_messages, set_policy, signup
from verifyd.db import metadata
from verifyd.models import Verification, table_of, utcnow
from verifyd.settings import Settings

PHONE = "+1 202 555 0142"
E164 = "+12025550142"
PROBLEM = "application/problem+json"

_verifications = table_of(Verification)


def check(client: TestClient, verification_id: str, code: Any) -> httpx.Response:
    return client.post(f"/v1/verifications/{verification_id}/check", json={"code": code})


def wrong(code: str) -> str:
    """Another code of the same length."""
    return str((int(code) + 1) % 10 ** len(code)).zfill(len(code))


def phone_signup(client: TestClient, phone: str = PHONE) -> tuple[dict[str, Any], str]:
    """Sign up a sandbox phone; returns the verification and its delivered code."""
    created = signup(client, phone=phone)
    [ver] = created["verifications"]
    code = latest_code(client, phone)
    return {**ver, "account_id": created["account"]["id"]}, code


def assert_problem(r: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith(PROBLEM)
    body: dict[str, Any] = r.json()
    assert body["code"] == code and body["status"] == status
    return body


def away_from_window_edge(window: int, margin: float = 3.0) -> None:
    """Sleep past a fixed-window boundary that is about to fall, so a count stays in one."""
    left = window - time.time() % window
    if left < margin:
        time.sleep(left + 0.05)


def test_right_code_approves_and_activates(client: TestClient) -> None:
    ver, code = phone_signup(client)
    assert client.get(f"/v1/accounts/{ver['account_id']}").json()["status"] == "pending"

    r = check(client, ver["id"], code)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "approved"
    assert body["verification"]["id"] == ver["id"]
    assert body["verification"]["status"] == "approved"
    assert body["account"]["id"] == ver["account_id"]
    assert body["account"]["status"] == "active"
    assert E164 not in r.text  # destinations stay masked

    account = client.get(f"/v1/accounts/{ver['account_id']}").json()
    assert account["status"] == "active"
    assert account["verified"] == {"phone": True, "email": False}
    assert client.get(f"/v1/verifications/{ver['id']}").json()["status"] == "approved"

    # single use: the same right code again is refused
    again = assert_problem(check(client, ver["id"], code), 409, "verification_closed")
    assert again["verification_status"] == "approved"


def test_wrong_codes_count_down_then_lock(client: TestClient) -> None:
    ver, code = phone_signup(client)
    assert ver["attempts_left"] == 5
    seen = []
    for _ in range(5):
        body = assert_problem(check(client, ver["id"], wrong(code)), 422, "code_incorrect")
        seen.append(body["attempts_left"])
    assert seen == [4, 3, 2, 1, 0]

    view = client.get(f"/v1/verifications/{ver['id']}").json()
    assert (view["status"], view["attempts_left"]) == ("locked", 0)

    # even the right code cannot open a locked verification
    body = assert_problem(check(client, ver["id"], code), 409, "verification_closed")
    assert body["verification_status"] == "locked"
    assert client.get(f"/v1/accounts/{ver['account_id']}").json()["status"] == "pending"


def test_malformed_code_uses_no_attempt(client: TestClient) -> None:
    ver, code = phone_signup(client)
    for bad in (int(code), "12a4", "", None, ["1234"]):
        body = assert_problem(check(client, ver["id"], bad), 422, "invalid_request")
        assert [e["field"] for e in body["errors"]] == ["code"], body
    r = client.post(f"/v1/verifications/{ver['id']}/check", json={})
    assert_problem(r, 422, "invalid_request")
    assert client.get(f"/v1/verifications/{ver['id']}").json()["attempts_left"] == 5
    assert check(client, ver["id"], code).status_code == 200


def test_unknown_verification(client: TestClient) -> None:
    assert_problem(check(client, "ver_doesnotexist", "1234"), 404, "verification_not_found")
    r = client.get("/v1/verifications/ver_doesnotexist")
    assert_problem(r, 404, "verification_not_found")


def expire(client: TestClient, verification_id: str) -> None:
    """Move a verification's expiry into the past (the policy's TTL floor is 30 s)."""
    with runtime(client).db.write() as conn:
        conn.execute(
            update(_verifications)
            .where(_verifications.c.id == verification_id)
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )


def test_expired_code_is_gone(client: TestClient) -> None:
    ver, code = phone_signup(client)
    expire(client, ver["id"])
    assert client.get(f"/v1/verifications/{ver['id']}").json()["status"] == "expired"
    assert_problem(check(client, ver["id"], code), 410, "code_expired")
    assert_problem(check(client, ver["id"], code), 410, "code_expired")
    assert client.get(f"/v1/verifications/{ver['id']}").json()["status"] == "expired"
    assert client.get(f"/v1/accounts/{ver['account_id']}").json()["status"] == "pending"


def test_code_length_follows_the_policy(client: TestClient) -> None:
    set_policy(client, "phone", sms={"code_length": 6})
    ver, code = phone_signup(client)
    assert re.fullmatch(r"\d{6}", code), code
    assert_problem(check(client, ver["id"], code[:4]), 422, "code_incorrect")
    assert check(client, ver["id"], code).status_code == 200

    set_policy(client, "phone", sms={"code_length": 10})
    ver, code = phone_signup(client, "+1 202 555 0143")
    assert re.fullmatch(r"\d{10}", code), code
    assert check(client, ver["id"], code).status_code == 200


def console_code(capsys: Any, e164: str, timeout: float = 10.0) -> str:
    """The code the console provider printed for a phone (its delivery is stdout)."""
    deadline = time.monotonic() + timeout
    out = ""
    while time.monotonic() < deadline:
        out += capsys.readouterr().out
        found = re.search(rf"to {re.escape(e164)}\nYour verification code is (\d+)\.", out)
        if found:
            return found.group(1)
        time.sleep(0.05)
    raise AssertionError(f"no console delivery to {e164}: {out!r}")


def test_fixed_sandbox_code_applies_to_sandbox_numbers_only(
    make_settings: Callable[..., Settings],
    make_client: Callable[[Settings], TestClient],
    capsys: Any,
) -> None:
    client = make_client(make_settings(sandbox_fixed_code="1234"))
    ver, code = phone_signup(client)
    assert code == "1234"
    assert check(client, ver["id"], "1234").status_code == 200

    # a real number gets a real code, through the console provider
    created = signup(client, phone="+1 650 253 0000")
    [real] = created["verifications"]
    real_code = console_code(capsys, "+16502530000")
    assert re.fullmatch(r"\d{4}", real_code)
    if real_code != "1234":  # 1 in 10,000: the derived code may happen to be 1234
        assert_problem(check(client, real["id"], "1234"), 422, "code_incorrect")
    assert check(client, real["id"], real_code).status_code == 200


def test_guess_budget_per_destination_spans_verifications(
    make_settings: Callable[..., Settings], make_client: Callable[[Settings], TestClient]
) -> None:
    client = make_client(make_settings(guess_budget_per_day=3, sandbox_limit_multiplier=1))
    away_from_window_edge(86400)
    first, code1 = phone_signup(client)
    second, code2 = phone_signup(client)  # same number, a second pending account
    assert first["id"] != second["id"]

    assert_problem(check(client, first["id"], wrong(code1)), 422, "code_incorrect")
    assert_problem(check(client, first["id"], wrong(code1)), 422, "code_incorrect")
    assert_problem(check(client, second["id"], wrong(code2)), 422, "code_incorrect")
    # the number's daily budget is spent: even the right code is not evaluated
    r = check(client, second["id"], code2)
    body = assert_problem(r, 429, "too_many_attempts")
    assert 1 <= int(r.headers["retry-after"]) <= 86400, r.headers
    assert body["status"] == 429
    r = check(client, first["id"], code1)
    assert_problem(r, 429, "too_many_attempts")
    assert client.get(f"/v1/accounts/{second['account_id']}").json()["status"] == "pending"

    # another number has its own budget
    other, code = phone_signup(client, "+1 202 555 0199")
    assert check(client, other["id"], code).status_code == 200


def test_checks_per_ip_are_limited(
    make_settings: Callable[..., Settings], make_client: Callable[[Settings], TestClient]
) -> None:
    client = make_client(make_settings(checks_per_ip_per_minute=2, sandbox_limit_multiplier=1))
    away_from_window_edge(60)
    a, code_a = phone_signup(client, "+1 202 555 0150")
    b, code_b = phone_signup(client, "+1 202 555 0151")
    assert_problem(check(client, a["id"], wrong(code_a)), 422, "code_incorrect")
    assert_problem(check(client, a["id"], wrong(code_a)), 422, "code_incorrect")
    # the limit is the caller's, not the verification's
    r = check(client, b["id"], code_b)
    assert_problem(r, 429, "rate_limited")
    assert 1 <= int(r.headers["retry-after"]) <= 60, r.headers
    assert client.get(f"/v1/accounts/{b['account_id']}").json()["status"] == "pending"


def test_second_pending_account_cannot_take_a_verified_number(client: TestClient) -> None:
    first, code1 = phone_signup(client)
    second, code2 = phone_signup(client)  # created while the first is still pending
    assert check(client, first["id"], code1).status_code == 200
    body = assert_problem(check(client, second["id"], code2), 409, "verification_closed")
    assert body["verification_status"] == "canceled"
    loser = client.get(f"/v1/accounts/{second['account_id']}").json()
    assert loser["status"] == "pending"
    assert client.get(f"/v1/verifications/{second['id']}").json()["status"] == "canceled"
    assert client.get(f"/v1/accounts/{first['account_id']}").json()["status"] == "active"


def test_a_canceled_verification_does_not_mark_the_identity_verified(client: TestClient) -> None:
    first, code1 = phone_signup(client)
    second, code2 = phone_signup(client)
    assert check(client, first["id"], code1).status_code == 200
    assert check(client, second["id"], code2).status_code == 409
    loser = client.get(f"/v1/accounts/{second['account_id']}").json()
    assert loser["verified"] == {"phone": False, "email": False}


def _all_text(client: TestClient, skip: set[str]) -> dict[str, str]:
    """Every row of every table but ``skip``, as text, keyed by table name."""
    out = {}
    with runtime(client).db.read() as conn:
        for table in metadata.sorted_tables:
            if table.name in skip:
                continue
            rows = conn.execute(select(table)).all()
            out[table.name] = "\n".join(repr(tuple(map(str, row))) for row in rows)
    return out


def test_codes_and_tokens_are_never_stored_in_clear(client: TestClient, capsys: Any) -> None:
    # 10 digits, so a code cannot turn up by chance inside a timestamp or a number
    set_policy(client, "phone", sms={"code_length": 10, "resend_cooldown_seconds": 0})
    sandbox_ver, sandbox_code = phone_signup(client)
    real = signup(client, phone="+1 650 253 0000")["verifications"][0]
    real_code = console_code(capsys, "+16502530000")
    r = client.post(f"/v1/verifications/{sandbox_ver['id']}/resend")
    assert r.status_code == 202, r.text
    resent_code = latest_code(client, PHONE)
    set_policy(client, "email")
    signup(client, email="someone@example.test")
    token = latest_token(client, "someone@example.test")
    secrets = {"code": sandbox_code, "resent": resent_code, "real": real_code, "token": token}
    assert len(set(secrets.values())) == 4

    tables = _all_text(client, skip={"sandbox_messages"})
    assert {"verifications", "messages"} <= set(tables)
    assert real["id"] in tables["messages"]  # the real number's message went through the outbox
    for table, text in tables.items():
        for name, secret in secrets.items():
            assert secret not in text, f"{name} stored in clear in {table}"

    # the sandbox inbox is the one clear copy, and the scan above would have found it
    inbox = _all_text(client, skip=set(tables))["sandbox_messages"]
    assert sandbox_code in inbox and resent_code in inbox and token in inbox
    assert real_code not in inbox  # real destinations never reach the sandbox
    assert [m["code"] for m in sandbox_messages(client, PHONE)] == [resent_code, sandbox_code]
