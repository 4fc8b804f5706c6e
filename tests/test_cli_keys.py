"""``verifyd admin-key``: ``list`` prints a header row over tab-separated rows;
``create --scope verify`` prints a Twilio credential as two sourceable lines."""

from __future__ import annotations

import hashlib
import re
from datetime import datetime

import pytest
from sqlalchemy import create_engine, text

from test_cli import CLI_SECRET, run_main

HEADER = ["ID", "NAME", "CREATED", "CREATED_BY", "STATE", "SCOPE", "ACCOUNT_SID"]


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
    assert (alice["SCOPE"], alice["ACCOUNT_SID"]) == ("admin", "-")


def test_a_verify_key_prints_the_twilio_sdk_environment(
    database_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("VERIFYD_DATABASE_URL", database_url)
    monkeypatch.setenv("VERIFYD_SECRET_KEY", CLI_SECRET)
    code, out, err = run_main(capsys, "admin-key", "create", "--name", "shop", "--scope", "verify")
    assert code == 0, err
    lines = out.splitlines()
    assert len(lines) == 2 and out.endswith("\n"), out
    sid = re.fullmatch(r"TWILIO_ACCOUNT_SID=(AC[0-9a-f]{32})", lines[0])
    token = re.fullmatch(r"TWILIO_AUTH_TOKEN=([0-9a-f]{32})", lines[1])
    assert sid and token, out
    assert "verify key 'shop'" in err and token.group(1) not in err

    code, out, _ = run_main(capsys, "admin-key", "list")
    [row] = [dict(zip(HEADER, line.split("\t"), strict=True)) for line in out.splitlines()[1:]]
    assert (row["NAME"], row["SCOPE"], row["ACCOUNT_SID"]) == ("shop", "verify", sid.group(1))
    # Only a hash is kept, and not the plain SHA-256 an admin key's secret would have.
    engine = create_engine(database_url)
    with engine.connect() as conn:
        stored = conn.execute(text("SELECT secret_hash FROM admin_keys")).scalar_one()
        dump = "".join(str(r) for r in conn.execute(text("SELECT * FROM admin_keys")))
    engine.dispose()
    assert token.group(1) not in dump
    assert stored != hashlib.sha256(token.group(1).encode()).hexdigest()

    code, _, err = run_main(capsys, "admin-key", "create", "--name", "x", "--scope", "root")
    assert code == 2 and "invalid choice" in err
