"""``GET /metrics``: Prometheus figures that add up to the traffic and to ``/v1/admin/stats``."""

from __future__ import annotations

import itertools
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from support.api import admin_headers, latest_code, latest_token, runtime, set_policy, signup
from support.outbox import Flaky, Start, wait_row
from verifyd.db import Database
from verifyd.metrics import CONTENT_TYPE, Metrics
from verifyd.settings import Settings

_keys = itertools.count()
#: Families read from the database (the ones every worker must agree on).
BUSINESS = (
    "verifyd_exposures",
    "verifyd_signups",
    "verifyd_accounts_activated",
    "verifyd_suspect_signups",
    "verifyd_blocked_signups",
    "verifyd_verifications",
    "verifyd_resends",
    "verifyd_approvals",
    "verifyd_messages_delivered",
    "verifyd_messages_failed",
    "verifyd_messages_sent",
    "verifyd_checks",
    "verifyd_labelled_accounts",
    "verifyd_time_to_verify_seconds",
    "verifyd_outbox_queued",
    "verifyd_outbox_due",
    "verifyd_messages_dead",
)


class Scrape:
    """One parsed ``/metrics`` answer."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.families = {f.name: f for f in text_string_to_metric_families(text)}
        self.samples: list[Sample] = [s for f in self.families.values() for s in f.samples]

    def value(self, name: str, **labels: str | int) -> float:
        """The sum of the samples ``name`` whose labels include ``labels`` (0 if none)."""
        want = {k: str(v) for k, v in labels.items()}
        return sum(
            s.value for s in self.samples if s.name == name and want.items() <= s.labels.items()
        )

    def series(self, name: str) -> dict[frozenset[tuple[str, str]], float]:
        return {frozenset(s.labels.items()): s.value for s in self.samples if s.name == name}

    def business(self) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
        """Every sample of the database's families."""
        return {
            (s.name, frozenset(s.labels.items())): s.value
            for n in BUSINESS
            for s in self.families[n].samples
        }


def scrape(client: TestClient, **headers: str) -> Scrape:
    r = client.get("/metrics", headers=headers)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == CONTENT_TYPE
    return Scrape(r.text)


def fresh(client: TestClient) -> Scrape:
    """What a scrape would answer now, past the app's cache (a baseline before traffic)."""
    return Scrape(Metrics(runtime(client).db, cache_seconds=0).render().decode())


def stats(client: TestClient) -> dict[str, Any]:
    r = client.get("/v1/admin/stats", headers=admin_headers(client, f"metrics-{next(_keys)}"))
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def assert_no_identifiers(s: Scrape, *known: str) -> None:
    """No label value is a phone number, an address or an id; no known one appears at all."""
    for sample in s.samples:
        for value in sample.labels.values():
            assert "@" not in value, sample
            assert not re.search(r"\+\d", value), sample
            assert not value.startswith(("acc_", "ver_", "msg_")), sample
    for secret in known:
        assert secret not in s.text


