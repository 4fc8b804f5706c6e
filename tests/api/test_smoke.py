"""The README's walk-through, end to end, on both backends."""

from __future__ import annotations

from fastapi.testclient import TestClient

from support.api import latest_code, latest_token, sandbox_messages, set_policy, signup


def test_phone_then_email_walkthrough(client: TestClient) -> None:
    r = client.get("/v1/policy")
    assert r.json() == {
        "policy_version": 1,
        "mode": "phone",
        "arm": "phone",
        "require": ["phone"],
        "one_of": [],
    }
    created = signup(client, phone="+1 202 555 0142")
    account, [ver] = created["account"], created["verifications"]
    assert (account["status"], ver["channel"], ver["status"]) == ("pending", "sms", "pending")
    code = latest_code(client, "+12025550142")
    assert len(code) == 4 and code.isdigit()
    [message] = sandbox_messages(client, "+12025550142")
    assert message["kind"] == "code" and "link" not in message  # absent, not null
    r = client.post(f"/v1/verifications/{ver['id']}/check", json={"code": code})
    assert r.status_code == 200, r.text
    assert r.json()["account"]["status"] == "active"

    set_policy(client, "email")
    created = signup(client, email="new@example.test")
    token = latest_token(client, "new@example.test")
    [message] = sandbox_messages(client, "new@example.test")
    assert message["kind"] == "link" and "code" not in message
    page = client.get("/v1/email/verify", params={"token": token})
    assert page.status_code == 200 and "<form" in page.text
    r = client.get(f"/v1/accounts/{created['account']['id']}")
    assert r.json()["status"] == "pending"  # the GET consumed nothing
    r = client.post("/v1/email/verify", data={"token": token})
    assert r.status_code == 200 and "Email confirmed" in r.text
    r = client.get(f"/v1/accounts/{created['account']['id']}")
    assert r.json()["status"] == "active"
    assert r.json()["verified"] == {"phone": False, "email": True}
