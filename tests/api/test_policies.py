"""The five policies over HTTP: what a form collects, what a signup needs, when it activates."""

from __future__ import annotations

from typing import Any

import httpx
from fastapi.testclient import TestClient
from sqlalchemy import text

from support.api import latest_code, latest_token, runtime, sandbox_messages, set_policy, signup

PHONE = "+1 202 555 0142"
PHONE_E164 = "+12025550142"
EMAIL = "alice@example.test"
SUBJECTS = [f"device-{i}" for i in range(120)]


def assert_problem(r: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = r.json()
    assert {"type", "title", "status", "detail", "code"} <= set(body)
    assert (body["status"], body["code"]) == (status, code)
    return body


def fields(body: dict[str, Any]) -> set[str]:
    return {e["field"] for e in body.get("errors", [])}


def arm_of(client: TestClient, subject: str) -> str:
    r = client.get("/v1/policy", params={"subject": subject})
    assert r.status_code == 200, r.text
    arm: str = r.json()["arm"]
    return arm


def check(client: TestClient, ver_id: str, code: str) -> dict[str, Any]:
    r = client.post(f"/v1/verifications/{ver_id}/check", json={"code": code})
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


# ---------------------------------------------------------------- GET /v1/policy


def test_public_policy_per_mode(client: TestClient) -> None:
    expected = {
        "phone": (["phone"], []),
        "email": (["email"], []),
        "both": (["phone", "email"], []),
        "either": ([], ["phone", "email"]),
    }
    for mode, (require, one_of) in expected.items():
        doc = set_policy(client, mode)
        r = client.get("/v1/policy")
        assert r.status_code == 200
        assert r.json() == {
            "policy_version": doc["version"],
            "mode": mode,
            "arm": mode,
            "require": require,
            "one_of": one_of,
        }


def test_public_policy_under_split_gives_the_subjects_arm(client: TestClient) -> None:
    doc = set_policy(client, "split", weights={"phone": 50, "email": 50}, experiment="exp_a")
    arms = {}
    for subject in SUBJECTS[:40]:
        body = client.get("/v1/policy", params={"subject": subject}).json()
        assert (body["mode"], body["policy_version"]) == ("split", doc["version"])
        assert body["require"] == [body["arm"]] and body["one_of"] == []
        arms[subject] = body["arm"]
    assert set(arms.values()) == {"phone", "email"}
    assert all(arm_of(client, s) == arm for s, arm in arms.items())


def test_split_weights_100_0_and_0_100(client: TestClient) -> None:
    set_policy(client, "split", weights={"phone": 100, "email": 0})
    assert {arm_of(client, s) for s in SUBJECTS[:30]} == {"phone"}
    assert {client.get("/v1/policy").json()["arm"] for _ in range(10)} == {"phone"}
    created = signup(client, phone=PHONE, email=EMAIL, subject="anyone")
    assert created["account"]["arm"] == "phone"
    set_policy(client, "split", weights={"phone": 0, "email": 100})
    assert {arm_of(client, s) for s in SUBJECTS[:30]} == {"email"}
    created = signup(client, phone=PHONE, email=EMAIL, subject="anyone")
    assert created["account"]["arm"] == "email"


def test_split_without_subject_draws_a_random_arm(client: TestClient) -> None:
    set_policy(client, "split", weights={"phone": 50, "email": 50})
    assert {client.get("/v1/policy").json()["arm"] for _ in range(40)} == {"phone", "email"}
    arms = {signup(client, phone=PHONE, email=EMAIL)["account"]["arm"] for _ in range(24)}
    assert arms == {"phone", "email"}


def test_editing_weights_keeps_assignment_a_new_experiment_reassigns(client: TestClient) -> None:
    set_policy(client, "split", weights={"phone": 50, "email": 50}, experiment="exp_a")
    before = {s: arm_of(client, s) for s in SUBJECTS}
    edited = set_policy(client, "split", weights={"phone": 60, "email": 40}, experiment="exp_a")
    after = {s: arm_of(client, s) for s in SUBJECTS}
    moved = [s for s in SUBJECTS if before[s] != after[s]]
    assert len(moved) <= 0.25 * len(SUBJECTS)  # ~10% expected: only the boundary moves
    assert all(before[s] == "email" and after[s] == "phone" for s in moved)

    set_policy(client, "split", weights={"phone": 50, "email": 50}, experiment="exp_b")
    fresh = {s: arm_of(client, s) for s in SUBJECTS}
    same = sum(fresh[s] == before[s] for s in SUBJECTS)
    assert same <= 0.75 * len(SUBJECTS)  # ~50% expected: a new salt

    # Back to exp_a with its first weights: its assignment returns.
    back = set_policy(client, "split", weights={"phone": 50, "email": 50}, experiment="exp_a")
    assert back["version"] > edited["version"]
    assert {s: arm_of(client, s) for s in SUBJECTS} == before


def test_split_arm_is_the_servers_and_is_recorded(client: TestClient) -> None:
    doc = set_policy(client, "split", weights={"phone": 50, "email": 50})
    seen = set()
    for subject in SUBJECTS[:16]:
        arm = arm_of(client, subject)
        for _ in range(2):  # the same subject gets the same arm on every signup
            created = signup(client, phone=PHONE, email=EMAIL, subject=subject)
            account, [ver] = created["account"], created["verifications"]
            assert (account["arm"], account["policy_version"]) == (arm, doc["version"])
            assert ver["channel"] == ("sms" if arm == "phone" else "email")
        seen.add(arm)
    assert seen == {"phone", "email"}


def test_split_arm_requirements(client: TestClient) -> None:
    set_policy(client, "split", weights={"phone": 50, "email": 50})
    phone_subject = next(s for s in SUBJECTS if arm_of(client, s) == "phone")
    email_subject = next(s for s in SUBJECTS if arm_of(client, s) == "email")
    r = client.post("/v1/accounts", json={"email": EMAIL, "subject": phone_subject})
    assert "phone" in fields(assert_problem(r, 422, "policy_requires_phone"))
    r = client.post("/v1/accounts", json={"phone": PHONE, "subject": email_subject})
    assert "email" in fields(assert_problem(r, 422, "policy_requires_email"))
    created = signup(client, phone=PHONE, subject=phone_subject)
    assert created["account"]["arm"] == "phone"
    created = signup(client, email=EMAIL, subject=email_subject)
    assert created["account"]["arm"] == "email"


def test_old_accounts_keep_their_version_and_rules(client: TestClient) -> None:
    v_phone = set_policy(client, "phone")["version"]
    old = signup(client, phone=PHONE)
    old_code = latest_code(client, PHONE_E164)
    v_email = set_policy(client, "email")["version"]
    assert v_email > v_phone
    new = signup(client, email=EMAIL)
    assert (new["account"]["policy_version"], new["account"]["arm"]) == (v_email, "email")

    account = client.get(f"/v1/accounts/{old['account']['id']}").json()
    assert (account["policy_version"], account["arm"]) == (v_phone, "phone")
    # The old signup is still finished by its own policy's rule (the SMS code).
    result = check(client, old["verifications"][0]["id"], old_code)
    assert result["account"]["status"] == "active"
    assert result["account"]["policy_version"] == v_phone


# ---------------------------------------------------------------- requirements


def test_phone_policy(client: TestClient) -> None:
    set_policy(client, "phone")
    r = client.post("/v1/accounts", json={"email": EMAIL})
    assert fields(assert_problem(r, 422, "policy_requires_phone")) == {"phone"}
    r = client.post("/v1/accounts", json={})
    assert "phone" in fields(assert_problem(r, 422, "policy_requires_phone"))
    created = signup(client, phone=PHONE, email=EMAIL)
    [ver] = created["verifications"]
    assert ver["channel"] == "sms"
    assert sandbox_messages(client, EMAIL) == []  # the email is kept, not verified
    result = check(client, ver["id"], latest_code(client, PHONE_E164))
    assert result["account"]["status"] == "active"


def test_email_policy(client: TestClient) -> None:
    set_policy(client, "email")
    r = client.post("/v1/accounts", json={"phone": PHONE})
    assert fields(assert_problem(r, 422, "policy_requires_email")) == {"email"}
    created = signup(client, email=EMAIL)
    [ver] = created["verifications"]
    assert ver["channel"] == "email"
    assert sandbox_messages(client, PHONE_E164) == []
    r = client.post("/v1/email/verify", json={"token": latest_token(client, EMAIL)})
    assert r.status_code == 200, r.text
    assert client.get(f"/v1/accounts/{created['account']['id']}").json()["status"] == "active"


def test_both_policy_needs_both_identities(client: TestClient) -> None:
    set_policy(client, "both")
    r = client.post("/v1/accounts", json={"phone": PHONE})
    assert fields(assert_problem(r, 422, "policy_requires_both")) == {"email"}
    r = client.post("/v1/accounts", json={"email": EMAIL})
    assert fields(assert_problem(r, 422, "policy_requires_both")) == {"phone"}
    r = client.post("/v1/accounts", json={})
    assert fields(assert_problem(r, 422, "policy_requires_both")) == {"phone", "email"}


def test_both_policy_activates_after_both_are_verified(client: TestClient) -> None:
    set_policy(client, "both")
    created = signup(client, phone=PHONE, email=EMAIL)
    account_id = created["account"]["id"]
    assert created["account"]["arm"] == "both"
    by_channel = {v["channel"]: v for v in created["verifications"]}
    assert set(by_channel) == {"sms", "email"} and len(created["verifications"]) == 2
    assert by_channel["sms"]["to"] == "+1 202-555-••42"
    assert by_channel["email"]["to"] == "a•••@example.test"

    result = check(client, by_channel["sms"]["id"], latest_code(client, PHONE_E164))
    assert result["account"]["status"] == "pending"
    account = client.get(f"/v1/accounts/{account_id}").json()
    assert (account["status"], account["verified"]) == (
        "pending",
        {"phone": True, "email": False},
    )

    r = client.post("/v1/email/verify", data={"token": latest_token(client, EMAIL)})
    assert r.status_code == 200, r.text
    account = client.get(f"/v1/accounts/{account_id}").json()
    assert (account["status"], account["verified"]) == ("active", {"phone": True, "email": True})


def test_both_policy_email_first(client: TestClient) -> None:
    set_policy(client, "both")
    created = signup(client, phone=PHONE, email=EMAIL)
    by_channel = {v["channel"]: v for v in created["verifications"]}
    r = client.post("/v1/email/verify", json={"token": latest_token(client, EMAIL)})
    assert r.status_code == 200 and r.json()["account"]["status"] == "pending"
    result = check(client, by_channel["sms"]["id"], latest_code(client, PHONE_E164))
    assert result["account"]["status"] == "active"


def test_either_policy_needs_one(client: TestClient) -> None:
    set_policy(client, "either")
    r = client.post("/v1/accounts", json={})
    assert fields(assert_problem(r, 422, "policy_requires_phone_or_email")) == {"phone", "email"}
    by_phone = signup(client, phone=PHONE)
    assert [v["channel"] for v in by_phone["verifications"]] == ["sms"]
    by_email = signup(client, email=EMAIL)
    assert [v["channel"] for v in by_email["verifications"]] == ["email"]
    result = check(client, by_phone["verifications"][0]["id"], latest_code(client, PHONE_E164))
    assert result["account"]["status"] == "active"
    assert result["account"]["arm"] == "either"


def test_either_with_both_channel_picks_else_prefer(client: TestClient) -> None:
    set_policy(client, "either")  # prefer defaults to email
    created = signup(client, phone=PHONE, email=EMAIL)
    assert [v["channel"] for v in created["verifications"]] == ["email"]
    assert sandbox_messages(client, PHONE_E164) == []
    assert created["account"]["phone"] == "+1 202-555-••42"  # kept, not verified

    created = signup(client, phone=PHONE, email=EMAIL, channel="sms")
    assert [v["channel"] for v in created["verifications"]] == ["sms"]
    assert len(sandbox_messages(client, PHONE_E164)) == 1

    set_policy(client, "either", prefer="phone")
    created = signup(client, phone=PHONE, email=EMAIL)
    assert [v["channel"] for v in created["verifications"]] == ["sms"]
    created = signup(client, phone=PHONE, email=EMAIL, channel="email")
    assert [v["channel"] for v in created["verifications"]] == ["email"]

    r = client.post("/v1/accounts", json={"phone": PHONE, "email": EMAIL, "channel": "fax"})
    body = assert_problem(r, 422, "invalid_request")
    assert fields(body) == {"channel"}


def test_either_activation_by_the_email_link(client: TestClient) -> None:
    set_policy(client, "either")
    created = signup(client, phone=PHONE, email=EMAIL)
    r = client.post("/v1/email/verify", json={"token": latest_token(client, EMAIL)})
    assert r.status_code == 200, r.text
    account = client.get(f"/v1/accounts/{created['account']['id']}").json()
    assert (account["status"], account["verified"]) == ("active", {"phone": False, "email": True})


def test_account_rows_record_version_and_arm(client: TestClient) -> None:
    doc = set_policy(client, "split", weights={"phone": 50, "email": 50})
    created = signup(client, phone=PHONE, email=EMAIL, subject="device-1")
    with runtime(client).db.read() as conn:
        row = conn.execute(
            text("SELECT policy_version, arm FROM accounts WHERE id = :id"),
            {"id": created["account"]["id"]},
        ).one()
    assert (row.policy_version, row.arm) == (doc["version"], arm_of(client, "device-1"))


def test_split_without_subject_hands_the_frontend_a_subject_that_keeps_its_arm(
    client: TestClient,
) -> None:
    """The trap: GET /v1/policy and POST /v1/accounts without subject drew arms apart."""
    set_policy(client, "split", weights={"phone": 50, "email": 50})
    subjects = set()
    for i in range(40):
        form = client.get("/v1/policy").json()
        subject = form["subject"]
        assert isinstance(subject, str) and 16 <= len(subject) <= 200
        subjects.add(subject)
        again = client.get("/v1/policy", params={"subject": subject}).json()
        assert again["arm"] == form["arm"] and "subject" not in again
        body = {"subject": subject}
        body.update({"phone": PHONE} if form["require"] == ["phone"] else {"email": EMAIL})
        r = client.post("/v1/accounts", json=body)
        assert r.status_code == 201, (i, r.text)
        assert r.json()["account"]["arm"] == form["arm"]
    assert len(subjects) == 40  # fresh every time


def test_no_subject_is_handed_out_outside_split(client: TestClient) -> None:
    for mode in ("phone", "email", "either", "both"):
        set_policy(client, mode)
        assert "subject" not in client.get("/v1/policy").json()
