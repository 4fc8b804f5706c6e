"""``verifyd demo``: run as a user runs it, then read back by report, the rollup and /metrics."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select

from support.browser import chromium, log_in, screenshot_path
from support.postgres import PostgresServer
from support.rollup import Totals, live_and_rebuilt
from test_cli import VERIFYD
from test_walkthrough import README, assert_keeps_its_promises, serving
from verifyd.adminkeys import AdminKeys
from verifyd.cli import main
from verifyd.dashboard.pages import interval, money, pct, points, seconds
from verifyd.db import Database
from verifyd.models import SandboxMessage, table_of

METRICS_TOKEN = "demo-metrics-token"
_inbox = table_of(SandboxMessage)


@dataclass(frozen=True)
class Run:
    """One ``verifyd demo`` beside a running ``verifyd serve``, and what the report says."""

    base: str
    env: dict[str, str]
    home: Path
    url: str
    took: float
    stdout: str
    stderr: str
    version: int
    report: dict[str, Any]

    def arm(self, name: str) -> dict[str, Any]:
        (v,) = [v for v in self.report["versions"] if v["policy_version"] == self.version]
        (arm,) = [a for a in v["arms"] if a["arm"] == name]
        return arm

    def verifyd(self, *args: str) -> str:
        """A CLI command on the server's database, as typed in another terminal; stdout."""
        done = subprocess.run(
            [*VERIFYD, *args],
            env=self.env,
            cwd=self.home,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        return done.stdout


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    """``make run`` in one terminal (``verifyd serve`` on a SQLite file, development prices
    and all), ``verifyd demo`` in another, then ``verifyd report`` on what it printed."""
    home = tmp_path_factory.mktemp("demo")
    with serving(home, VERIFYD_METRICS_TOKEN=METRICS_TOKEN) as (base, env):
        started = time.monotonic()
        demo = subprocess.run(
            [*VERIFYD, "demo"], env=env, cwd=home, capture_output=True, text=True, timeout=110
        )
        took = time.monotonic() - started
        assert demo.returncode == 0, demo.stderr
        found = re.search(r"verifyd report --policy-version (\d+)", demo.stdout)
        assert found, demo.stdout
        version = int(found.group(1))
        url = env["VERIFYD_DATABASE_URL"]
        partial = Run(base, env, home, url, took, demo.stdout, demo.stderr, version, {})
        report = json.loads(
            partial.verifyd("report", "--policy-version", str(version), "--format", "json")
        )
        yield dataclasses.replace(partial, report=report)


def test_refused_in_production(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("VERIFYD_ENV", "production")
    monkeypatch.setenv("VERIFYD_DATABASE_URL", f"sqlite:///{tmp_path / 'v.db'}")
    assert main(["demo"]) == 2
    out, err = capsys.readouterr()
    assert (out, err) == ("", "verifyd: demo is for development only (VERIFYD_ENV=production)\n")
    assert list(tmp_path.iterdir()) == [], "nothing is opened or created"


def test_it_runs_in_under_a_minute_with_progress(run: Run) -> None:
    assert run.took < 60, f"{run.took:.1f} s"
    assert "100% 900/900 people" in run.stderr, run.stderr  # not a terminal: a line per tenth
    assert run.stderr.count("people") == 10, run.stderr
    assert "Times are compressed" in run.stdout
    assert "/admin (log in with an admin key: verifyd admin-key create --name you)" in run.stdout


def readme_demo() -> str:
    """The README's step 11: the shell between the ``demo:begin``/``end`` markers."""
    text = README.read_text(encoding="utf-8")
    section = text.split("<!-- demo:begin -->", 1)[1].split("<!-- demo:end -->", 1)[0]
    (block,) = re.findall(r"^```sh\n(.*?)^```", section, flags=re.S | re.M)
    return str(block)


def test_the_readme_runs_it_and_shows_what_it_prints(run: Run) -> None:
    block = readme_demo()
    commands = [ln for ln in block.splitlines() if ln.strip() and not ln.startswith("#")]
    assert commands == [".venv/bin/verifyd demo"]  # what the fixture ran
    host = run.base.removeprefix("http://")
    assert_keeps_its_promises(block, run.stdout.replace(host, "127.0.0.1:8000"))


def test_the_summary_prints_the_services_figures(run: Run) -> None:
    for label, path in (("signed up", ("signups",)), ("verified", ("conversion", "count"))):
        (row,) = [line for line in run.stdout.splitlines() if line.strip().startswith(label)]
        printed = [int(n) for n in row.split()[-2:]]
        figures = []
        for arm in ("phone", "email"):
            value: Any = run.arm(arm)
            for part in path:
                value = value[part]
            figures.append(value)
        assert printed == figures, row


def test_the_report_shows_the_comparison_the_population_implies(run: Run) -> None:
    (v,) = run.report["versions"]
    assert v["mode"] == "split" and v["weights"] == {"phone": 50, "email": 50}
    assert v["experiment"].startswith("demo-")
    phone, email = run.arm("phone"), run.arm("email")
    for arm in (phone, email):
        assert arm["exposures"] > arm["signups"] > arm["conversion"]["count"] > 0
        assert arm["labels"]["fake"] > 0 and arm["labels"]["genuine"] > 0
        assert arm["messages"]["resends"] > 0
        assert arm["time_to_verify"]["histogram"]
        assert arm["suspect"]["by_signal"]["velocity_ip"] > 0
    # More people leave a form that asks for a phone number.
    assert phone["signups_per_exposure"] < email["signups_per_exposure"]
    for signal in ("voip", "velocity_prefix"):
        assert phone["suspect"]["by_signal"][signal] > 0, signal
    for signal in ("disposable_email", "email_alias"):
        assert email["suspect"]["by_signal"][signal] > 0, signal
    assert phone["checks"]["incorrect"] > 0
    assert email["link_views"]["unconfirmed"] > 0
    # Bots get through a disposable inbox, rarely through an SMS.
    assert email["labels"]["fake_rate"]["rate"] > phone["labels"]["fake_rate"]["rate"]
    assert phone["cost"]["per_verified"] > email["cost"]["per_verified"] > 0
    assert phone["time_to_verify"]["p50"] < email["time_to_verify"]["p50"]


def assert_counted_and_key_revoked(url: str) -> None:
    """The rollup equals what its rows say, every send is in the inbox, the key is revoked."""
    db = Database(url)
    try:
        with db.read() as conn:
            live, rebuilt = live_and_rebuilt(conn)
            inbox = dict(
                conn.execute(
                    select(_inbox.c.channel, func.count()).group_by(_inbox.c.channel)
                ).all()
            )
        keys = AdminKeys(db).list()
    finally:
        db.dispose()
    # rebuild.compute finds sends without an outbox row only for sandbox destinations;
    # the demo's real-looking ones went to the sandbox provider too: its inbox has them.
    assert _without_sends(live) == _without_sends(rebuilt)
    sent = {"sms": 0, "email": 0}
    for (_, _, name), n in live.items():
        if name.startswith("sent."):
            sent[name.split(".")[1]] += n
    assert sent == inbox and sent["sms"] > 0 and sent["email"] > 0
    (key,) = keys
    assert key.name.startswith("demo-") and key.revoked_at is not None


def test_the_rollup_equals_the_rows_and_the_key_is_revoked(run: Run) -> None:
    assert_counted_and_key_revoked(run.url)


@pytest.mark.postgres
def test_it_runs_on_postgresql(pg_server: PostgresServer) -> None:
    url = pg_server.create_database(f"demo_{uuid.uuid4().hex[:12]}")
    env = {k: v for k, v in os.environ.items() if not k.startswith("VERIFYD_")}
    env["VERIFYD_DATABASE_URL"] = url
    demo = subprocess.run(
        [*VERIFYD, "demo", "--people", "120", "--quiet"],
        env=env,
        capture_output=True,
        text=True,
        timeout=100,
    )
    assert demo.returncode == 0, demo.stderr
    assert demo.stderr == ""  # --quiet: no bar
    assert "verifyd demo: 120 people (80 genuine, 40 bots" in demo.stdout
    assert_counted_and_key_revoked(url)


def _without_sends(counts: Totals) -> Totals:
    return {key: n for key, n in counts.items() if not key[2].startswith("sent.")}


def _series(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_metrics_agree_with_the_report(run: Run) -> None:
    r = httpx.get(f"{run.base}/metrics", headers={"authorization": f"Bearer {METRICS_TOKEN}"})
    assert r.status_code == 200
    series = _series(r.text)
    for name in ("phone", "email"):
        arm, labels = run.arm(name), (("arm", name), ("policy_version", str(run.version)))
        assert series["verifyd_signups_total", labels] == arm["signups"]
        assert series["verifyd_accounts_activated_total", labels] == arm["conversion"]["count"]
        fake = tuple(sorted((*labels, ("label", "fake"))))
        assert series["verifyd_labelled_accounts", fake] == arm["labels"]["fake"]
        for signal, n in arm["suspect"]["by_signal"].items():
            flagged = tuple(sorted((*labels, ("signal", signal))))
            assert series["verifyd_suspect_signups_total", flagged] == n, signal


@pytest.mark.browser
def test_the_dashboard_it_points_to_agrees_with_the_report(run: Run) -> None:
    """What the demo tells the user to do next, done in Chromium: open /admin, log in."""
    told = re.search(
        r"Open (\S+)/admin \(log in with an admin key: verifyd (admin-key create [^)]+)\)",
        run.stdout,
    )
    assert told, run.stdout
    assert told.group(1) == run.base
    key = run.verifyd(*told.group(2).split()).strip()
    (version,) = run.report["versions"]
    currency = run.report["currency"]
    with chromium() as browser:
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        context.set_default_timeout(10_000)
        page = context.new_page()
        requests: list[str] = []
        refused: list[str] = []
        page.on("request", lambda request: requests.append(request.url))
        page.on(
            "console",
            lambda message: refused.append(message.text) if "Refused" in message.text else None,
        )
        log_in(page, run.base, key)
        page.screenshot(path=screenshot_path("demo-dashboard"), full_page=True)

        # The demo's version is in force and shown by default.
        assert page.locator("#current-version").inner_text() == str(run.version)
        assert page.locator("#current-mode").inner_text() == "split"
        title = page.locator("#section-title").inner_text()
        assert f"Policy version {run.version}: split" in title and version["experiment"] in title

        for arm in version["arms"]:
            cells = page.locator(f'#arms tr[data-arm="{arm["arm"]}"] td').all_inner_texts()
            conversion, ttv = arm["conversion"], arm["time_to_verify"]
            fake = arm["labels"]["fake_rate"]
            assert cells == [
                arm["arm"],
                f"{arm['exposures']:,}",
                f"{arm['signups']:,}",
                f"{arm['blocked']['total']:,}",
                f"{conversion['count']:,}",
                f"{pct(conversion['rate'])} [{pct(conversion['interval'][0])}, "
                f"{pct(conversion['interval'][1])}]",
                f"{seconds(ttv['p50'])} / {seconds(ttv['p90'])}",
                money(arm["cost"]["per_verified"], currency),
                f"{arm['suspect']['count']:,} ({pct(arm['suspect']['rate'])})",
                f"{arm['labels']['fake_verified']:,} of {conversion['count']:,} "
                f"({pct(fake['rate'])} [{pct(fake['interval'][0])}, {pct(fake['interval'][1])}])",
            ], arm["arm"]
        comparison = version["comparison"]
        assert page.locator("#verdict li").all_inner_texts() == comparison["verdict"]
        differences = page.locator("#differences tbody tr").all_inner_texts()
        assert len(differences) == 3
        for row, key_ in zip(differences, ("conversion", "suspect_rate", "fake_rate"), strict=True):
            entry = comparison[key_]
            assert points(entry["difference"]) in row and interval(entry["interval"]) in row, row
            assert ("yes" if entry["decided"] else "not yet") in row

        for chart in ("funnel", "ttv", "cost", "conversion", "suspect", "fake"):
            svg = page.locator(f"#chart-{chart} svg")
            box = svg.bounding_box()
            assert box is not None and box["width"] > 200 and box["height"] > 50, chart
            assert svg.locator("rect, line, circle, path").count() >= 2, chart
        funnel = page.locator("#chart-funnel svg").text_content() or ""
        for arm in version["arms"]:
            for figure in (arm["exposures"], arm["signups"], arm["conversion"]["count"]):
                assert f"{figure:,}" in funnel, (arm["arm"], figure, funnel)
        context.close()

    assert requests and all(url.startswith(f"{run.base}/") for url in requests), requests
    assert not refused, refused  # nothing the CSP had to block
    csp = httpx.get(f"{run.base}/admin/login").headers["content-security-policy"]
    sources = {d.split()[0]: d.split()[1:] for d in csp.split(";") if d.strip()}
    assert sources["default-src"] == ["'none'"] and "script-src" not in sources
    assert all(s in ("'self'", "'none'") for values in sources.values() for s in values), csp
