"""Every error answer is RFC 9457 problem+json with a stable code; no input gives a 500."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient
from httpx2 import Response

from support.api import admin_headers, latest_code, runtime, signup
from verifyd.settings import Settings

PROBLEM_JSON = "application/problem+json"
JSON = {"content-type": "application/json"}
#: Over every field's length limit, under the body cap (64 KiB): the field is refused.
HUGE = "9" * 30_000

#: Pure request parsing and routing: the database plays no part, so once is enough.
sqlite_only = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def backends(pg_bug: str | None = None) -> list[Any]:
    """Both backends for ``database_url`` (indirect), the PostgreSQL one xfailed for a bug."""
    pg_marks: list[Any] = [pytest.mark.postgres]
    if pg_bug:
        pg_marks.append(pytest.mark.xfail(reason=pg_bug, strict=True))
    return [
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgresql", id="postgresql", marks=pg_marks),
    ]


def assert_problem(r: Response, status: int, code: str, field: str | None = None) -> dict[str, Any]:
    """Assert an RFC 9457 answer; returns its body."""
    assert r.status_code == status, r.text
    assert r.headers["content-type"].split(";")[0].strip() == PROBLEM_JSON, r.headers
    body: dict[str, Any] = r.json()
    for key in ("type", "title", "detail", "code"):
        assert isinstance(body.get(key), str) and body[key], (key, body)
    assert body["status"] == status and body["code"] == code, body
    for err in body.get("errors", []):
        assert set(err) == {"field", "code", "message"}, err
        assert all(isinstance(v, str) and v for v in err.values()), err
    if field is not None:
        fields = [e["field"].lower() for e in body.get("errors", [])]
        # the field itself, or a part of it (``weights.phone``)
        wanted = field.lower()
        assert any(f == wanted or f.startswith(wanted + ".") for f in fields), body
    if status == 429:
        retry_after = r.headers.get("retry-after", "")
        assert retry_after.isdigit() and int(retry_after) >= 1, r.headers
    return body


# ---------------------------------------------------------------- bodies (parsing only)

_BAD_BODIES: list[Any] = [
    # (method, path, request kwargs, status, code, field)
    ("POST", "/v1/accounts", {"content": b'{"phone": ', "headers": JSON}, 422, None),
    (
        "POST",
        "/v1/accounts",
        {"content": b'{"phone": "+12025550100"} x', "headers": JSON},
        422,
        None,
    ),
    ("POST", "/v1/accounts", {"content": b'{"phone": NaN}', "headers": JSON}, 422, "phone"),
    ("POST", "/v1/accounts", {"content": b'{"phone": "\xff\xfe"}', "headers": JSON}, 400, None),
    ("POST", "/v1/accounts", {"content": b"[" * 60_000, "headers": JSON}, 400, None),
    ("POST", "/v1/accounts", {"content": b"", "headers": JSON}, 422, "body"),
    ("POST", "/v1/accounts", {}, 422, "body"),
    ("POST", "/v1/accounts", {"json": []}, 422, "body"),
    ("POST", "/v1/accounts", {"json": "+12025550100"}, 422, "body"),
    ("POST", "/v1/accounts", {"json": 12025550100}, 422, "body"),
    ("POST", "/v1/accounts", {"json": None}, 422, "body"),
    ("POST", "/v1/accounts", {"json": True}, 422, "body"),
    (
        "POST",
        "/v1/accounts",
        {"content": b'{"phone": "+12025550100"}', "headers": {"content-type": "text/plain"}},
        422,
        "body",
    ),
    ("POST", "/v1/accounts", {"data": {"phone": "+12025550100"}}, 422, "body"),
    ("POST", "/v1/accounts", {"json": {"phone": "+12025550100", "bogus": 1}}, 422, "bogus"),
    ("POST", "/v1/accounts", {"json": {"phone": 12025550100}}, 422, "phone"),
    ("POST", "/v1/accounts", {"json": {"email": ["a@example.test"]}}, 422, "email"),
    ("POST", "/v1/accounts", {"json": {"phone": "+12025550100", "subject": {}}}, 422, "subject"),
    ("POST", "/v1/accounts", {"json": {"phone": "+12025550100", "locale": True}}, 422, "locale"),
    ("POST", "/v1/accounts", {"json": {"phone": "+12025550100", "channel": 1.5}}, 422, "channel"),
    *[
        ("POST", "/v1/accounts", {"json": {"phone": "+12025550100", field: HUGE}}, 422, field)
        for field in ("email", "channel", "subject", "locale", "redirect_url")
    ],
    ("POST", "/v1/accounts", {"json": {"phone": HUGE}}, 422, "phone"),
    ("POST", "/v1/verifications/ver_x/check", {"json": {"code": 1234}}, 422, "code"),
    ("POST", "/v1/verifications/ver_x/check", {"json": {"code": None}}, 422, "code"),
    ("POST", "/v1/verifications/ver_x/check", {"json": {"code": ["1234"]}}, 422, "code"),
    ("POST", "/v1/verifications/ver_x/check", {"json": {}}, 422, "code"),
    ("POST", "/v1/verifications/ver_x/check", {"json": {"code": HUGE}}, 422, "code"),
    ("POST", "/v1/verifications/ver_x/check", {"json": {"code": "1", "x": 1}}, 422, "x"),
    ("POST", "/v1/verifications/ver_x/check", {"json": ["1234"]}, 422, "body"),
    ("POST", "/v1/verifications/ver_x/check", {"content": b'{"code"', "headers": JSON}, 422, None),
    ("POST", "/v1/email/verify", {"content": b'{"token"', "headers": JSON}, 422, None),
    ("POST", "/v1/email/verify", {"json": ["t"]}, 422, None),
    ("POST", "/v1/email/verify", {"json": {"token": 1}}, 422, "token"),
    ("POST", "/v1/email/verify", {"json": {"token": HUGE}}, 422, "token"),
    ("POST", "/v1/email/verify", {"json": {"token": "t", "x": 1}}, 422, "x"),
]


@sqlite_only
@pytest.mark.parametrize(("method", "path", "kwargs", "status", "field"), _BAD_BODIES)
def test_bad_body_is_a_problem(
    client: TestClient,
    method: str,
    path: str,
    kwargs: dict[str, Any],
    status: int,
    field: str | None,
) -> None:
    r = client.request(method, path, **kwargs)
    assert_problem(r, status, "invalid_request", field)


@sqlite_only
def test_malformed_json_names_the_body(client: TestClient) -> None:
    r = client.post("/v1/accounts", content=b'{"phone": ', headers=JSON)
    body = assert_problem(r, 422, "invalid_request")
    assert [e["field"] for e in body["errors"]] == ["body"]


_BAD_POLICIES: list[Any] = [
    ({"content": b'{"mode": ', "headers": JSON}, None),
    ({"json": []}, "body"),
    ({"json": {}}, "mode"),
    ({"json": {"mode": "sms"}}, "mode"),
    ({"json": {"mode": "split", "weights": {"phone": "50"}}}, "weights.phone"),
    ({"json": {"mode": "split", "weights": {"phone": 0, "email": 0}}}, "weights"),
    ({"json": {"mode": "split", "weights": {"phone": -1, "email": 2}}}, "weights"),
    ({"json": {"mode": "split", "weights": {"fax": 1}}}, "weights"),
    ({"json": {"mode": "phone", "sms": {"code_length": 3}}}, "sms.code_length"),
    ({"json": {"mode": "phone", "sms": {"code_length": "4"}}}, "sms.code_length"),
    ({"json": {"mode": "phone", "experiment": "a b"}}, "experiment"),
    ({"json": {"mode": "phone", "bogus": 1}}, "bogus"),
]


@sqlite_only
@pytest.mark.parametrize(("kwargs", "field"), _BAD_POLICIES)
def test_bad_policy_document_is_a_problem(
    client: TestClient, kwargs: dict[str, Any], field: str | None
) -> None:
    kwargs = dict(kwargs)
    headers = {**admin_headers(client), **kwargs.pop("headers", {})}
    r = client.put("/v1/admin/policy", headers=headers, **kwargs)
    assert_problem(r, 422, "invalid_request", field)
    assert client.get("/v1/policy").json()["mode"] == "phone"  # nothing changed


# ---------------------------------------------------------------- routing, query, headers

_ROUTING: list[Any] = [
    ("GET", "/", 404, "not_found", None),
    ("GET", "/v1", 404, "not_found", None),
    ("GET", "/v1/nope", 404, "not_found", None),
    ("POST", "/v1/accounts/acc_x/verify", 404, "not_found", None),
    ("GET", "/v1/accounts/a%2Fb", 404, "not_found", None),
    ("POST", "/v1/verifications/a%2Fb/check", 404, "not_found", None),
    ("GET", "/v1/accounts", 405, "method_not_allowed", {"POST"}),
    ("DELETE", "/v1/accounts", 405, "method_not_allowed", {"POST"}),
    ("PUT", "/v1/accounts/acc_x", 405, "method_not_allowed", {"GET"}),
    ("GET", "/v1/verifications/ver_x/check", 405, "method_not_allowed", {"POST"}),
    ("GET", "/v1/verifications/ver_x/resend", 405, "method_not_allowed", {"POST"}),
    pytest.param(
        "DELETE",
        "/v1/email/verify",
        405,
        "method_not_allowed",
        {"GET", "HEAD", "POST"},
    ),
    ("POST", "/healthz", 405, "method_not_allowed", {"GET"}),
    pytest.param(
        "PATCH",
        "/v1/admin/policy",
        405,
        "method_not_allowed",
        {"GET", "PUT"},
    ),
]


@sqlite_only
@pytest.mark.parametrize(("method", "path", "status", "code", "allow"), _ROUTING)
def test_unknown_route_and_wrong_method(
    client: TestClient,
    method: str,
    path: str,
    status: int,
    code: str,
    allow: set[str] | None,
) -> None:
    r = client.request(method, path, json={} if method in ("POST", "PUT", "PATCH") else None)
    assert_problem(r, status, code)
    if allow is not None:  # RFC 9110: a 405 lists what the resource does allow
        assert {m.strip() for m in r.headers["allow"].split(",")} == allow


_BAD_QUERIES: list[Any] = [
    ("/v1/sandbox/messages", {}, "to"),
    ("/v1/sandbox/messages", {"to": "1" * 321}, "to"),
    ("/v1/policy", {"subject": "s" * 201}, "subject"),
    ("/v1/email/verify", {"token": "t" * 201}, "token"),
]


@sqlite_only
@pytest.mark.parametrize(("path", "params", "field"), _BAD_QUERIES)
def test_bad_query_is_a_problem(
    client: TestClient, path: str, params: dict[str, str], field: str
) -> None:
    assert_problem(client.get(path, params=params), 422, "invalid_request", field)


@sqlite_only
@pytest.mark.parametrize("key", ["", "k" * 256], ids=["empty", "256-chars"])
def test_bad_idempotency_key_is_refused_before_anything_is_created(
    client: TestClient, key: str
) -> None:
    r = client.post(
        "/v1/accounts", json={"phone": "+12025550100"}, headers={"Idempotency-Key": key}
    )
    assert_problem(r, 422, "invalid_request", "idempotency-key")
    assert client.get("/v1/sandbox/messages", params={"to": "+12025550100"}).json() == {
        "messages": []
    }


@sqlite_only
def test_sandbox_endpoint_is_a_404_problem_when_sandbox_is_off(
    make_settings: Callable[..., Settings], make_client: Callable[[Settings], TestClient]
) -> None:
    client = make_client(make_settings(sandbox=False))
    r = client.get("/v1/sandbox/messages", params={"to": "+12025550100"})
    assert_problem(r, 404, "not_found")


# ---------------------------------------------------------------- from here on the database
# plays a part, so each test runs on both backends; cases are looped inside one test (one
# database each) and every mismatch is collected, so one run reports them all.


def test_admin_without_a_valid_key_is_401(client: TestClient) -> None:
    good = admin_headers(client, "ops-a")["Authorization"]
    key_id = good.split("_")[1]
    runtime(client).admin_keys.revoke("ops-a", "cli:test")
    live = admin_headers(client, "ops-b")["Authorization"]
    candidates: list[str | None] = [
        None,
        "",
        "Bearer",
        "Basic dXNlcjpwYXNz",
        "Bearer vdk_nope",
        "Bearer vdk_000000000000_not-the-secret",
        f"Bearer vdk_{key_id}_{'A' * 43}",  # a real id, the wrong secret
        good,  # revoked
        live.replace("Bearer ", "Token "),
        live + "x",
        "Bearer vdk_\x01_\x7f",
        "Bearer " + "x" * 10_000,
    ]
    wrong = []
    for authorization in candidates:
        headers = {} if authorization is None else {"Authorization": authorization}
        for method, path in (
            ("GET", "/v1/admin/policy"),
            ("GET", "/v1/admin/policy/history"),
            ("PUT", "/v1/admin/policy"),
        ):
            # A well-formed but invalid document: the key is checked before the body.
            r = client.request(method, path, headers=headers, json={"mode": "nonsense"})
            try:
                assert_problem(r, 401, "unauthorized")
            except AssertionError as exc:
                wrong.append((authorization and authorization[:40], method, path, str(exc)[:200]))
    assert wrong == []
    assert client.get("/v1/admin/policy", headers={"Authorization": live}).status_code == 200


def test_policy_history_on_a_fresh_database(client: TestClient) -> None:
    auth = admin_headers(client)
    r = client.get("/v1/admin/policy/history", headers=auth)
    assert r.status_code == 200, r.text
    current = client.get("/v1/admin/policy", headers=auth).json()["version"]
    assert [v["version"] for v in r.json()["versions"]] in ([], [current])


def test_ids_that_do_not_exist_are_404_problems(client: TestClient) -> None:
    ids = ["nope", "acc_" + "A" * 22, "ver_" + "A" * 22, "ü-日本", "x" * 4000, "'; --", "%25", " "]
    wrong = []
    for raw in ids:
        gid = quote(raw, safe="")
        for method, path, code in (
            ("GET", f"/v1/accounts/{gid}", "account_not_found"),
            ("GET", f"/v1/verifications/{gid}", "verification_not_found"),
            ("POST", f"/v1/verifications/{gid}/check", "verification_not_found"),
            ("POST", f"/v1/verifications/{gid}/resend", "verification_not_found"),
        ):
            r = client.request(method, path, json={"code": "1234"} if "check" in path else None)
            try:
                assert_problem(r, 404, code)
            except AssertionError as exc:
                wrong.append((raw[:20], method, path[:40], str(exc)[:200]))
    assert wrong == []


@pytest.mark.parametrize("database_url", backends(), indirect=True)
def test_nul_in_a_path_id_is_a_404(client: TestClient) -> None:
    wrong = []
    for method, path, code in (
        ("GET", "/v1/accounts/acc_%00x", "account_not_found"),
        ("GET", "/v1/verifications/ver_%00x", "verification_not_found"),
        ("POST", "/v1/verifications/ver_%00x/check", "verification_not_found"),
        ("POST", "/v1/verifications/ver_%00x/resend", "verification_not_found"),
    ):
        r = client.request(method, path, json={"code": "1234"} if "check" in path else None)
        if r.status_code != 404 or r.json().get("code") != code:
            wrong.append((method, path, r.status_code, r.text[:120]))
    assert wrong == []


@pytest.mark.parametrize("database_url", backends(), indirect=True)
def test_nul_in_the_sandbox_query_finds_nothing(client: TestClient) -> None:
    answers = {
        to: client.get("/v1/sandbox/messages", params={"to": to})
        for to in ("\x00", "+1202555\x000142", "a\x00@example.test")
    }
    assert {to: (r.status_code, r.json()) for to, r in answers.items()} == {
        to: (200, {"messages": []}) for to in answers
    }


def _odd_signups(client: TestClient, cases: list[tuple[dict[str, Any], dict[int, str]]]) -> None:
    """Post each body; the answer must be one of its outcomes ({status: problem code})."""
    wrong = []
    for body, outcomes in cases:
        r = client.post("/v1/accounts", json=body)
        try:
            assert r.status_code in outcomes, r.text[:200]
            if r.status_code == 201:
                assert r.json()["account"]["status"] == "pending"
            else:
                assert_problem(r, r.status_code, outcomes[r.status_code])
        except AssertionError as exc:
            wrong.append((body, str(exc)[:300]))
    assert wrong == []


def test_nul_and_non_ascii_in_signup_fields(client: TestClient) -> None:
    ok = 201
    phone = "+12025550142"
    _odd_signups(
        client,
        [
            ({"phone": "+1202555\x000142"}, {422: "invalid_phone"}),
            ({"phone": "\x00"}, {422: "invalid_phone"}),
            ({"phone": "+1 ٢٠٢ ٥٥٥ ٠١٤٢"}, {422: "invalid_phone", ok: ""}),
            ({"phone": "+44 7700 900\u200b123"}, {422: "invalid_phone", ok: ""}),
            ({"phone": phone, "email": "a\x00@example.test"}, {422: "invalid_email"}),
            ({"phone": phone, "email": "ü@exämple.test"}, {422: "invalid_email", ok: ""}),
            ({"phone": phone, "email": "ü@example.test"}, {422: "invalid_email", ok: ""}),
            # NUL never reaches the database (PostgreSQL text cannot hold it)
            ({"phone": phone, "subject": "日本語\x00🙂"}, {422: "invalid_request"}),
            ({"phone": phone, "subject": "日本語🙂"}, {ok: ""}),
            ({"phone": phone, "channel": "\x00"}, {ok: "", 422: "invalid_request"}),
            ({"phone": phone, "locale": "zh-汉字"}, {ok: "", 422: "invalid_request"}),
            (
                {"phone": phone, "redirect_url": "https://app.example.com/welcome/ünï"},
                {ok: "", 422: "redirect_not_allowed"},
            ),
            (
                {"phone": phone, "redirect_url": "https://app.example.com\x00.evil/welcome"},
                {422: "invalid_request"},
            ),
        ],
    )


@pytest.mark.parametrize("database_url", backends(), indirect=True)
def test_nul_in_stored_signup_fields(client: TestClient) -> None:
    phone = "+12025550142"
    _odd_signups(
        client,
        [
            ({"phone": phone, "locale": "en\x00"}, {422: "invalid_request"}),
            (
                {"phone": phone, "redirect_url": "https://app.example.com/welcome/\x00"},
                {422: "invalid_request"},
            ),
        ],
    )


@sqlite_only
def test_other_spellings_of_a_sandbox_number_stay_in_the_sandbox(client: TestClient) -> None:
    for spelling in ("tel:+12025550142", "+12\uff10\uff1255501\uff14\uff12"):
        r = client.post("/v1/accounts", json={"phone": spelling})
        if r.status_code != 201:
            assert_problem(r, 422, "invalid_phone")
            continue
        [ver] = r.json()["verifications"]
        inbox = client.get("/v1/sandbox/messages", params={"to": "+12025550142"}).json()
        assert ver["delivery"] == "sent" and inbox["messages"], spelling


def test_malformed_code_is_refused_without_costing_an_attempt(client: TestClient) -> None:
    ver = signup(client, phone="+12025550142")["verifications"][0]
    wrong = []
    for code in ("12\x0034", "\x00\x00\x00\x00", "١٢٣٤", "１２３４", "12 34", "", "🙂🙂", "0x1f"):
        r = client.post(f"/v1/verifications/{ver['id']}/check", json={"code": code})
        try:
            assert_problem(r, 422, "invalid_request", "code")
        except AssertionError as exc:
            wrong.append((code, str(exc)[:200]))
    assert wrong == []
    after = client.get(f"/v1/verifications/{ver['id']}").json()
    assert (after["status"], after["attempts_left"]) == ("pending", ver["attempts_left"])


# ---------------------------------------------------------------- every 429 has Retry-After


def _resend_twice(client: TestClient) -> Response:
    ver = signup(client, phone="+12025550142")["verifications"][0]
    return client.post(f"/v1/verifications/{ver['id']}/resend")


def _signup_twice(client: TestClient) -> Response:
    signup(client, phone="+12025550142")
    return client.post("/v1/accounts", json={"phone": "+12025550143"})


def _send_twice_to_one_number(client: TestClient) -> Response:
    signup(client, phone="+12025550142")
    return client.post("/v1/accounts", json={"phone": "+12025550142"})


def _check_twice(client: TestClient) -> Response:
    ver = signup(client, phone="+12025550142")["verifications"][0]
    wrong = "0000" if latest_code(client, "+12025550142") != "0000" else "1111"
    r = client.post(f"/v1/verifications/{ver['id']}/check", json={"code": wrong})
    assert_problem(r, 422, "code_incorrect")
    return client.post(f"/v1/verifications/{ver['id']}/check", json={"code": wrong})


@pytest.mark.parametrize(
    ("limits", "provoke", "code"),
    [
        ({}, _resend_twice, "rate_limited"),
        ({"signups_per_ip_per_hour": 1}, _signup_twice, "rate_limited"),
        ({"sends_per_destination_per_hour": 1}, _send_twice_to_one_number, "rate_limited"),
        ({"checks_per_ip_per_minute": 1}, _check_twice, "rate_limited"),
        ({"guess_budget_per_day": 1}, _check_twice, "too_many_attempts"),
    ],
    ids=["resend-cooldown", "signups-per-ip", "sends-per-destination", "checks-per-ip", "guesses"],
)
def test_every_429_carries_retry_after(
    make_settings: Callable[..., Settings],
    make_client: Callable[[Settings], TestClient],
    limits: dict[str, int],
    provoke: Callable[[TestClient], Response],
    code: str,
) -> None:
    client = make_client(make_settings(sandbox_limit_multiplier=1, **limits))
    r = provoke(client)
    assert_problem(r, 429, code)
    window = 86400 if code == "too_many_attempts" else 3600
    assert int(r.headers["retry-after"]) <= window
