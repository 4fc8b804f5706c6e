"""Idempotency-Key on POST /v1/accounts: replay, reuse with another body, errors, in flight."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from support.api import runtime, sandbox_messages
from support.liveserver import LiveServer
from verifyd.app import create_app
from verifyd.idempotency import request_hash, scoped_key
from verifyd.models import Account, Verification, table_of
from verifyd.settings import Settings

PHONE = "+1 202 555 0142"
PHONE_E164 = "+12025550142"


def post(client: TestClient, body: Any, key: str | None) -> httpx.Response:
    headers = {"Idempotency-Key": key} if key is not None else {}
    return client.post("/v1/accounts", json=body, headers=headers)


def count(client: TestClient, model: type[Account] | type[Verification]) -> int:
    with runtime(client).db.read() as conn:
        n: int = conn.execute(select(func.count()).select_from(table_of(model))).scalar_one()
    return n


def assert_problem(r: httpx.Response, status: int, code: str) -> None:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    body = r.json()
    assert {"type", "title", "status", "detail", "code"} <= set(body)
    assert (body["status"], body["code"]) == (status, code)


def test_same_key_same_body_replays_the_first_answer(client: TestClient) -> None:
    body = {"phone": PHONE, "subject": "device-1", "locale": "en"}
    first = post(client, body, "key-1")
    assert first.status_code == 201, first.text
    second = post(client, body, "key-1")
    assert second.status_code == 201, second.text
    assert second.json() == first.json()  # same ids, same timestamps
    assert second.headers["location"] == first.headers["location"]
    assert first.headers["location"] == f"/v1/accounts/{first.json()['account']['id']}"
    assert count(client, Account) == 1 and count(client, Verification) == 1
    assert len(sandbox_messages(client, PHONE_E164)) == 1  # one code sent, not two
    # The replayed ids are real ones.
    assert client.get(second.headers["location"]).status_code == 200


def test_replay_ignores_key_order_and_omitted_nulls(client: TestClient) -> None:
    first = client.post(
        "/v1/accounts",
        content=json.dumps({"phone": PHONE, "locale": "en"}),
        headers={"Idempotency-Key": "key-order", "content-type": "application/json"},
    )
    assert first.status_code == 201
    second = client.post(
        "/v1/accounts",
        content=json.dumps({"locale": "en", "email": None, "phone": PHONE}),
        headers={"Idempotency-Key": "key-order", "content-type": "application/json"},
    )
    assert second.status_code == 201, second.text
    assert second.json()["account"]["id"] == first.json()["account"]["id"]
    assert count(client, Account) == 1


def test_same_key_other_body_is_refused(client: TestClient) -> None:
    assert post(client, {"phone": PHONE}, "key-2").status_code == 201
    r = post(client, {"phone": "+1 202 555 0143"}, "key-2")
    assert_problem(r, 422, "idempotency_key_reused")
    r = post(client, {"phone": PHONE, "locale": "fr"}, "key-2")
    assert_problem(r, 422, "idempotency_key_reused")
    assert count(client, Account) == 1
    assert sandbox_messages(client, "+12025550143") == []


def test_keys_are_independent(client: TestClient) -> None:
    a = post(client, {"phone": PHONE}, "key-a")
    b = post(client, {"phone": PHONE}, "key-b")
    c = post(client, {"phone": PHONE}, None)
    assert {a.status_code, b.status_code, c.status_code} == {201}
    ids = {r.json()["account"]["id"] for r in (a, b, c)}
    assert len(ids) == 3 and count(client, Account) == 3


def test_an_error_answer_is_not_stored(client: TestClient) -> None:
    # phone policy: an email-only body is a policy error
    wrong = post(client, {"email": "alice@example.test"}, "key-3")
    assert_problem(wrong, 422, "policy_requires_phone")
    again = post(client, {"email": "alice@example.test"}, "key-3")
    assert_problem(again, 422, "policy_requires_phone")  # evaluated again, not "reused"
    fixed = post(client, {"phone": PHONE}, "key-3")
    assert fixed.status_code == 201, fixed.text
    replay = post(client, {"phone": PHONE}, "key-3")
    assert replay.json() == fixed.json()
    assert count(client, Account) == 1


def test_an_invalid_destination_is_not_stored(client: TestClient) -> None:
    assert_problem(post(client, {"phone": "+1 202 555 01"}, "key-4"), 422, "invalid_phone")
    assert post(client, {"phone": PHONE}, "key-4").status_code == 201


def test_in_flight_key_is_409(client: TestClient) -> None:
    body = {"phone": PHONE}
    # Claimed by this client (the test client's address is "testclient").
    key = scoped_key("ip:testclient", "key-5")
    assert runtime(client).idempotency.claim(key, request_hash(body)) is None
    r = post(client, body, "key-5")
    assert_problem(r, 409, "idempotency_in_progress")
    assert count(client, Account) == 0
    assert sandbox_messages(client, PHONE_E164) == []
    # Another body under the in-flight key is still a reuse.
    assert_problem(
        post(client, {"phone": "+1 202 555 0143"}, "key-5"), 422, "idempotency_key_reused"
    )


def test_overlong_key_is_a_problem(client: TestClient) -> None:
    assert_problem(post(client, {"phone": PHONE}, "k" * 256), 422, "invalid_request")
    assert count(client, Account) == 0


def test_a_key_belongs_to_its_client_over_http(make_settings: Callable[..., Settings]) -> None:
    """The attack: client B sends client A's key and body to get A's ids replayed.

    Over a real socket, behind a trusted proxy (``X-Forwarded-For`` names the client,
    as for the per-IP limits).
    """
    settings = make_settings(trusted_proxies=["127.0.0.1"])
    body = {"phone": PHONE, "subject": "device-1"}

    def as_client(http: httpx.Client, address: str, payload: Any) -> httpx.Response:
        headers = {"Idempotency-Key": "shared-key", "X-Forwarded-For": address}
        return http.post("/v1/accounts", json=payload, headers=headers)

    with LiveServer(create_app(settings)) as server, httpx.Client(base_url=server.base_url) as http:
        a = as_client(http, "203.0.113.1", body)
        assert a.status_code == 201, a.text
        replay = as_client(http, "203.0.113.1", body)  # A's own retry: replayed
        assert replay.headers.get("idempotent-replayed") == "true"
        assert replay.json() == a.json()

        b = as_client(http, "203.0.113.2", body)  # B, same key and body: a new signup
        assert b.status_code == 201, b.text
        assert "idempotent-replayed" not in b.headers
        assert b.json()["account"]["id"] != a.json()["account"]["id"]
        assert b.json()["verifications"][0]["id"] != a.json()["verifications"][0]["id"]
        # Nor does B learn that A used the key with another body.
        other = as_client(http, "203.0.113.3", {"phone": "+1 202 555 0143"})
        assert other.status_code == 201, other.text
        # B's own retry replays B's answer, not A's.
        assert as_client(http, "203.0.113.2", body).json() == b.json()
