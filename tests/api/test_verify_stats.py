"""The Verify services in ``GET /v1/admin/stats`` and ``/metrics``: per service and channel.

The services and their verifications are written as the ``/v2`` surface stores them and
counted by ``rebuild`` (``support.verify_services.seed_services`` says what they hold).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from support.api import admin_headers, runtime, set_policy, signup
from support.api import stats as _stats
from support.verify_services import Seeded, seed_services
from test_metrics import Scrape, assert_histograms_are_cumulative, scrape
from verifyd import rollup
from verifyd.models import utcnow
from verifyd.settings import Settings
from verifyd.verify_models import STATS_VERSION

PRICES = {"currency": "USD", "email": 0.001, "sms": {"default": 0.05, "US": 0.0079}}


@dataclass(frozen=True)
class Traffic:
    client: TestClient
    version: int
    acme: Seeded
    beta: Seeded


@pytest.fixture
def traffic(
    make_settings: Callable[..., Settings], make_client: Callable[[Settings], TestClient]
) -> Traffic:
    """A phone policy with one signup, beside two Verify services."""
    client = make_client(make_settings(prices=json.dumps(PRICES)))
    version = set_policy(client, "phone")["version"]
    signup(client, phone="+12025550111")
    acme, beta = seed_services(runtime(client).db)
    return Traffic(client, version, acme, beta)


def _channel(service: dict[str, Any], name: str) -> dict[str, Any]:
    found: dict[str, Any] = next(c for c in service["channels"] if c["channel"] == name)
    return found


def test_services_are_counted_per_channel_and_never_as_a_policy_version(
    traffic: Traffic,
) -> None:
    stats = _stats(traffic.client)
    assert [v["policy_version"] for v in stats["versions"]] == [traffic.version]
    assert [a["signups"] for a in stats["versions"][0]["arms"]] == [1]
    acme, beta = stats["verify_services"]
    assert (acme["sid"], acme["friendly_name"], acme["deleted_at"]) == (
        traffic.acme.sid,
        "Acme",
        None,
    )
    assert [c["channel"] for c in acme["channels"]] == ["email", "sms"]
    sms, email = _channel(acme, "sms"), _channel(acme, "email")
    assert {k: sms[k] for k in ("started", "approved", "max_attempts", "canceled", "expired")} == {
        "started": 4,
        "approved": 2,
        "max_attempts": 1,
        "canceled": 0,
        "expired": 0,
    }
    assert sms["pending"] == 1
    assert sms["conversion"]["count"] == 2 and sms["conversion"]["of"] == 4
    assert sms["conversion"]["rate"] == 0.5
    low, high = sms["conversion"]["interval"]
    assert low < 0.5 < high
    assert sms["messages"] == {
        "sent": 5,
        "first_sends": 4,
        "resends": 1,
        "delivered": 3,
        "failed": 1,
    }
    assert sms["checks"] == {"incorrect": 6, "approved": 2, "per_approval": 1.5}
    assert sms["cost"]["total"] == pytest.approx(5 * 0.0079)
    assert sms["cost"]["per_approved"] == pytest.approx(5 * 0.0079 / 2)
    assert sms["cost"]["unpriced"] == 0
    assert (email["started"], email["approved"], email["canceled"], email["expired"]) == (
        3,
        1,
        1,
        1,
    )
    assert email["pending"] == 0 and email["max_attempts"] == 0
    assert email["messages"]["sent"] == 3 and email["messages"]["delivered"] == 2
    assert email["checks"] == {"incorrect": 1, "approved": 1, "per_approval": 1.0}
    assert email["cost"]["total"] == pytest.approx(0.003)
    total = acme["total"]
    assert (total["started"], total["approved"], total["messages"]["sent"]) == (7, 3, 8)
    assert total["conversion"]["rate"] == pytest.approx(3 / 7)
    assert total["cost"]["total"] == pytest.approx(5 * 0.0079 + 0.003)
    assert acme["blocked"] == {"total": 2, "by_reason": {"sms_budget_prefix": 2}}
    ttv = acme["time_to_verify"]
    assert ttv["count"] == 3 and 15 <= ttv["p50"] <= 20
    assert ttv["histogram"] == [{"le": 20, "count": 3}]
    # A deleted service's figures stay, marked deleted.
    assert beta["sid"] == traffic.beta.sid and beta["deleted_at"] is not None
    (only,) = beta["channels"]
    assert (only["channel"], only["started"], only["expired"]) == ("sms", 1, 1)
    assert beta["time_to_verify"] == {"count": 0, "p50": None, "p90": None, "histogram": []}


def test_the_services_ignore_policy_version_and_follow_the_window(traffic: Traffic) -> None:
    everything = _stats(traffic.client)
    only = _stats(traffic.client, policy_version=traffic.version)
    assert only["verify_services"] == everything["verify_services"]
    assert [v["policy_version"] for v in only["versions"]] == [traffic.version]
    hour_ago = (utcnow() - timedelta(hours=1)).isoformat()
    assert (
        _stats(traffic.client, since=hour_ago)["verify_services"] == everything["verify_services"]
    )
    later = (utcnow() + timedelta(hours=2)).isoformat()
    assert _stats(traffic.client, since=later)["verify_services"] == []
    assert _stats(traffic.client, until=hour_ago)["verify_services"] == []


@pytest.mark.parametrize("compare", ["0,1", "1,0:VA0123456789abcd", "00,1", "1,²"])
def test_compare_refuses_version_zero(traffic: Traffic, compare: str) -> None:
    r = traffic.client.get(
        "/v1/admin/stats", params={"compare": compare}, headers=admin_headers(traffic.client)
    )
    assert r.status_code == 422, r.text
    (error,) = r.json()["errors"]
    assert error["field"] == "compare" and "not a policy version" in error["message"]


def test_counters_of_a_service_row_gone_are_still_shown(client: TestClient) -> None:
    with runtime(client).db.write() as conn:
        rollup.add(conn, STATS_VERSION, "VA0000000000dead", "verifications.sms", utcnow(), 2)
    answer = _stats(client)
    assert answer["versions"] == []
    (orphan,) = answer["verify_services"]
    assert (orphan["sid"], orphan["friendly_name"]) == (None, None)
    assert orphan["total"]["started"] == 2
    s = scrape(client)
    assert s.value("verifyd_verify_verifications_total", service="VA0000000000dead") == 2


def test_the_stats_document_the_services_section(client: TestClient) -> None:
    schemas = client.get("/openapi.json").json()["components"]["schemas"]
    assert "verify_services" in schemas["StatsOut"]["properties"]
    channel = schemas["VerifyChannel"]["properties"]
    for field in ("channel", "started", "approved", "max_attempts", "conversion", "cost"):
        assert field in channel


def assert_services_agree_with_stats(s: Scrape, report: dict[str, Any]) -> None:
    """Every service and channel of the stats report, figure by figure."""
    for service in report["verify_services"]:
        sid = service["sid"]
        for ch in service["channels"]:
            key = {"service": sid, "channel": ch["channel"]}
            for family, figure in (
                ("verifications", ch["started"]),
                ("approved", ch["approved"]),
                ("canceled", ch["canceled"]),
                ("expired", ch["expired"]),
                ("max_attempts", ch["max_attempts"]),
                ("resends", ch["messages"]["resends"]),
                ("messages_sent", ch["messages"]["sent"]),
                ("messages_delivered", ch["messages"]["delivered"]),
                ("messages_failed", ch["messages"]["failed"]),
            ):
                assert s.value(f"verifyd_verify_{family}_total", **key) == figure, family
            for outcome in ("approved", "incorrect"):
                got = s.value("verifyd_verify_checks_total", **key, outcome=outcome)
                assert got == ch["checks"][outcome]
        blocked = service["blocked"]
        for reason, n in blocked["by_reason"].items():
            assert s.value("verifyd_verify_blocked_total", service=sid, reason=reason) == n
        assert s.value("verifyd_verify_blocked_total", service=sid) == blocked["total"]
        count = s.value("verifyd_verify_time_to_verify_seconds_count", service=sid)
        assert count == service["time_to_verify"]["count"]


def test_metrics_have_service_families_and_no_policy_version_zero(traffic: Traffic) -> None:
    s = scrape(traffic.client)
    for sample in s.samples:
        assert sample.labels.get("policy_version") != str(STATS_VERSION), sample
        assert traffic.acme.stats_key not in sample.labels.values(), sample
    acme = {"service": traffic.acme.sid}
    assert s.value("verifyd_verify_verifications_total", **acme, channel="sms") == 4
    assert s.value("verifyd_verify_verifications_total", **acme, channel="email") == 3
    assert s.value("verifyd_verify_approved_total", **acme) == 3
    assert s.value("verifyd_verify_max_attempts_total", **acme, channel="sms") == 1
    assert s.value("verifyd_verify_checks_total", **acme, channel="sms", outcome="incorrect") == 6
    assert s.value("verifyd_verify_messages_sent_total", **acme, channel="email") == 3
    assert s.value("verifyd_verify_blocked_total", **acme, reason="sms_budget_prefix") == 2
    ttv = "verifyd_verify_time_to_verify_seconds"
    assert s.value(f"{ttv}_bucket", **acme, le="15.0") == 0
    assert s.value(f"{ttv}_bucket", **acme, le="20.0") == 3
    assert_histograms_are_cumulative(s, ttv)
    # A channel with nothing of a kind still has its series, at zero.
    assert frozenset({**acme, "channel": "email"}.items()) in s.series(
        "verifyd_verify_max_attempts_total"
    )
    beta = {"service": traffic.beta.sid, "channel": "sms"}
    assert s.value("verifyd_verify_expired_total", **beta) == 1
    # The policy's arm is what it was.
    assert s.value("verifyd_signups_total", policy_version=traffic.version, arm="phone") == 1
    assert_services_agree_with_stats(s, _stats(traffic.client))
