"""``GET /v1/admin/stats``: the comparison adds up to exactly what the traffic did."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient

from support.api import admin_headers, latest_code, latest_token, runtime, set_policy, signup
from support.api import stats as _stats
from support.api import stats_arm as _arm
from support.rollup import live_and_rebuilt
from verifyd import expiry
from verifyd.models import utcnow
from verifyd.settings import Settings

PRICES = {"currency": "USD", "email": 0.001, "sms": {"default": 0.05, "US": 0.0079}}


@pytest.fixture
def priced(
    make_settings: Callable[..., Settings], make_client: Callable[[Settings], TestClient]
) -> TestClient:
    return make_client(make_settings(prices=json.dumps(PRICES), sandbox_fixed_code=None))


def _assert_rollup_matches_rows(client: TestClient) -> None:
    db = runtime(client).db
    with db.read() as conn:
        live, rebuilt = live_and_rebuilt(conn)
    assert live == rebuilt


def _subject_for(client: TestClient, arm: str, start: int) -> tuple[str, int]:
    """A subject the split assigns to ``arm`` (exposed by the read), and where to go on."""
    i = start
    while True:
        subject = f"device-{i}"
        r = client.get("/v1/policy", params={"subject": subject})
        assert r.status_code == 200
        if r.json()["arm"] == arm:
            return subject, i + 1
        i += 1


def test_a_split_experiment_adds_up_exactly(priced: TestClient) -> None:
    client = priced
    version = set_policy(client, "split", weights={"phone": 50, "email": 50})["version"]
    i = 0
    # Phone arm: 6 subjects see the form, 4 sign up; 3 verify (one after a wrong code),
    # one gets a resend and never verifies.
    phones = []
    for n in range(6):
        subject, i = _subject_for(client, "phone", i)
        if n < 4:
            phone = f"+1202555{100 + n:04d}"
            created = signup(client, phone=phone, subject=subject)
            phones.append((phone, created["account"]["id"], created["verifications"][0]["id"]))
    # Reading a subject's policy again exposes nobody twice.
    for k in range(i):
        assert client.get("/v1/policy", params={"subject": f"device-{k}"}).status_code == 200
    ver_ids = {phone: vid for phone, _, vid in phones}

    p0, p1, p2, p3 = (p for p, _, _ in phones)
    wrong = "0000" if latest_code(client, p0) != "0000" else "1111"
    assert (
        client.post(f"/v1/verifications/{ver_ids[p0]}/check", json={"code": wrong}).status_code
        == 422
    )
    for p in (p0, p1, p2):
        r = client.post(
            f"/v1/verifications/{ver_ids[p]}/check", json={"code": latest_code(client, p)}
        )
        assert r.status_code == 200, r.text
    assert client.post(f"/v1/verifications/{ver_ids[p3]}/resend").status_code in (202, 429)

    # Email arm: 3 sign up; two open the link page, one of them confirms, one confirms
    # without the page (a JSON client).
    emails = []
    j = i
    for n in range(3):
        subject, j = _subject_for(client, "email", j)
        address = f"user{n}@example.test"
        account = signup(client, email=address, subject=subject)["account"]
        emails.append((address, account["id"]))
    e0, e1, e2 = (e for e, _ in emails)
    assert (
        client.get("/v1/email/verify", params={"token": latest_token(client, e0)}).status_code
        == 200
    )
    assert (
        client.get("/v1/email/verify", params={"token": latest_token(client, e0)}).status_code
        == 200
    )
    assert (
        client.get("/v1/email/verify", params={"token": latest_token(client, e1)}).status_code
        == 200
    )
    r = client.post("/v1/email/verify", data={"token": latest_token(client, e0)})
    assert r.status_code == 200, r.text
    r = client.post("/v1/email/verify", json={"token": latest_token(client, e2)})
    assert r.status_code == 200, r.text

    # Labels: one verified phone account and one pending email account are fake.
    headers = admin_headers(client, "labeller")
    r = client.post(
        f"/v1/admin/accounts/{phones[0][1]}/labels",
        json={"label": "fake", "reason": "spam"},
        headers=headers,
    )
    assert r.status_code == 201, r.text
    assert r.json()["label"] == "fake" and r.json()["labelled_by"] == "key:labeller"
    r = client.post(
        "/v1/admin/labels",
        json={
            "labels": [
                {"account_id": emails[1][1], "label": "fake"},
                {"account_id": phones[1][1], "label": "genuine"},
                {"account_id": "acc_nobody", "label": "fake"},
            ]
        },
        headers=headers,
    )
    assert r.status_code == 200, r.text
    assert r.json() == {
        "labelled": 2,
        "by_label": {"fake": 1, "genuine": 1},
        "not_found": ["acc_nobody"],
    }

    stats = _stats(client)
    total_exposed = j  # every subject read once counts, in its own arm
    phone = _arm(stats, version, "phone")
    email = _arm(stats, version, "email")
    assert phone["exposures"] + email["exposures"] == total_exposed
    assert phone["signups"] == 4 and email["signups"] == 3
    assert phone["exposed_signups"] == 4 and email["exposed_signups"] == 3
    assert phone["conversion"]["count"] == 3 and phone["conversion"]["of"] == 4
    assert email["conversion"]["count"] == 2 and email["conversion"]["of"] == 3
    resent = phone["messages"]["resends"]
    assert phone["messages"]["sent"] == 4 + resent
    assert email["messages"]["sent"] == 3
    assert phone["checks"] == {"incorrect": 1, "approved": 3, "per_approval": pytest.approx(4 / 3)}
    assert phone["verifications"]["approved"] == 3
    assert phone["verifications"]["pending"] == 1
    assert email["link_views"] == {"views": 2, "confirmed": 1, "unconfirmed": 1}
    assert phone["labels"]["fake"] == 1 and phone["labels"]["fake_verified"] == 1
    assert phone["labels"]["genuine"] == 1 and phone["labels"]["genuine_verified"] == 1
    assert email["labels"]["fake"] == 1 and email["labels"]["fake_verified"] == 0
    assert phone["labels"]["fake_rate"]["rate"] == pytest.approx(1 / 3)
    assert stats["currency"] == "USD"
    assert phone["cost"]["total"] == pytest.approx(0.0079 * (4 + resent))
    assert phone["cost"]["per_verified"] == pytest.approx(0.0079 * (4 + resent) / 3, abs=1e-6)
    assert email["cost"]["total"] == pytest.approx(0.003)
    assert phone["time_to_verify"]["count"] == 3
    assert phone["time_to_verify"]["p50"] is not None
    comparison = next(v for v in stats["versions"] if v["policy_version"] == version)["comparison"]
    assert comparison["a"] == "phone" and comparison["b"] == "email"
    conv = comparison["conversion"]
    assert conv["difference"] == pytest.approx(2 / 3 - 3 / 4)
    assert conv["decided"] is False
    assert "Not enough data" in conv["verdict"]
    assert comparison["sample_ratio"]["basis"] == "exposures"
    _assert_rollup_matches_rows(client)


def test_stats_survive_a_restart_and_filter_by_version(
    settings: Settings, make_client: Callable[[Settings], TestClient]
) -> None:
    first = make_client(settings)
    v1 = set_policy(first, "phone")["version"]
    signup(first, phone="+12025550111")
    v2 = set_policy(first, "email")["version"]
    signup(first, email="a@example.test")
    signup(first, email="b@example.test")
    first.__exit__(None, None, None)
    again = make_client(settings)
    stats = _stats(again)
    assert _arm(stats, v1, "phone")["signups"] == 1
    assert _arm(stats, v2, "email")["signups"] == 2
    only = _stats(again, policy_version=v2)
    assert [v["policy_version"] for v in only["versions"]] == [v2]
    compared = _stats(again, compare=f"{v1},{v2}")["compare"]
    assert compared["a"] == f"v{v1}" and compared["b"] == f"v{v2}"
    assert compared["conversion"]["n_a"] == 1 and compared["conversion"]["n_b"] == 2
    later = _stats(again, since=(utcnow() + timedelta(hours=2)).isoformat())
    assert later["versions"] == []


def test_exposures_count_once_per_subject_and_version(client: TestClient) -> None:
    version = set_policy(client, "split", weights={"phone": 50, "email": 50})["version"]
    for _ in range(3):
        assert client.get("/v1/policy", params={"subject": "same-device"}).status_code == 200
    handed = client.get("/v1/policy").json()
    assert handed["subject"].startswith("sub_")
    stats = _stats(client)
    exposures = sum(
        a["exposures"]
        for a in next(v for v in stats["versions"] if v["policy_version"] == version)["arms"]
    )
    assert exposures == 2
    # Under another mode, a read with a subject is an exposure too; without one, none.
    other = set_policy(client, "email")["version"]
    client.get("/v1/policy", params={"subject": "same-device"})
    client.get("/v1/policy")
    assert _arm(_stats(client), other, "email")["exposures"] == 1
    _assert_rollup_matches_rows(client)


def test_expiries_are_swept_and_counted(client: TestClient) -> None:
    version = set_policy(client, "phone")["version"]
    signup(client, phone="+12025550122")
    rt = runtime(client)
    with rt.db.write() as conn:
        assert expiry.sweep(conn, utcnow() + timedelta(days=1)) == 1
    with rt.db.write() as conn:
        assert expiry.sweep(conn, utcnow() + timedelta(days=1)) == 0
    arm = _arm(_stats(client), version, "phone")
    assert arm["verifications"]["expired"] == 1 and arm["verifications"]["pending"] == 0
    _assert_rollup_matches_rows(client)


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"compare": "3"}, "compare"),
        ({"compare": "a,b"}, "compare"),
        ({"since": "2026-12-01T00:00:00"}, "since"),
        ({"since": "2026-12-02T00:00:00Z", "until": "2026-12-01T00:00:00Z"}, "until"),
        ({"since": "yesterday"}, "since"),
        ({"policy_version": "0"}, "policy_version"),
    ],
)
def test_bad_stats_queries_name_the_field(
    client: TestClient, params: dict[str, str], field: str
) -> None:
    r = client.get("/v1/admin/stats", params=params, headers=admin_headers(client))
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert [e["field"] for e in r.json()["errors"]] == [field]


def test_stats_and_labels_need_an_admin_key(client: TestClient) -> None:
    assert client.get("/v1/admin/stats").status_code == 401
    assert client.post("/v1/admin/labels", json={"labels": []}).status_code == 401
    r = client.post("/v1/admin/accounts/acc_x/labels", json={"label": "fake"})
    assert r.status_code == 401


def test_labels_refuse_what_is_not_a_label(client: TestClient) -> None:
    headers = admin_headers(client)
    account = signup(client, phone="+12025550133")["account"]
    r = client.post(
        f"/v1/admin/accounts/{account['id']}/labels", json={"label": "bot"}, headers=headers
    )
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "label"
    r = client.post("/v1/admin/accounts/acc_nobody/labels", json={"label": "fake"}, headers=headers)
    assert r.status_code == 404 and r.json()["code"] == "account_not_found"
    r = client.post("/v1/admin/labels", json={"labels": []}, headers=headers)
    assert r.status_code == 422


def test_relabelling_moves_the_account_between_counts(client: TestClient) -> None:
    version = set_policy(client, "phone")["version"]
    headers = admin_headers(client)
    account = signup(client, phone="+12025550144")["account"]
    url = f"/v1/admin/accounts/{account['id']}/labels"
    assert client.post(url, json={"label": "fake"}, headers=headers).status_code == 201
    r = client.post(url, json={"label": "genuine", "reason": "appeal"}, headers=headers)
    assert r.status_code == 201 and r.json()["previous"] == "fake"
    labels = _arm(_stats(client), version, "phone")["labels"]
    assert (labels["fake"], labels["genuine"]) == (0, 1)
    _assert_rollup_matches_rows(client)
