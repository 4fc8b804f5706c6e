"""Signup input a frontend gets wrong: sandbox address syntax, the ``channel`` field."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from support.api import sandbox_messages, set_policy, signup

PHONE = "+1 202 555 0142"
PHONE_E164 = "+12025550142"
EMAIL = "alice@example.test"


def problem(r: httpx.Response, status: int, code: str, field: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = r.json()
    assert body["code"] == code
    assert [e["field"] for e in body["errors"]] == [field], body
    return body


# ---------------------------------------------------------------- sandbox addresses


@pytest.mark.parametrize(
    "address",
    [
        "<script>@example.test",
        '"unterminated@example.test',
        "a..b@example.test",
        ".lead@example.test",
        "sp ace@example.test",
    ],
)
def test_a_sandbox_address_obeys_the_syntax_of_a_real_one(client: TestClient, address: str) -> None:
    set_policy(client, "either")
    real = address.replace("@example.test", "@gmail.com")
    problem(client.post("/v1/accounts", json={"email": real}), 422, "invalid_email", "email")
    r = client.post("/v1/accounts", json={"email": address})
    problem(r, 422, "invalid_email", "email")
    assert sandbox_messages(client, address) == []


def test_a_sandbox_address_with_a_plain_local_part_still_works(client: TestClient) -> None:
    set_policy(client, "either")
    created = signup(client, email="Ada.Lovelace+test@example.test")
    assert [v["channel"] for v in created["verifications"]] == ["email"]
    [message] = sandbox_messages(client, "ada.lovelace+test@example.test")
    assert message["kind"] == "link"


# ---------------------------------------------------------------- channel


@pytest.mark.parametrize("mode", ["either", "email", "phone", "both"])
def test_an_unknown_channel_is_refused_whatever_identities_are_given(
    client: TestClient, mode: str
) -> None:
    set_policy(client, mode)
    for body in (
        {"email": EMAIL, "channel": "carrier-pigeon"},
        {"phone": PHONE, "channel": "carrier-pigeon"},
        {"phone": PHONE, "email": EMAIL, "channel": "carrier-pigeon"},
    ):
        problem(client.post("/v1/accounts", json=body), 422, "invalid_request", "channel")
    assert sandbox_messages(client, PHONE_E164) == []
    assert sandbox_messages(client, EMAIL) == []


def test_the_error_lists_exactly_the_spellings_that_are_accepted(client: TestClient) -> None:
    set_policy(client, "either")
    r = client.post("/v1/accounts", json={"phone": PHONE, "channel": "fax"})
    detail = problem(r, 422, "invalid_request", "channel")["detail"]
    listed = re.findall(r"[a-z]+", detail.split("one of", 1)[1])
    assert sorted(listed) == ["email", "phone", "sms"], detail
    picks = {}
    for spelling in listed:
        created = signup(client, phone=PHONE, email=EMAIL, channel=spelling)
        picks[spelling] = [v["channel"] for v in created["verifications"]]
    assert picks == {"sms": ["sms"], "phone": ["sms"], "email": ["email"]}


def test_a_channel_for_an_identity_not_given_is_refused_under_either(client: TestClient) -> None:
    set_policy(client, "either")
    r = client.post("/v1/accounts", json={"email": EMAIL, "channel": "sms"})
    body = problem(r, 422, "invalid_request", "channel")
    assert "phone" in body["detail"]
    r = client.post("/v1/accounts", json={"phone": PHONE, "channel": "email"})
    problem(r, 422, "invalid_request", "channel")
    assert sandbox_messages(client, PHONE_E164) == []
    # naming the one that is given is fine
    created = signup(client, email=EMAIL, channel="email")
    assert [v["channel"] for v in created["verifications"]] == ["email"]
