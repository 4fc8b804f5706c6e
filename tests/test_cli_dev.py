"""``verifyd dev reset``: empties a development database, keeps its schema, refuses production."""

from __future__ import annotations

import json
import re
import subprocess
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, text

from support.api import admin_headers, latest_code, runtime, set_policy, signup
from test_cli import VERIFYD, cli_env, run_main
from test_cli_serve import get, serving
from verifyd import migrate
from verifyd.cli.dev import WHAT_GOES, data_tables
from verifyd.db import Database
from verifyd.settings import Settings

PHONE, E164 = "+1 202 555 0142", "+12025550142"
#: Not a sandbox number: its code goes through the outbox (to the console provider).
REAL_MOBILE = "+1 415 555 2671"

#: What a used development database holds; the reset must empty each one.
FILLED = {
    "accounts",
    "verifications",
    "identities",
    "messages",
    "sandbox_messages",
    "policy_versions",
    "admin_keys",
    "audit_events",
    "rate_counters",
    "idempotency_keys",
}


#: Tables whose row count is not a function of the requests alone: the stats' counters
#: gain rows when the outbox delivers (after the request answered), their time-to-verify
#: bucket depends on timing, and PostgreSQL spreads them over random shards. The tests
#: check they are emptied (``_stat_rows``), not how many rows they had.
UNSTEADY = {"stat_counts"}


def _counts(client: TestClient) -> dict[str, int]:
    with runtime(client).db.read() as conn:
        return {
            t.name: conn.execute(select(func.count()).select_from(t)).scalar_one()
            for t in data_tables()
            if t.name not in UNSTEADY
        }


def _stat_rows(client: TestClient) -> int:
    with runtime(client).db.read() as conn:
        rows: int = conn.execute(text("SELECT count(*) FROM stat_counts")).scalar_one()
        return rows


def _use(client: TestClient) -> dict[str, int]:
    """Fill every table the way a developer's afternoon does; returns the row counts."""
    r = client.post("/v1/accounts", json={"phone": PHONE}, headers={"Idempotency-Key": "k-1"})
    assert r.status_code == 201, r.text
    ver_id = r.json()["verifications"][0]["id"]
    check = client.post(
        f"/v1/verifications/{ver_id}/check", json={"code": latest_code(client, E164)}
    )
    assert check.status_code == 200, check.text  # the account is active: an identity row
    assert client.post("/v1/accounts", json={"phone": REAL_MOBILE}).status_code == 201
    admin_headers(client)
    set_policy(client, "either")
    counts = _counts(client)
    assert {name for name, n in counts.items() if n} >= FILLED, counts
    return counts