def assert_agrees_with_stats(s: Scrape, report: dict[str, Any]) -> None:
    """Every version and arm of the stats report, figure by figure."""
    seen = 0
    for version in report["versions"]:
        for arm in version["arms"]:
            key = {"policy_version": version["policy_version"], "arm": arm["arm"]}
            seen += 1
            assert s.value("verifyd_exposures_total", **key) == arm["exposures"]
            assert s.value("verifyd_signups_total", **key) == arm["signups"]
            assert s.value("verifyd_accounts_activated_total", **key) == arm["conversion"]["count"]
            for reason, n in arm["blocked"]["by_reason"].items():
                assert s.value("verifyd_blocked_signups_total", **key, reason=reason) == n
            assert s.value("verifyd_blocked_signups_total", **key) == arm["blocked"]["total"]
            by_signal = arm["suspect"]["by_signal"]
            for signal, n in by_signal.items():
                assert s.value("verifyd_suspect_signups_total", **key, signal=signal) == n
            assert s.value("verifyd_suspect_signups_total", **key) == sum(by_signal.values())
            for channel, n in arm["verifications"]["by_channel"].items():
                assert s.value("verifyd_verifications_total", **key, channel=channel) == n
            assert s.value("verifyd_approvals_total", **key) == arm["verifications"]["approved"]
            messages = arm["messages"]
            for kind, n in messages["sent_by_kind"].items():
                assert s.value("verifyd_messages_sent_total", **key, kind=kind) == n
            assert s.value("verifyd_messages_sent_total", **key) == messages["sent"]
            assert s.value("verifyd_resends_total", **key) == messages["resends"]
            assert s.value("verifyd_messages_delivered_total", **key) == messages["delivered"]
            assert s.value("verifyd_messages_failed_total", **key) == messages["failed"]
            for outcome in ("incorrect", "approved"):
                got = s.value("verifyd_checks_total", **key, outcome=outcome)
                assert got == arm["checks"][outcome]
            ttv = arm["time_to_verify"]
            assert s.value("verifyd_time_to_verify_seconds_count", **key) == ttv["count"]
            for label in ("fake", "genuine"):
                got = s.value("verifyd_labelled_accounts", **key, label=label)
                assert got == arm["labels"][label]
    assert seen == len(s.series("verifyd_signups_total"))


def assert_histograms_are_cumulative(s: Scrape, name: str) -> None:
    family = s.families[name]
    assert family.type == "histogram"
    by_series: dict[frozenset[tuple[str, str]], list[tuple[float, float]]] = {}
    counts = {}
    for sample in family.samples:
        rest = frozenset((k, v) for k, v in sample.labels.items() if k != "le")
        if sample.name == f"{name}_bucket":
            by_series.setdefault(rest, []).append((float(sample.labels["le"]), sample.value))
        elif sample.name == f"{name}_count":
            counts[rest] = sample.value
    assert by_series and by_series.keys() == counts.keys()
    for rest, buckets in by_series.items():
        assert [le for le, _ in buckets] == sorted(le for le, _ in buckets)
        assert buckets[-1][0] == float("inf") and buckets[-1][1] == counts[rest]
        values = [n for _, n in buckets]
        assert values == sorted(values), f"not cumulative: {values}"


def _subject_for(client: TestClient, arm: str, start: int) -> tuple[str, int]:
    """A subject the split assigns to ``arm`` (the read exposes it), and where to go on."""
    i = start
    while True:
        r = client.get("/v1/policy", params={"subject": f"device-{i}"})
        assert r.status_code == 200
        if r.json()["arm"] == arm:
            return f"device-{i}", i + 1
        i += 1


