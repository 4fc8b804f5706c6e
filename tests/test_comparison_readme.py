"""The README's comparison script, pasted against ``verifyd serve``: every figure the
stats, the report and ``/metrics`` show is exactly what the script did."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from test_walkthrough import README, _verifyd, assert_keeps_its_promises, paste, served

__all__ = ["served"]  # the fixture, shared with the walk-through's test


def comparison_script() -> str:
    text = README.read_text(encoding="utf-8")
    section = text.split("<!-- comparison:begin -->", 1)[1].split("<!-- comparison:end -->", 1)[0]
    blocks = re.findall(r"^```sh\n(.*?)^```", section, flags=re.S | re.M)
    assert len(blocks) == 1
    return blocks[0]


def test_the_readme_comparison_matches_what_its_script_did(
    served: tuple[str, dict[str, str]], tmp_path: Path
) -> None:
    base, env = served
    script = comparison_script()
    printed = paste(script.replace(".venv/bin/python", sys.executable), base, env, tmp_path)
    assert_keeps_its_promises(script, printed)
    did: dict[str, dict[str, int]] = json.loads(
        next(line for line in printed.splitlines() if line.startswith('{"email"'))
    )
    assert set(did) == {"phone", "email"}
    assert all(t["exposed"] >= t["signed_up"] >= t["verified"] for t in did.values()), did
    assert sum(t["exposed"] for t in did.values()) == 40

    key = subprocess.run(
        [_verifyd(), "admin-key", "create", "--name", "checker"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    stats: dict[str, Any] = httpx.get(
        f"{base}/v1/admin/stats", headers={"authorization": f"Bearer {key}"}
    ).json()
    version = stats["versions"][0]
    assert version["mode"] == "split"
    arms = {a["arm"]: a for a in version["arms"]}
    for arm, tally in did.items():
        a = arms[arm]
        assert a["exposures"] == tally["exposed"]
        assert a["signups"] == a["exposed_signups"] == tally["signed_up"]
        assert a["conversion"]["count"] == tally["verified"]
        assert a["labels"]["fake"] == a["labels"]["fake_verified"] == tally["fake"]
        assert a["messages"]["sent"] == tally["signed_up"]
    assert version["comparison"]["conversion"]["decided"] is False

    report = subprocess.run(
        [_verifyd(), "report", "--format", "json"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    from_cli = json.loads(report)
    for doc in (from_cli, stats):
        doc.pop("generated_at")
    assert from_cli == stats

    samples = {
        (s.name, s.labels.get("arm")): s.value
        for family in text_string_to_metric_families(httpx.get(f"{base}/metrics").text)
        for s in family.samples
        if s.labels.get("policy_version") == str(version["policy_version"])
    }
    for arm, tally in did.items():
        assert samples["verifyd_signups_total", arm] == tally["signed_up"]
        assert samples["verifyd_exposures_total", arm] == tally["exposed"]
        assert samples["verifyd_accounts_activated_total", arm] == tally["verified"]
