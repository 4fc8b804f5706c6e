"""Who may use the Twilio-compatible surface, and what a verify-scoped key may not do.

A verify key (an ``AC…`` account SID and an auth token) opens ``/v2`` and nothing else;
an admin key opens ``/v1/admin`` and the dashboard and not ``/v2``. Every refusal under
``/v2`` answers Twilio's body, so the SDK raises its usual exception.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select

from support.api import admin_headers, runtime
from support.verify import basic, create_service, start, twilio_error, verify_key
from verifyd.models import VerifyService, table_of

PHONE = "+1 202 555 0142"
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def test_v2_takes_verify_keys_only(client: TestClient) -> None:
    r = client.get("/v2/Services")
    body = twilio_error(r, 401, 20003)
    assert r.headers["www-authenticate"].startswith("Basic ")
    assert body["message"] == "Authenticate"
    auth = verify_key(client)
    user = auth["Authorization"]
    sid, token = runtime(client).admin_keys.create("other", "cli:test", "verify")[0].split(":")
    twilio_error(client.get("/v2/Services", headers=basic(sid, token + "x")), 401, 20003)
    twilio_error(client.get("/v2/Services", headers=basic("AC" + "0" * 32, token)), 401, 20003)
    twilio_error(client.get("/v2/Services", headers={"Authorization": "Basic !!"}), 401, 20003)
    # An admin key is a valid credential of the wrong scope: 403, still Twilio's 20003.
    twilio_error(client.get("/v2/Services", headers=admin_headers(client)), 403, 20003)
    assert client.get("/v2/Services", headers={"Authorization": user}).status_code == 200

    runtime(client).admin_keys.revoke("app", "cli:test")
    twilio_error(client.get("/v2/Services", headers={"Authorization": user}), 401, 20003)


def test_a_verify_key_is_forbidden_on_the_admin_api_and_the_dashboard(client: TestClient) -> None:
    credential, _ = runtime(client).admin_keys.create("app", "cli:test", "verify")
    sid, token = credential.split(":")
    for headers in (basic(sid, token), {"Authorization": f"Bearer {credential}"}):
        for path in ("/v1/admin/stats", "/v1/admin/policy", "/v1/admin/breakers"):
            r = client.get(path, headers=headers)
            assert r.status_code == 403, (path, r.text)
            assert r.headers["content-type"] == "application/problem+json"
            assert r.json()["code"] == "forbidden"
        r = client.put("/v1/admin/policy", json={"mode": "email"}, headers=headers)
        assert r.status_code == 403 and r.json()["code"] == "forbidden"
    form = client.get("/admin/login")
    token_field = CSRF.search(form.text)
    assert token_field is not None
    r = client.post("/admin/login", data={"key": credential, "csrf": token_field.group(1)})
    assert r.status_code == 403 and "scoped to the Verify API" in r.text
    assert "verifyd_session" not in r.cookies
    # A wrong token is no credential at all: 401, as for any bad key.
    r = client.get("/v1/admin/stats", headers=basic(sid, token[::-1]))
    assert r.status_code == 401 and r.json()["code"] == "unauthorized"


def test_services_belong_to_the_credential_that_made_them(client: TestClient) -> None:
    mine, theirs = verify_key(client, "mine"), verify_key(client, "theirs")
    va = create_service(client, mine)["sid"]
    create_service(client, theirs, FriendlyName="Theirs")
    listed = client.get("/v2/Services", headers=mine).json()["services"]
    assert [s["sid"] for s in listed] == [va]
    twilio_error(client.get(f"/v2/Services/{va}", headers=theirs), 404, 20404)
    twilio_error(start(client, theirs, va, PHONE), 404, 20404)
    twilio_error(client.delete(f"/v2/Services/{va}", headers=theirs), 404, 20404)
    assert client.get(f"/v2/Services/{va}", headers=mine).status_code == 200


def test_every_answer_under_v2_is_twilio_shaped(client: TestClient) -> None:
    auth = verify_key(client)
    twilio_error(client.get("/v2/Nothing", headers=auth), 404, 20404)
    twilio_error(client.put("/v2/Services", headers=auth), 405, 20004)
    twilio_error(client.get("/v2/Services/VAnot-a-sid", headers=auth), 404, 20404)
    va = create_service(client, auth)["sid"]
    twilio_error(client.get(f"/v2/Services/{va}/Verifications/x" * 3, headers=auth), 404, 20404)
    r = client.post(
        f"/v2/Services/{va}/Verifications",
        content=b"To=%FF%FE&Channel=sms",
        headers={**auth, "Content-Type": "application/x-www-form-urlencoded"},
    )
    twilio_error(r, 400, 60200)
    r = client.post(f"/v2/Services/{va}/Verifications", json={"To": PHONE}, headers=auth)
    twilio_error(r, 400, 60200)


def test_the_surface_can_be_switched_off(make_settings: Any, make_client: Any) -> None:
    client = make_client(make_settings(twilio_compat=False))
    auth = verify_key(client)
    r = client.post("/v2/Services", data={"FriendlyName": "x"}, headers=auth)
    assert r.status_code == 404
    assert r.headers["content-type"] == "application/problem+json"  # not mounted at all


def test_a_service_account_row_is_nobody_s_account(client: TestClient) -> None:
    auth = verify_key(client)
    va = create_service(client, auth)["sid"]
    with runtime(client).db.read() as conn:
        account_id = conn.execute(
            select(table_of(VerifyService).c.account_id).where(table_of(VerifyService).c.sid == va)
        ).scalar_one()
    assert client.get(f"/v1/accounts/{account_id}").status_code == 404
    r = client.post(
        f"/v1/admin/accounts/{account_id}/labels",
        json={"label": "fake"},
        headers=admin_headers(client),
    )
    assert r.status_code == 404, r.text


def test_an_oversized_body_under_v2_is_refused_in_twilio_s_body(client: TestClient) -> None:
    auth = verify_key(client)
    too_big = b"FriendlyName=" + b"x" * (65 * 1024)
    r = client.post(
        "/v2/Services",
        content=too_big,
        headers={**auth, "Content-Type": "application/x-www-form-urlencoded"},
    )
    body = twilio_error(r, 413, 60200)
    assert body["message"].startswith("Invalid parameter: the request body is over")
    r = client.post("/v1/accounts", content=b"{" + b" " * (65 * 1024) + b"}")
    assert r.status_code == 413 and r.headers["content-type"] == "application/problem+json"
