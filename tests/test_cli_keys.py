"""``verifyd admin-key list``: a header row, then one tab-separated row per key."""

from __future__ import annotations

from datetime import datetime

import pytest

from test_cli import CLI_SECRET, run_main

HEADER = ["ID", "NAME", "CREATED", "CREATED_BY", "STATE"]


def test_list_has_a_header_row_over_tab_separated_columns(
    database_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("VERIFYD_DATABASE_URL", database_url)
    monkeypatch.setenv("VERIFYD_SECRET_KEY", CLI_SECRET)

    code, out, err = run_main(capsys, "admin-key", "list")
    assert code == 0 and out == "\t".join(HEADER) + "\n", (out, err)
    assert "no admin keys" in err, "an empty list says so, on stderr"

    for name in ("ops-alice", "ops-bob"):
        assert run_main(capsys, "admin-key", "create", "--name", name)[0] == 0
    assert run_main(capsys, "admin-key", "revoke", "ops-alice")[0] == 0

    code, out, err = run_main(capsys, "admin-key", "list")
    assert code == 0 and err == "", err
    header, *rows = [line.split("\t") for line in out.splitlines()]
    assert header == HEADER
    assert [len(row) for row in rows] == [len(HEADER)] * 2, out
    by_name = {row[1]: dict(zip(HEADER, row, strict=True)) for row in rows}
    assert list(by_name) == ["ops-alice", "ops-bob"], "oldest first"
    alice, bob = by_name["ops-alice"], by_name["ops-bob"]
    assert bob["STATE"] == "active"
    state, revoked_at = alice["STATE"].split(" ")
    assert state == "revoked" and datetime.fromisoformat(revoked_at)
    assert datetime.fromisoformat(alice["CREATED"]) <= datetime.fromisoformat(bob["CREATED"])
    assert alice["CREATED_BY"].startswith("cli:") and alice["ID"].isalnum()
