"""``verifyd report``: the admin stats from the command line, as a table, JSON or CSV."""

from __future__ import annotations

import csv
import io
import itertools
import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from support.api import admin_headers, latest_code, runtime, set_policy, signup
from support.verify_services import seed_services
from test_cli import CLI_SECRET, run_main
from verifyd import rollup
from verifyd.db import Database
from verifyd.models import utcnow
from verifyd.settings import Settings

PRICES = {"currency": "USD", "email": 0.001, "sms": {"default": 0.05, "US": 0.0079}}

Report = Callable[..., tuple[int, str, str]]
_keys = itertools.count()


@pytest.fixture
def priced(
    make_settings: Callable[..., Settings], make_client: Callable[[Settings], TestClient]
) -> TestClient:
    return make_client(make_settings(prices=json.dumps(PRICES)))


@pytest.fixture
def report(
    database_url: str,
    tmp_path: Any,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> Report:
    """``verifyd report …`` in-process on this test's database, with the app's prices."""
    monkeypatch.setenv("VERIFYD_DATABASE_URL", database_url)
    monkeypatch.setenv("VERIFYD_SECRET_KEY", CLI_SECRET)
    monkeypatch.setenv("VERIFYD_PRICES", json.dumps(PRICES))
    monkeypatch.chdir(tmp_path)
    return lambda *args: run_main(capsys, "report", *args)


def _api(client: TestClient, **params: Any) -> dict[str, Any]:
    r = client.get(
        "/v1/admin/stats", params=params, headers=admin_headers(client, f"ops-{next(_keys)}")
    )
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def _subject(client: TestClient, arm: str, start: int) -> tuple[str, int]:
    """A subject the split assigns to ``arm`` (exposed by the read), and where to go on."""
    i = start
    while True:
        r = client.get("/v1/policy", params={"subject": f"device-{i}"})
        if r.json()["arm"] == arm:
            return f"device-{i}", i + 1
        i += 1


def _traffic(client: TestClient) -> tuple[int, int]:
    """A phone version (1 signup), then a split: phone 3 signups (2 verified, 1 labelled
    fake), email 2 signups (none verified). Returns both versions."""
    first = set_policy(client, "phone")["version"]
    signup(client, phone="+12025550100")
    split = set_policy(client, "split", weights={"phone": 50, "email": 50})["version"]
    i = 0
    phones = []
    for n in range(3):
        subject, i = _subject(client, "phone", i)
        phone = f"+1202555{110 + n:04d}"
        created = signup(client, phone=phone, subject=subject)
        phones.append((phone, created["account"]["id"], created["verifications"][0]["id"]))
    for n in range(2):
        subject, i = _subject(client, "email", i)
        signup(client, email=f"user{n}@example.test", subject=subject)
    for phone, _, vid in phones[:2]:
        r = client.post(f"/v1/verifications/{vid}/check", json={"code": latest_code(client, phone)})
        assert r.status_code == 200, r.text
    r = client.post(
        f"/v1/admin/accounts/{phones[0][1]}/labels",
        json={"label": "fake"},
        headers=admin_headers(client, "labeller"),
    )
    assert r.status_code == 201, r.text
    return first, split


def _arm(stats: dict[str, Any], version: int, arm: str) -> dict[str, Any]:
    found: dict[str, Any]
    (found,) = [
        a
        for v in stats["versions"]
        if v["policy_version"] == version
        for a in v["arms"]
        if a["arm"] == arm
    ]
    return found


def test_json_is_the_apis_json(priced: TestClient, report: Report) -> None:
    first, split = _traffic(priced)
    cases: list[tuple[tuple[str, ...], dict[str, Any]]] = [
        ((), {}),
        (("--compare", f"{first},{split}:phone"), {"compare": f"{first},{split}:phone"}),
        (("--policy-version", str(split)), {"policy_version": split}),
    ]
    for args, params in cases:
        code, out, err = report("--format", "json", *args)
        assert (code, err) == (0, ""), err
        mine, served = json.loads(out), _api(priced, **params)
        assert mine.pop("generated_at").endswith("Z")
        served.pop("generated_at")
        assert mine == served, args
    assert mine["versions"][0]["changed_at"].endswith("Z")
    assert _arm(mine, split, "phone")["conversion"]["count"] == 2


def test_table_fits_80_columns_and_shows_the_figures(priced: TestClient, report: Report) -> None:
    first, split = _traffic(priced)
    stats = _api(priced)
    code, out, err = report()
    assert (code, err) == (0, ""), err
    lines = out.splitlines()
    assert all(len(line) <= 80 for line in lines), max(lines, key=len)
    assert f"Policy version {split}: split (phone 50, email 50)" in out
    assert f"Policy version {first}: phone" in out
    row: dict[str, list[str]] = {}
    for line in lines:  # the split's table comes first (newest version first)
        row.setdefault(line.split("  ")[0], line.split())
    assert row["signups"][-2:] == ["3", "2"], "phone then email in the split"
    assert row["verified"][-2:] == ["2", "0"]
    assert row["fake labelled"][-2:] == ["1", "0"]
    phone = _arm(stats, split, "phone")
    assert f"{phone['cost']['total']:,.4f} USD" in out
    assert "email vs phone (differences are email - phone, in points):" in out
    conversion = next(line for line in lines if line.startswith("conversion  "))
    assert "-66.7 [" in conversion and conversion.endswith(" no")
    assert "Sample ratio (exposures): phone " in out
    assert "- Not enough data" in out


def test_table_with_long_numbers_stays_in_80_columns(priced: TestClient, report: Report) -> None:
    _, split = _traffic(priced)
    now = utcnow()
    big = {
        "exposures": 98_765_432,
        "signups": 87_654_321,
        "signups.exposed": 87_654_321,
        "activated": 65_432_109,
        "suspect": 1_234_567,
        "sent.sms.US.1": 99_999_999,
        "resends.sms": 12_345_678,
        "delivered.sms": 88_888_888,
        "failed.sms": 1_111_111,
        "ttv.18": 65_432_109,
        "label.fake": 2_345_678,
        "label.fake.active": 2_000_000,
    }
    with runtime(priced).db.write() as conn:
        for name, n in big.items():
            rollup.add(conn, split, "phone", name, now, n)
            # Email: three times the traffic, but two times the verified accounts.
            scale = 2 if name in ("activated", "ttv.18") else 3
            rollup.add(conn, split, "email", name, now, n * scale)
    code, out, _ = report()
    assert code == 0
    lines = out.splitlines()
    assert all(len(line) <= 80 for line in lines), "\n".join(x for x in lines if len(x) > 80)
    assert f"{3 * big['signups'] + 2:,}" in out, "email's signups, with thousands separators"
    assert any("h" in line.split()[-1] for line in lines if line.startswith("time to verify p50"))
    conversion = next(line for line in lines if line.startswith("conversion  "))
    assert conversion.endswith(" yes"), "millions of signups decide the comparison"
    assert "<0.001" in conversion and "p < 0.001: MISMATCH." in " ".join(out.split())


def test_csv_has_a_row_per_version_and_arm(priced: TestClient, report: Report) -> None:
    first, split = _traffic(priced)
    code, out, err = report("--format", "csv")
    assert (code, err) == (0, ""), err
    assert out.startswith("policy_version,mode,arm,exposures,signups,")
    rows = {(r["policy_version"], r["arm"]): r for r in csv.DictReader(io.StringIO(out))}
    assert sorted(rows) == sorted(
        [(str(first), "phone"), (str(split), "phone"), (str(split), "email")]
    )
    phone, email = rows[str(split), "phone"], rows[str(split), "email"]
    assert (phone["mode"], phone["signups"], phone["verified"], phone["sent"]) == (
        "split",
        "3",
        "2",
        "3",
    )
    assert (phone["fake_labelled"], phone["fake_verified"], phone["currency"]) == ("1", "1", "USD")
    assert float(phone["fake_rate"]) == pytest.approx(0.5)
    assert float(phone["cost_total"]) == pytest.approx(3 * 0.0079)
    assert (email["signups"], email["verified"], email["cost_per_verified"]) == ("2", "0", "")
    assert float(email["cost_total"]) == pytest.approx(0.002)
    assert rows[str(first), "phone"]["signups"] == "1"


def test_compare_two_versions(priced: TestClient, report: Report) -> None:
    first, split = _traffic(priced)
    code, out, _ = report("--compare", f"{first},{split}")
    assert code == 0
    assert f"Compare v{first} with v{split}" in out
    assert f"v{split} vs v{first} (differences are v{split} - v{first}, in points):" in out
    assert all(len(line) <= 80 for line in out.splitlines())
    code, out, _ = report("--format", "json", "--compare", f"{first}:phone,{split}:email")
    compared = json.loads(out)["compare"]
    assert (compared["a"], compared["b"]) == (f"v{first} phone", f"v{split} email")
    assert (compared["conversion"]["n_a"], compared["conversion"]["n_b"]) == (1, 2)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_nothing_to_report_yet(report: Report) -> None:
    code, out, err = report()
    assert (code, out, err) == (0, "Nothing to report yet: no exposures or signups so far.\n", "")
    later = (utcnow() + timedelta(hours=2)).replace(microsecond=0).isoformat()
    code, out, _ = report("--since", later)
    assert code == 0 and out.startswith("Nothing to report yet") and "since" in out
    code, out, _ = report("--format", "csv")
    assert (code, out.count("\n")) == (0, 1), "the header alone"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize(
    ("args", "mention"),
    [
        (["--since", "yesterday"], "not an ISO 8601 time"),
        (["--since", "2026-12-01T00:00:00"], "time zone"),
        (["--since", "2026-12-02T00:00:00Z", "--until", "2026-12-01T00:00:00Z"], "--until"),
        (["--compare", "3"], "two versions"),
        (["--compare", "a,b"], "not a policy version"),
        (["--compare", "0,1"], "the Verify services have their own section"),
        (["--policy-version", "0"], "not a policy version"),
        (["--format", "xml"], "invalid choice"),
    ],
)
def test_bad_input_exits_2_with_a_message(report: Report, args: list[str], mention: str) -> None:
    code, out, err = report(*args)
    assert (code, out) == (2, "")
    assert mention in err and "Traceback" not in err


def test_the_verify_services_follow_the_policies(priced: TestClient, report: Report) -> None:
    first, split = _traffic(priced)
    acme, beta = seed_services(runtime(priced).db)
    code, out, err = report()
    assert (code, err) == (0, ""), err
    lines = out.splitlines()
    assert all(len(line) <= 80 for line in lines), max(lines, key=len)
    assert "Policy version 0" not in out
    assert out.index(f"Policy version {first}") < out.index("Verify services:")
    section = out[out.index(f"Verify service Acme ({acme.sid})") :]
    assert f"Verify service Beta ({beta.sid}), deleted " in section
    acme_table = section[: section.index("Verify service Beta")].splitlines()
    row = {line.split("  ")[0]: line.split() for line in acme_table if "  " in line}
    assert row[""] == ["email", "sms", "all"]
    assert row["started"][-3:] == ["3", "4", "7"]
    assert row["approved"][-3:] == ["1", "2", "3"]
    assert row["max attempts"][-3:] == ["0", "1", "1"]
    assert "- Time to verify: p50 18 s, p90 20 s." in section
    assert "- Refused: 2 (sms_budget_prefix 2)." in section
    code, out, _ = report("--format", "json")
    mine, served = json.loads(out), _api(priced)
    del mine["generated_at"], served["generated_at"]
    assert mine == served
    assert [s["sid"] for s in mine["verify_services"]] == [acme.sid, beta.sid]
    code, out, _ = report("--format", "csv")
    assert code == 0 and acme.sid not in out and acme.stats_key not in out


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_only_verify_services_is_something_to_report(database_url: str, report: Report) -> None:
    db = Database(database_url)
    try:
        acme, _ = seed_services(db)
    finally:
        db.dispose()
    code, out, _ = report()
    assert code == 0 and not out.startswith("Nothing to report yet")
    assert f"Verify service Acme ({acme.sid})" in out and "Policy version" not in out