def test_metrics_count_what_the_traffic_did_and_agree_with_stats(
    make_settings: Callable[..., Settings], make_client: Callable[[Settings], TestClient]
) -> None:
    client = make_client(
        make_settings(
            blocked_signals=["disposable_email"],
            sms_resend_cooldown_seconds=0,
            sends_per_destination_per_hour=2,
            sandbox_limit_multiplier=1,
        )
    )
    before = fresh(client)
    version = set_policy(client, "split", weights={"phone": 50, "email": 50})["version"]
    phone_key = {"policy_version": version, "arm": "phone"}
    email_key = {"policy_version": version, "arm": "email"}
    i = 0
    # Phone arm: three signups; one verifies after a wrong code, one at once, one is
    # sent a new code and then refused a third one (the destination's send limit).
    phones, ids = [], []
    for n in range(3):
        subject, i = _subject_for(client, "phone", i)
        phone = f"+1202555{100 + n:04d}"
        created = signup(client, phone=phone, subject=subject)
        phones.append((phone, created["verifications"][0]["id"]))
        ids += [created["account"]["id"], created["verifications"][0]["id"]]
    (p0, v0), (p1, v1), (p2, v2) = phones
    code = latest_code(client, p0)
    wrong = "0000" if code != "0000" else "1111"
    assert client.post(f"/v1/verifications/{v0}/check", json={"code": wrong}).status_code == 422
    for phone, vid in ((p0, v0), (p1, v1)):
        r = client.post(f"/v1/verifications/{vid}/check", json={"code": latest_code(client, phone)})
        assert r.status_code == 200, r.text
    assert client.post(f"/v1/verifications/{v2}/resend").status_code == 202
    limited = client.post(f"/v1/verifications/{v2}/resend")
    assert limited.status_code == 429 and limited.json()["code"] == "rate_limited"
    # Email arm: a disposable address is refused; the two signups after it, from the
    # same place, are suspect for it; one confirms its link.
    subject, i = _subject_for(client, "email", i)
    refused = client.post("/v1/accounts", json={"email": "x@mailinator.com", "subject": subject})
    assert refused.status_code == 422 and refused.json()["code"] == "disposable_email"
    emails = []
    for n in range(2):
        subject, i = _subject_for(client, "email", i)
        created = signup(client, email=f"user{n}@example.test", subject=subject)
        emails.append(created["account"]["id"])
        ids += [created["account"]["id"], created["verifications"][0]["id"]]
    r = client.post("/v1/email/verify", json={"token": latest_token(client, "user0@example.test")})
    assert r.status_code == 200, r.text
    r = client.post(
        f"/v1/admin/accounts/{emails[1]}/labels",
        json={"label": "fake"},
        headers=admin_headers(client, "labeller"),
    )
    assert r.status_code == 201, r.text

    s = scrape(client)
    assert (
        s.value("verifyd_exposures_total", **phone_key)
        + s.value("verifyd_exposures_total", **email_key)
        == i
    )
    assert s.value("verifyd_signups_total", **phone_key) == 3
    assert s.value("verifyd_signups_total", **email_key) == 2
    assert s.value("verifyd_blocked_signups_total", **email_key, reason="disposable_email") == 1
    assert s.value("verifyd_blocked_signups_total", **phone_key) == 0
    assert s.value("verifyd_suspect_signups_total", **email_key, signal="blocked_before") == 2
    assert s.value("verifyd_verifications_total", **phone_key, channel="sms") == 3
    assert s.value("verifyd_verifications_total", **email_key, channel="email") == 2
    assert s.value("verifyd_messages_sent_total", **phone_key, kind="sms") == 4
    assert s.value("verifyd_messages_sent_total", **email_key, kind="email") == 2
    assert s.value("verifyd_resends_total", **phone_key, channel="sms") == 1
    checks = {"channel": "sms", **phone_key}
    assert s.value("verifyd_checks_total", **checks, outcome="incorrect") == 1
    assert s.value("verifyd_checks_total", **checks, outcome="approved") == 2
    assert s.value("verifyd_approvals_total", **phone_key, channel="sms") == 2
    assert s.value("verifyd_approvals_total", **email_key, channel="email") == 1
    assert s.value("verifyd_accounts_activated_total", **phone_key) == 2
    assert s.value("verifyd_accounts_activated_total", **email_key) == 1
    assert s.value("verifyd_labelled_accounts", **email_key, label="fake") == 1
    # Time to verify: milliseconds here, so every activation is in the first bucket;
    # the sum counts each at that bucket's midpoint (2.5 s).
    ttv = "verifyd_time_to_verify_seconds"
    assert s.value(f"{ttv}_bucket", **phone_key, le="5.0") == 2
    assert s.value(f"{ttv}_bucket", **phone_key, le="+Inf") == 2
    assert s.value(f"{ttv}_count", **phone_key) == 2
    assert s.value(f"{ttv}_sum", **phone_key) == 5.0
    assert_histograms_are_cumulative(s, ttv)
    # The refused resend: counted under its bucket (process-wide, so as a difference).
    hits = "verifyd_rate_limited_total"
    bucket = "sandbox_send_destination"
    assert s.value(hits, bucket=bucket) - before.value(hits, bucket=bucket) == 1
    assert s.value("verifyd_outbox_queued") == 0 and s.value("verifyd_messages_dead") == 0
    assert_agrees_with_stats(s, stats(client))
    assert_no_identifiers(s, *ids, *(p for p, _ in phones), "mailinator", "example.test")


