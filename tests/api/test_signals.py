"""Suspect signals: each flags a signup by default, blocks it when told, and is counted."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from support.api import set_policy, stats, stats_arm
from verifyd.settings import Settings


def _arm(client: TestClient, version: int, arm: str) -> dict[str, Any]:
    return stats_arm(stats(client), version, arm)


def _signup(client: TestClient, **body: Any) -> Any:
    return client.post("/v1/accounts", json=body)


@pytest.fixture
def email_client(
    make_settings: Callable[..., Settings], make_client: Callable[[Settings], TestClient]
) -> Callable[..., TestClient]:
    def make(**overrides: Any) -> TestClient:
        client = make_client(make_settings(**overrides))
        return client

    return make


def test_disposable_and_alias_emails_are_flagged(email_client: Callable[..., TestClient]) -> None:
    client = email_client()
    version = set_policy(client, "email")["version"]
    for address in (
        "someone@mailinator.com",
        "john.doe@gmail.com",
        "johndoe+promo@gmail.com",  # the same Gmail mailbox
        "jane@outlook.com",
        "j.ane@outlook.com",  # Outlook keeps dots: another mailbox
    ):
        assert _signup(client, email=address).status_code == 201
    suspect = _arm(client, version, "email")["suspect"]
    assert suspect["by_signal"] == {"disposable_email": 1, "email_alias": 1}
    assert suspect["count"] == 2 and suspect["of"] == 5


def test_number_types_are_flagged_and_fixed_lines_blocked(
    email_client: Callable[..., TestClient],
) -> None:
    # Personal numbers are blocked by default (SMS pumping); unblocked, they flag non_mobile.
    client = email_client(blocked_number_types=["FIXED_LINE"])
    version = set_policy(client, "phone")["version"]
    assert _signup(client, phone="+445612345678").status_code == 201  # VOIP
    assert _signup(client, phone="+447012345678").status_code == 201  # personal number
    assert _signup(client, phone="+447911123456").status_code == 201  # mobile
    r = _signup(client, phone="+441212345678")  # fixed line: blocked
    assert r.status_code == 422 and r.json()["code"] == "number_type_blocked"
    arm = _arm(client, version, "phone")
    assert arm["suspect"]["by_signal"] == {"non_mobile": 1, "voip": 1}
    assert arm["blocked"] == {"total": 1, "by_reason": {"number_type_blocked": 1}}
    assert arm["signups"] == 3


def test_a_blocking_signal_refuses_records_and_marks_the_next_try(
    email_client: Callable[..., TestClient],
) -> None:
    client = email_client(blocked_signals=["disposable_email", "voip"])
    version = set_policy(client, "email")["version"]
    r = _signup(client, email="bot@mailinator.com")
    assert r.status_code == 422
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["code"] == "disposable_email"
    assert r.json()["errors"][0]["field"] == "email"
    # The same address (from another place) and the same place (another address) are
    # both suspect now.
    assert _signup(client, email="ok@example.com").status_code == 201
    arm = _arm(client, version, "email")
    assert arm["blocked"] == {"total": 1, "by_reason": {"disposable_email": 1}}
    assert arm["suspect"]["by_signal"] == {"blocked_before": 1}
    set_policy(client, "phone")
    r = _signup(client, phone="+445612345678")
    assert r.status_code == 422 and r.json()["code"] == "number_type_blocked"


def test_velocity_from_one_address_and_one_prefix(
    email_client: Callable[..., TestClient],
) -> None:
    client = email_client(velocity_ip_signups=2, velocity_prefix_signups=2)
    version = set_policy(client, "phone")["version"]
    for n in range(3):
        assert _signup(client, phone=f"+4479111234{n:02d}").status_code == 201
    by_signal = _arm(client, version, "phone")["suspect"]["by_signal"]
    assert by_signal == {"velocity_ip": 1, "velocity_prefix": 1}


def test_blocked_velocity_is_a_429_with_retry_after(
    email_client: Callable[..., TestClient],
) -> None:
    client = email_client(
        velocity_ip_signups=2, blocked_signals=["velocity_ip"], velocity_window_seconds=600
    )
    version = set_policy(client, "phone")["version"]
    assert _signup(client, phone="+447911123401").status_code == 201
    assert _signup(client, phone="+447911123402").status_code == 201
    r = _signup(client, phone="+447911123403")
    assert r.status_code == 429 and r.json()["code"] == "rate_limited"
    assert 1 <= int(r.headers["retry-after"]) <= 600
    assert _arm(client, version, "phone")["blocked"]["by_reason"] == {"velocity_ip": 1}


def test_sandbox_destinations_count_velocity_in_their_own_looser_bucket(
    email_client: Callable[..., TestClient],
) -> None:
    client = email_client(velocity_ip_signups=2)
    version = set_policy(client, "phone")["version"]
    for n in range(5):
        assert _signup(client, phone=f"+120255501{n:02d}").status_code == 201
    assert _arm(client, version, "phone")["suspect"]["count"] == 0


def test_identity_taken_is_never_a_blocking_signal() -> None:
    with pytest.raises(ValidationError, match="unknown signal identity_taken"):
        Settings(blocked_signals=["identity_taken"])
    with pytest.raises(ValidationError, match="unknown signal"):
        Settings(blocked_signals="disposable_email,bogus")