def _reset(
    env: dict[str, str], cwd: Path, *args: str, answer: str | None = None
) -> subprocess.CompletedProcess[str]:
    """``verifyd dev reset ARGS`` with ``answer`` typed on stdin (``None``: stdin at EOF)."""
    return subprocess.run(
        [*VERIFYD, "dev", "reset", *args],
        env=env,
        cwd=cwd,
        input=answer,
        stdin=subprocess.DEVNULL if answer is None else None,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _deleted(stderr: str) -> dict[str, int]:
    """The per-table counts printed after ``rows deleted:``."""
    _, found, after = stderr.partition("rows deleted:\n")
    assert found, stderr
    found_counts = {m[1]: int(m[2]) for m in re.finditer(r"^  (\w+) +(\d+)$", after, re.MULTILINE)}
    return {name: n for name, n in found_counts.items() if name not in UNSTEADY}


def test_help_names_every_table_it_empties(capsys: pytest.CaptureFixture[str]) -> None:
    assert set(WHAT_GOES) == {t.name for t in data_tables()}
    code, out, _ = run_main(capsys, "dev", "reset", "--help")
    text = " ".join(out.split())
    assert code == 0
    for words in WHAT_GOES.values():
        assert words in text


def test_refused_in_production_and_without_confirmation(
    database_url: str,
    tmp_path: Path,
    make_settings: Callable[..., Settings],
    make_client: Callable[[Settings], TestClient],
) -> None:
    client = make_client(make_settings())
    before = _use(client)
    env = cli_env(database_url)
    production = {**env, "VERIFYD_ENV": "production"}
    absent = tmp_path / "absent"
    elsewhere = {**production, "VERIFYD_DATABASE_URL": f"sqlite:///{absent}/verifyd.db"}

    refused = [
        (_reset(production, tmp_path, "--yes"), 2, "development only"),
        (_reset(elsewhere, tmp_path, "--yes"), 2, "development only"),
        (_reset(env, tmp_path), 1, "no answer on stdin"),
        (_reset(env, tmp_path, answer="y\n"), 1, "nothing was deleted"),
        (_reset(env, tmp_path, answer="\n"), 1, "nothing was deleted"),
    ]
    for result, code, says in refused:
        assert result.returncode == code, (result.args, result.stderr)
        assert says in result.stderr and result.stdout == "", result
        assert "Traceback" not in result.stderr and "rows deleted" not in result.stderr
    for result, _, _ in refused[:2]:
        assert "VERIFYD_ENV" in result.stderr and len(result.stderr.splitlines()) == 1
    for result, _, _ in refused[2:]:
        assert Database(database_url).describe() in result.stderr, "it names the database"
        assert "Type reset" in result.stderr
    assert not absent.exists(), "production never opens the database"
    assert _counts(client) == before


def test_wipes_every_table_and_keeps_the_schema(
    database_url: str,
    tmp_path: Path,
    make_settings: Callable[..., Settings],
    make_client: Callable[[Settings], TestClient],
) -> None:
    client = make_client(make_settings())
    before = _use(client)
    env = cli_env(database_url)

    typed = _reset(env, tmp_path, answer="reset\n")
    assert typed.returncode == 0, typed.stderr
    assert typed.stdout == "" and "Traceback" not in typed.stderr
    assert Database(database_url).describe() in typed.stderr
    assert _deleted(typed.stderr) == before
    assert set(_counts(client).values()) == {0} and _stat_rows(client) == 0
    db = Database(database_url)
    try:
        assert migrate.is_current(db.writer), "alembic_version stays: no re-migration"
    finally:
        db.dispose()

    # The schema is intact and the app carries on: version 1 again, and the phone is free.
    policy = client.get("/v1/policy").json()
    assert (policy["policy_version"], policy["mode"]) == (1, "phone")
    again = _use(client)
    assert again == before, "a reset database fills exactly as a new one"

    yes = _reset(env, tmp_path, "--yes")
    assert yes.returncode == 0, yes.stderr
    assert _deleted(yes.stderr) == again
    assert set(_counts(client).values()) == {0} and _stat_rows(client) == 0
    assert signup(client, phone=PHONE)["account"]["status"] == "pending"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_keeps_the_development_secret_file(database_url: str, tmp_path: Path) -> None:
    env = cli_env(database_url)
    del env["VERIFYD_SECRET_KEY"]  # development keeps its generated secret beside the file
    secret = Settings(database_url=database_url).secret_file()
    assert secret is not None
    secret.write_text("a-development-secret-generated-earlier-0123456789\n")
    result = _reset(env, tmp_path, "--yes")
    assert result.returncode == 0, result.stderr
    assert str(secret) in result.stderr, "it says the secret file stays"
    assert secret.read_text() == "a-development-secret-generated-earlier-0123456789\n"


def _post(url: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(
        url, json.dumps(body).encode(), {"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=10) as r:
        return r.status, json.loads(r.read())


def test_works_while_serve_runs_on_the_same_sqlite_file(tmp_path: Path) -> None:
    env = {**cli_env(f"sqlite:///{tmp_path}/verifyd.db"), "VERIFYD_POLICY_CACHE_SECONDS": "1"}
    with serving(env, tmp_path) as server:
        status, created = _post(server.base_url + "/v1/accounts", {"phone": PHONE})
        assert status == 201
        account_id = created["account"]["id"]
        switched = subprocess.run(
            [*VERIFYD, "policy", "set", "email"], env=env, cwd=tmp_path, capture_output=True
        )
        assert switched.returncode == 0, switched.stderr

        result = _reset(env, tmp_path, "--yes")
        assert result.returncode == 0, result.stderr
        deleted = _deleted(result.stderr)
        assert deleted["accounts"] == 1 and deleted["policy_versions"] == 2, deleted

        assert get(f"{server.base_url}/v1/accounts/{account_id}")[0] == 404
        deadline = time.monotonic() + 10  # the server's policy cache lasts a second
        while True:
            policy = json.loads(get(server.base_url + "/v1/policy")[1])
            if (policy["policy_version"], policy["mode"]) == (1, "phone"):
                break
            assert time.monotonic() < deadline, policy
            time.sleep(0.1)
        status, fresh = _post(server.base_url + "/v1/accounts", {"phone": PHONE})
        assert status == 201 and fresh["account"]["policy_version"] == 1
        inbox = json.loads(get(f"{server.base_url}/v1/sandbox/messages?to={E164}")[1])
        assert len(inbox["messages"]) == 1, "the earlier code went with the reset"
        assert server.proc.poll() is None
    assert "Traceback" not in server.output()