def test_two_apps_on_one_database_report_the_same_business_figures(
    settings: Settings, make_client: Callable[[Settings], TestClient]
) -> None:
    first, second = make_client(settings), make_client(settings)
    version = set_policy(first, "either")["version"]
    created = signup(first, phone="+12025550150")
    vid = created["verifications"][0]["id"]
    r = second.post(
        f"/v1/verifications/{vid}/check", json={"code": latest_code(second, "+12025550150")}
    )
    assert r.status_code == 200, r.text
    signup(second, email="both@example.test")
    a, b = scrape(first), scrape(second)
    assert a.business() == b.business()
    key = {"policy_version": version, "arm": "either"}
    assert a.value("verifyd_signups_total", **key) == 2
    assert a.value("verifyd_approvals_total", **key, channel="sms") == 1
    assert_agrees_with_stats(a, stats(second))


def test_database_figures_are_cached_for_a_few_seconds(client: TestClient) -> None:
    now = [100.0]
    exporter = Metrics(runtime(client).db, cache_seconds=5, clock=lambda: now[0])
    version = set_policy(client, "phone")["version"]
    key = {"policy_version": version, "arm": "phone"}
    signup(client, phone="+12025550160")
    assert Scrape(exporter.render().decode()).value("verifyd_signups_total", **key) == 1
    signup(client, phone="+12025550161")
    now[0] += 4.9
    assert Scrape(exporter.render().decode()).value("verifyd_signups_total", **key) == 1
    now[0] += 0.1
    assert Scrape(exporter.render().decode()).value("verifyd_signups_total", **key) == 2


def test_a_metrics_token_is_required_when_set(
    make_settings: Callable[..., Settings], make_client: Callable[[Settings], TestClient]
) -> None:
    client = make_client(make_settings(metrics_token="scrape-token-0123456789"))
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic x"}):
        r = client.get("/metrics", headers=headers)
        assert r.status_code == 401
        assert r.headers["content-type"].startswith("application/problem+json")
        assert r.json()["code"] == "unauthorized"
        assert "scrape-token" not in r.text
    s = scrape(client, Authorization="Bearer scrape-token-0123456789")
    assert "verifyd_signups" in s.families


def test_provider_latency_is_timed_around_each_send(client: TestClient) -> None:
    # A real-looking number goes through the outbox and the console provider.
    sent = {"provider": "console", "kind": "sms", "outcome": "sent"}
    name = "verifyd_provider_send_seconds"
    before = fresh(client)
    vid = signup(client, phone="+447911123456")["verifications"][0]["id"]
    wait_row(client, vid, lambda row: row.status == "sent")
    s = scrape(client)
    assert s.value(f"{name}_count", **sent) - before.value(f"{name}_count", **sent) == 1
    assert s.value(f"{name}_bucket", **sent, le="+Inf") == s.value(f"{name}_count", **sent)
    assert_histograms_are_cumulative(s, name)
    assert s.value("verifyd_messages_sent_total", kind="sms") == 1
    assert s.value("verifyd_outbox_queued") == 0
    assert_no_identifiers(s, "+447911123456", "447911123456", vid)


