"""SMS pumping, one defence at a time: budgets, the breaker, its admin API, number types.

Small budgets and thresholds through settings; real-looking mobiles (+44 7911 …, valid
``MOBILE`` numbers for phonenumbers, not sandbox) go to the ``backup`` provider, which
records what it was handed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from support.api import admin_headers, runtime, stats
from support.lastbyte import build_request, fire_synchronised
from support.liveserver import LiveServer
from support.outbox import Flaky, wait
from verifyd.app import create_app
from verifyd.models import AuditEvent, table_of
from verifyd.registry import Registry
from verifyd.settings import Settings

A = "+447911120{:03d}"  # prefix +447911120 (Guernsey for phonenumbers: region GG)
B = "+447911121{:03d}"  # prefix +447911121, same region
FR = "+33612345{:03d}"  # France

Client = Callable[..., TestClient]


@pytest.fixture
def app(
    make_settings: Callable[..., Settings], backup: type[Flaky]
) -> Iterator[Callable[..., TestClient]]:
    """Start an app whose SMS go to ``backup``; keyword arguments override settings."""
    installed = Registry.from_entry_points()
    registry = Registry(
        channels=installed.channels, providers={**installed.providers, "backup": backup}
    )
    clients: list[TestClient] = []

    def start(**overrides: Any) -> TestClient:
        values = {"sms_provider": "backup", "email_provider": "backup", **overrides}
        client = TestClient(create_app(make_settings(**values), registry=registry))
        client.__enter__()
        clients.append(client)
        return client

    yield start
    for client in clients:
        client.__exit__(None, None, None)


def _signup(client: TestClient, phone: str) -> Any:
    return client.post("/v1/accounts", json={"phone": phone})


def _blocked(client: TestClient) -> dict[str, int]:
    by_reason: dict[str, int] = {}
    for version in stats(client)["versions"]:
        for arm in version["arms"]:
            for reason, n in arm["blocked"]["by_reason"].items():
                by_reason[reason] = by_reason.get(reason, 0) + n
    return by_reason


def _breakers(client: TestClient) -> list[dict[str, Any]]:
    r = client.get("/v1/admin/breakers", headers=admin_headers(client, f"k{time.time_ns()}"))
    assert r.status_code == 200, r.text
    found: list[dict[str, Any]] = r.json()["breakers"]
    return found


def _refused(r: Any, status: int, code: str) -> None:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["code"] == code
    if status == 429:
        assert int(r.headers["Retry-After"]) >= 1


# --- budgets -------------------------------------------------------------------------------


def test_prefix_budget_refuses_before_any_outbox_row(app: Client, backup: type[Flaky]) -> None:
    client = app(sms_budget_per_prefix_per_hour=2)
    assert _signup(client, A.format(1)).status_code == 201
    assert _signup(client, A.format(2)).status_code == 201
    _refused(_signup(client, A.format(3)), 429, "rate_limited")
    assert _signup(client, B.format(1)).status_code == 201  # another prefix has its own
    wait("three codes sent", lambda: len(backup.sent) == 3)
    with runtime(client).db.read() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM messages").scalar() == 3
        assert conn.exec_driver_sql("SELECT count(*) FROM accounts").scalar() == 3
    assert _blocked(client)["sms_budget_prefix"] == 1
    assert _breakers(client) == []  # 2 sends: not enough to judge (min sends 10)


def test_country_budget(app: Client) -> None:
    client = app(sms_budget_per_country_per_hour=3)
    for phone in (A.format(1), B.format(1), A.format(2)):
        assert _signup(client, phone).status_code == 201
    r = _signup(client, B.format(2))
    _refused(r, 429, "rate_limited")
    assert int(r.headers["Retry-After"]) <= 3600
    assert _signup(client, FR.format(1)).status_code == 201  # another country
    assert _blocked(client)["sms_budget_country"] == 1


def test_global_budget(app: Client) -> None:
    client = app(sms_budget_per_day=2)
    assert _signup(client, A.format(1)).status_code == 201
    assert _signup(client, FR.format(1)).status_code == 201
    r = _signup(client, B.format(1))
    _refused(r, 429, "rate_limited")
    assert 1 <= int(r.headers["Retry-After"]) <= 86400
    assert _blocked(client)["sms_budget_global"] == 1
    # Email and sandbox destinations are not SMS to a real number: never charged.
    assert _signup(client, "+1 202 555 0142").status_code == 201


def test_a_resend_is_a_send(app: Client) -> None:
    client = app(sms_budget_per_prefix_per_hour=2, sms_resend_cooldown_seconds=0)
    vid = _signup(client, A.format(1)).json()["verifications"][0]["id"]
    assert client.post(f"/v1/verifications/{vid}/resend").status_code == 202
    _refused(client.post(f"/v1/verifications/{vid}/resend"), 429, "rate_limited")
    _refused(_signup(client, A.format(2)), 429, "rate_limited")
    assert _blocked(client)["sms_budget_prefix"] == 2


def test_a_shadow_signup_is_charged_like_a_real_one(app: Client, backup: type[Flaky]) -> None:
    client = app(sms_budget_per_prefix_per_hour=3)
    owned = A.format(1)
    vid = _signup(client, owned).json()["verifications"][0]["id"]
    code = wait("the code", lambda: [m.code for m in backup.sent if m.to == owned])[0]
    r = client.post(f"/v1/verifications/{vid}/check", json={"code": code})
    assert r.json()["account"]["status"] == "active"
    # A second signup for the owned number (a shadow) spends the budget as a new one
    # would, so the third is refused for both kinds alike.
    assert _signup(client, owned).status_code == 201
    assert _signup(client, A.format(2)).status_code == 201
    _refused(_signup(client, owned), 429, "rate_limited")
    _refused(_signup(client, A.format(3)), 429, "rate_limited")


# --- the breaker -------------------------------------------------------------------------


def _trip(client: TestClient) -> None:
    """Three unverified codes to prefix A, then a refusal: trips prefix A and region GG."""
    for i in range(3):
        assert _signup(client, A.format(i)).status_code == 201
    _refused(_signup(client, A.format(9)), 429, "rate_limited")


BREAKER = {
    "sms_budget_per_prefix_per_hour": 3,
    "sms_breaker_min_sends": 2,
    "sms_breaker_country_min_sends": 2,
}


def test_breaker_trips_alerts_and_suspends(app: Client, caplog: pytest.LogCaptureFixture) -> None:
    client = app(**BREAKER)
    with caplog.at_level(logging.WARNING, logger="verifyd.pumping"):
        _trip(client)
    alerts = [r.getMessage() for r in caplog.records if r.name == "verifyd.pumping"]
    assert len(alerts) == 2 and all(r.levelno == logging.WARNING for r in caplog.records)
    assert any("prefix +447911120 sent 3 codes, 0 verified" in a for a in alerts)
    assert not any(A.format(0) in a for a in alerts)  # never a whole number
    listed = _breakers(client)
    assert {(b["scope"], b["key"], b["sent"], b["verified"]) for b in listed} == {
        ("prefix", "+447911120", 3, 0),
        ("country", "GG", 3, 0),
    }
    r = _signup(client, A.format(5))
    _refused(r, 403, "sms_destination_suspended")
    assert "Retry-After" not in r.headers
    _refused(_signup(client, B.format(1)), 403, "sms_destination_suspended")  # the country
    assert _signup(client, FR.format(1)).status_code == 201
    blocked = _blocked(client)
    assert blocked["sms_budget_prefix"] == 1 and blocked["sms_destination_suspended"] == 2
    metrics = client.get("/metrics").text
    assert 'verifyd_sms_breaker_trips_total{scope="prefix"} 1.0' in metrics
    assert 'verifyd_sms_breaker_trips_total{scope="country"} 1.0' in metrics


def test_lifting_a_breaker(app: Client) -> None:
    client = app(**BREAKER)
    _trip(client)
    country = next(b for b in _breakers(client) if b["scope"] == "country")
    headers = admin_headers(client, "lifter")
    r = client.delete(f"/v1/admin/breakers/{country['id']}", headers=headers)
    assert r.status_code == 204 and r.content == b""
    assert [b["scope"] for b in _breakers(client)] == ["prefix"]
    assert _signup(client, B.format(1)).status_code == 201  # sends to the country flow again
    _refused(_signup(client, A.format(5)), 403, "sms_destination_suspended")  # the prefix holds
    _refused(
        client.delete(f"/v1/admin/breakers/{country['id']}", headers=headers), 404, "not_found"
    )
    _refused(client.delete("/v1/admin/breakers/brk_nope", headers=headers), 404, "not_found")
    assert client.delete(f"/v1/admin/breakers/{country['id']}").status_code == 401
    with runtime(client).db.read() as conn:
        events = conn.execute(select(table_of(AuditEvent))).all()
    lifts = [e for e in events if e.action == "breaker.lift"]
    assert [(e.actor, e.target) for e in lifts] == [("key:lifter", f"breaker:{country['id']}")]
    assert sum(e.action == "breaker.trip" for e in events) == 2


def test_breakers_expire_by_themselves(app: Client) -> None:
    client = app(**BREAKER, sms_breaker_hold_seconds=1)
    _trip(client)
    _refused(_signup(client, B.format(1)), 403, "sms_destination_suspended")
    time.sleep(1.1)
    assert _breakers(client) == []
    assert _signup(client, B.format(1)).status_code == 201


def test_no_breaker_when_codes_get_verified(app: Client, backup: type[Flaky]) -> None:
    client = app(**BREAKER)
    for i in range(3):
        phone = A.format(i)
        vid = _signup(client, phone).json()["verifications"][0]["id"]
        code = wait("the code", lambda p=phone: [m.code for m in backup.sent if m.to == p])[0]
        assert client.post(f"/v1/verifications/{vid}/check", json={"code": code}).status_code == 200
    for _ in range(2):  # the budget still holds; the breaker has nothing to hold
        _refused(_signup(client, A.format(9)), 429, "rate_limited")
    assert _breakers(client) == []


# --- number types --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "phone",
    [
        "+44 70 1234 5678",  # UK personal number (PERSONAL_NUMBER)
        "+881 6 3123 4567",  # Iridium satellite (region 001, typed MOBILE)
        "+870 773 111 632",  # Inmarsat (region 001)
        "+1 500 200 0000",  # NANP 500: PERSONAL_NUMBER for phonenumbers
    ],
)
def test_number_types_refused_by_default(app: Client, phone: str) -> None:
    client = app()
    r = _signup(client, phone)
    _refused(r, 422, "number_type_blocked")
    assert r.json()["errors"][0]["field"] == "phone"
    assert _blocked(client) == {"number_type_blocked": 1}


def test_nanp_numbers_are_never_blocked(app: Client) -> None:
    client = app(blocked_number_types=["FIXED_LINE", "FIXED_LINE_OR_MOBILE", "PERSONAL_NUMBER"])
    assert _signup(client, "+1 415 555 2671").status_code == 201  # FIXED_LINE_OR_MOBILE


def test_satellite_ranges_can_be_allowed(app: Client) -> None:
    client = app(blocked_regions=[])
    assert _signup(client, "+881 6 3123 4567").status_code == 201


# --- concurrency -----------------------------------------------------------------------------


def test_parallel_sends_never_exceed_the_budget(
    make_settings: Callable[..., Settings], backup: type[Flaky]
) -> None:
    """30 signups to one prefix released at once: exactly the budget gets through."""
    installed = Registry.from_entry_points()
    registry = Registry(
        channels=installed.channels, providers={**installed.providers, "backup": backup}
    )
    settings = make_settings(
        sms_provider="backup",
        email_provider="backup",
        sms_budget_per_prefix_per_hour=5,
        sms_breaker_min_sends=1000,
    )
    with LiveServer(create_app(settings, registry=registry)) as server:
        host = f"{server.host}:{server.port}"
        raw = [
            build_request("POST", "/v1/accounts", host=host, json_body={"phone": A.format(i)})
            for i in range(30)
        ]
        statuses = sorted(r.status for r in fire_synchronised(server.host, server.port, raw))
    assert statuses == [201] * 5 + [429] * 25
