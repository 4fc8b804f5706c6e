"""The admin API: bearer keys, the policy document, its history and audit, across workers."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select

from support.api import admin_headers, runtime
from verifyd.models import AuditEvent, table_of
from verifyd.settings import Settings

DOCUMENT_KEYS = {
    "version",
    "mode",
    "weights",
    "prefer",
    "experiment",
    "sms",
    "email",
    "guess_bound",
    "guess_limit",
    "send_limit",
    "changed_at",
    "changed_by",
}
# The documented defaults: 4 digits, 10 min, 5 checks, 30 s cooldown, links for 24 h.
DEFAULT_SMS = {"code_length": 4, "ttl_seconds": 600, "max_checks": 5, "resend_cooldown_seconds": 30}
DEFAULT_EMAIL = {"ttl_seconds": 86400}
ENDPOINTS = [
    ("GET", "/v1/admin/policy", None),
    ("PUT", "/v1/admin/policy", {"mode": "email"}),
    ("GET", "/v1/admin/policy/history", None),
]


def _problem(r: Any, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = r.json()
    assert body["code"] == code and body["status"] == status
    return body


def _policy(client: TestClient, auth: dict[str, str]) -> dict[str, Any]:
    r = client.get("/v1/admin/policy", headers=auth)
    assert r.status_code == 200, r.text
    doc: dict[str, Any] = r.json()
    return doc


def _put(client: TestClient, auth: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
    r = client.put("/v1/admin/policy", headers=auth, json=body)
    assert r.status_code == 200, r.text
    doc: dict[str, Any] = r.json()
    return doc


def _history(client: TestClient, auth: dict[str, str]) -> list[dict[str, Any]]:
    r = client.get("/v1/admin/policy/history", headers=auth)
    assert r.status_code == 200, r.text
    versions: list[dict[str, Any]] = r.json()["versions"]
    return versions


def test_missing_malformed_unknown_and_revoked_keys_get_401(client: TestClient) -> None:
    auth = admin_headers(client, "ops-alice")
    key = auth["Authorization"].removeprefix("Bearer ")
    _, key_id, secret = key.split("_", 2)
    revoked = admin_headers(client, "ops-bob")
    runtime(client).admin_keys.revoke("ops-bob", "cli:test")
    refused: list[dict[str, str]] = [
        {},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer garbage"},
        {"Authorization": f"Basic {key}"},
        {"Authorization": f"Bearer vdk_{key_id}_{secret[:-1]}x"},
        {"Authorization": f"Bearer vdk_000000000000_{secret}"},
        {"Authorization": f"Bearer {key}x"},
        revoked,
    ]
    for method, path, body in ENDPOINTS:
        for headers in refused:
            r = client.request(method, path, headers=headers, json=body)
            _problem(r, 401, "unauthorized")
    assert _policy(client, auth)["mode"] == "phone", "a refused PUT changed nothing"


def test_policy_document_has_the_design_shape_and_defaults(client: TestClient) -> None:
    doc = _policy(client, admin_headers(client))
    assert set(doc) == DOCUMENT_KEYS
    assert (doc["version"], doc["mode"], doc["weights"]) == (1, "phone", None)
    assert (doc["prefer"], doc["experiment"]) == ("email", None)
    assert (doc["sms"], doc["email"]) == (DEFAULT_SMS, DEFAULT_EMAIL)
    # N + K = 20 evaluated guesses in any 24 h (VERIFYD_GUESS_* defaults), 4 digits
    assert doc["guess_bound"] == "1 in 500 per destination per day"
    assert doc["guess_limit"]["per_day"] == 20
    assert doc["guess_limit"]["longest_owner_lockout_seconds"] == 4 * 3600
    assert doc["send_limit"]["per_hour"] == 11
    assert doc["send_limit"]["longest_owner_lockout_seconds"] == 15 * 60
    assert datetime.fromisoformat(doc["changed_at"].replace("Z", "+00:00")).tzinfo is not None
    assert isinstance(doc["changed_by"], str) and doc["changed_by"]


def test_a_document_read_can_be_put_back_read_only_fields_and_all(client: TestClient) -> None:
    auth = admin_headers(client)
    doc = _policy(client, auth)
    assert {"guess_limit", "send_limit", "guess_bound"} <= set(doc)
    assert _put(client, auth, doc) == doc, "the read-only fields are accepted and ignored"


def test_put_replaces_the_document_whole_and_identical_puts_change_nothing(
    client: TestClient,
) -> None:
    auth = admin_headers(client, "ops-alice")
    assert _policy(client, auth)["version"] == 1
    split = _put(
        client,
        auth,
        {
            "mode": "split",
            "weights": {"phone": 70, "email": 30},
            "prefer": "phone",
            "experiment": "exp_2xk3",
            "sms": {"code_length": 6, "ttl_seconds": 300},
            "email": {"ttl_seconds": 3600},
        },
    )
    assert set(split) == DOCUMENT_KEYS
    assert split["version"] == 2 and split["changed_by"] == "key:ops-alice"
    assert (split["mode"], split["weights"]) == ("split", {"phone": 70, "email": 30})
    assert (split["prefer"], split["experiment"]) == ("phone", "exp_2xk3")
    assert split["sms"] == {**DEFAULT_SMS, "code_length": 6, "ttl_seconds": 300}
    assert split["email"] == {"ttl_seconds": 3600}
    assert split["guess_bound"] == "1 in 50,000 per destination per day"
    assert _policy(client, auth) == split

    phone = _put(client, auth, {"mode": "phone"})
    assert phone["version"] == 3
    assert (phone["mode"], phone["weights"], phone["experiment"]) == ("phone", None, None)
    assert (phone["prefer"], phone["sms"], phone["email"]) == ("email", DEFAULT_SMS, DEFAULT_EMAIL)
    assert phone["guess_bound"] == "1 in 500 per destination per day"

    again = _put(client, auth, {"mode": "phone"})
    assert again == phone, "an identical PUT answers the current version unchanged"
    explicit = _put(client, auth, {"mode": "phone", "sms": DEFAULT_SMS, "email": DEFAULT_EMAIL})
    assert explicit["version"] == 3, "spelling out the defaults is the same document"
    assert [v["version"] for v in _history(client, auth)] == [3, 2, 1]


def test_the_document_read_can_be_sent_back_as_is(client: TestClient) -> None:
    auth = admin_headers(client)
    assert _policy(client, auth)["version"] == 1
    for body in ({"mode": "email"}, {"mode": "split", "weights": {"phone": 1, "email": 3}}):
        current = _put(client, auth, body)
        read = _policy(client, auth)
        echoed = _put(client, auth, read)
        assert echoed == read == current
    assert [v["version"] for v in _history(client, auth)] == [3, 2, 1]


def test_invalid_documents_get_422_with_the_field(client: TestClient) -> None:
    auth = admin_headers(client)
    bad: list[tuple[dict[str, Any], str]] = [
        ({"mode": "split", "weights": {"phone": -1, "email": 50}}, "weights"),
        ({"mode": "split", "weights": {"phone": 0, "email": 0}}, "weights"),
        ({"mode": "split", "weights": {"phone": 50, "sms": 50}}, "weights"),
        ({"mode": "split", "weights": {"phone": 50.5, "email": 49.5}}, "weights.phone"),
        ({"mode": "split", "weights": {"phone": 50.0, "email": 50}}, "weights.phone"),
        ({"mode": "split", "weights": {"phone": "50", "email": 50}}, "weights.phone"),
        ({"mode": "split", "weights": {"phone": True, "email": 1}}, "weights.phone"),
        ({"mode": "split", "weights": [50, 50]}, "weights"),
        ({"mode": "phone", "sms": {"code_length": 3}}, "sms.code_length"),
        ({"mode": "phone", "sms": {"code_length": 11}}, "sms.code_length"),
        ({"mode": "phone", "sms": {"max_checks": 0}}, "sms.max_checks"),
        ({"mode": "phone", "email": {"ttl_seconds": -1}}, "email.ttl_seconds"),
        ({"mode": "sms"}, "mode"),
        ({"weights": {"phone": 1}}, "mode"),
        ({"mode": "phone", "colour": "blue"}, "colour"),
    ]
    for body, field in bad:
        r = client.put("/v1/admin/policy", headers=auth, json=body)
        problem = _problem(r, 422, "invalid_request")
        fields = [e["field"] for e in problem.get("errors", [])]
        assert field in fields, (body, problem)
    doc = _policy(client, auth)
    assert (doc["version"], doc["mode"]) == (1, "phone")


def test_history_is_newest_first_with_old_to_new_changes_and_audited(client: TestClient) -> None:
    auth = admin_headers(client, "ops-alice")
    assert _policy(client, auth)["version"] == 1
    _put(client, auth, {"mode": "split", "weights": {"phone": 70, "email": 30}})
    _put(client, auth, {"mode": "email", "sms": {"code_length": 6}})
    v3, v2, v1 = _history(client, auth)
    assert [v["version"] for v in (v3, v2, v1)] == [3, 2, 1]
    assert all(set(v) == DOCUMENT_KEYS | {"changes"} for v in (v3, v2, v1))
    assert v3["changes"]["mode"] == ["split", "email"]
    assert v3["changes"]["weights"] == [{"phone": 70, "email": 30}, None]
    assert v3["changes"]["sms"] == [DEFAULT_SMS, {**DEFAULT_SMS, "code_length": 6}]
    assert v2["changes"]["mode"] == ["phone", "split"]
    assert v2["changes"]["experiment"] == [None, v2["experiment"]]
    assert "prefer" not in v2["changes"] and "email" not in v3["changes"]
    assert v1["changes"]["mode"] == [None, "phone"]
    assert (v3["changed_by"], v2["changed_by"]) == ("key:ops-alice", "key:ops-alice")
    for newer, older in ((v3, v2), (v2, v1)):
        for key, (old, new) in newer["changes"].items():
            assert (old, new) == (older[key], newer[key])

    audit = table_of(AuditEvent)
    with runtime(client).db.read() as conn:
        events = conn.execute(
            select(audit).where(audit.c.action == "policy.change").order_by(audit.c.id)
        ).all()
    by_key = [e for e in events if e.actor == "key:ops-alice"]
    assert len(by_key) == 2
    assert (by_key[0].before["mode"], by_key[0].after["mode"]) == ("phone", "split")
    assert (by_key[1].before["mode"], by_key[1].after["mode"]) == ("split", "email")
    assert by_key[1].after["sms"]["code_length"] == 6
    assert by_key[0].at <= by_key[1].at


def test_another_worker_sees_a_change_without_restart(
    make_settings: Callable[..., Settings], make_client: Callable[[Settings], TestClient]
) -> None:
    uncached = make_settings(policy_cache_seconds=0)
    first, second = make_client(uncached), make_client(uncached)
    auth = admin_headers(first)
    assert second.get("/v1/policy").json()["mode"] == "phone"
    _put(first, auth, {"mode": "email"})
    assert second.get("/v1/policy").json()["mode"] == "email"
    assert _policy(second, auth)["version"] == 2

    # With a 1 s cache a worker may answer the old policy, but only for about a second.
    cached = make_settings(policy_cache_seconds=1)
    writer, reader = make_client(cached), make_client(cached)
    read_at = time.monotonic()
    assert reader.get("/v1/policy").json()["mode"] == "email"  # now cached
    _put(writer, auth, {"mode": "both"})
    mode = reader.get("/v1/policy").json()["mode"]
    if time.monotonic() - read_at < 0.8:
        assert mode == "email", "the cache was not used"
    while mode != "both":
        assert time.monotonic() - read_at < 3, "the change never reached the other worker"
        time.sleep(0.05)
        mode = reader.get("/v1/policy").json()["mode"]
    assert time.monotonic() - read_at >= 0.9


def test_first_change_on_a_fresh_database_follows_the_defaults_version(
    client: TestClient,
) -> None:
    # No request has read the policy yet: the PUT still records the settings' defaults as
    # version 1, so the audit of the change shows what it replaced.
    auth = admin_headers(client)
    doc = _put(client, auth, {"mode": "email"})
    assert doc["version"] == 2
    [newest, first] = _history(client, auth)
    assert (first["version"], first["mode"], first["changed_by"]) == (1, "phone", "system:defaults")
    assert newest["changes"]["mode"] == ["phone", "email"]
    audit = table_of(AuditEvent)
    with runtime(client).db.read() as conn:
        rows = conn.execute(select(audit.c.before, audit.c.after).order_by(audit.c.id)).all()
    assert rows[-1].before["mode"] == "phone" and rows[-1].after["mode"] == "email"