def test_a_failed_send_is_timed_and_its_message_counted_dead(
    start: Start, flaky: type[Flaky]
) -> None:
    flaky.fatal = True  # a provider that refuses for good: one try, then dead
    client = start()
    failed = {"provider": "flaky", "kind": "sms", "outcome": "failed"}
    name = "verifyd_provider_send_seconds"
    before = fresh(client)
    vid = signup(client, phone="+447911123457")["verifications"][0]["id"]
    wait_row(client, vid, lambda row: row.status == "dead")
    s = scrape(client)
    assert s.value(f"{name}_count", **failed) - before.value(f"{name}_count", **failed) == 1
    assert s.value("verifyd_messages_dead") == 1
    assert s.value("verifyd_messages_failed_total", kind="sms") == 1
    assert s.value("verifyd_messages_sent_total") == 0
    assert s.value("verifyd_outbox_queued") == 0


def test_queued_messages_are_gauged_while_nobody_delivers(
    make_settings: Callable[..., Settings], make_client: Callable[[Settings], TestClient]
) -> None:
    client = make_client(make_settings(dispatcher="off"))
    signup(client, phone="+447911123458")
    signup(client, phone="+447911123459")
    s = scrape(client)
    assert s.value("verifyd_outbox_queued") == 2 and s.value("verifyd_outbox_due") == 2
    assert s.value("verifyd_messages_sent_total") == 0


def test_metrics_are_documented_as_plain_text(client: TestClient) -> None:
    operation = client.get("/openapi.json").json()["paths"]["/metrics"]["get"]
    assert "text/plain" in operation["responses"]["200"]["content"]
    assert "401" in operation["responses"]


def test_process_figures_add_up_across_worker_processes(
    sqlite_template: Path, tmp_path: Path
) -> None:
    """With ``PROMETHEUS_MULTIPROC_DIR``, a scrape of one process sums every process's."""
    shared = tmp_path / "prometheus"
    shared.mkdir()
    url = f"sqlite:///{tmp_path / 'verifyd.db'}"
    shutil.copyfile(sqlite_template, tmp_path / "verifyd.db")
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(shared)}
    work = (
        "from verifyd import processmetrics\n"
        "processmetrics.count_rate_limited('signup_ip')\n"
        "processmetrics.observe_send('console', 'sms', 'sent', 0.02)\n"
    )
    for _ in range(2):
        subprocess.run([sys.executable, "-c", work], env=env, check=True, timeout=60)
    render = (
        "import sys\n"
        "from verifyd.db import Database\n"
        "from verifyd.metrics import Metrics\n"
        f"sys.stdout.write(Metrics(Database({url!r})).render().decode())\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", render], env=env, check=True, timeout=60, capture_output=True
    )
    s = Scrape(out.stdout.decode())
    assert s.value("verifyd_rate_limited_total", bucket="signup_ip") == 2
    sent = {"provider": "console", "kind": "sms", "outcome": "sent"}
    assert s.value("verifyd_provider_send_seconds_count", **sent) == 2
    assert s.value("verifyd_provider_send_seconds_bucket", **sent, le="0.025") == 2
    assert s.value("verifyd_provider_send_seconds_bucket", **sent, le="0.01") == 0
    assert "verifyd_signups" in s.families  # the database's families beside them
    # A directory that is not there fails the observation, never the caller.
    missing = {**env, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "missing")}
    done = subprocess.run(
        [sys.executable, "-c", work], env=missing, check=True, timeout=60, capture_output=True
    )
    assert done.stderr.decode().count("could not be recorded") == 1


def test_metrics_without_traffic_still_answer(database_url: str) -> None:
    db = Database(database_url)
    try:
        s = Scrape(Metrics(db, cache_seconds=0).render().decode())
    finally:
        db.dispose()
    assert s.value("verifyd_outbox_queued") == 0
    assert s.families["verifyd_signups"].type == "counter"
    assert s.families["verifyd_labelled_accounts"].type == "gauge"
    assert s.families["verifyd_time_to_verify_seconds"].type == "histogram"
    # The Verify services' families are there too, without a series yet.
    assert s.families["verifyd_verify_verifications"].type == "counter"
    assert s.families["verifyd_verify_time_to_verify_seconds"].type == "histogram"
    assert s.series("verifyd_verify_verifications_total") == {}
