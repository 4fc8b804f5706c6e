"""``verifyd accounts label``: labels from a CSV file, all or nothing per file, audited."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from support.api import latest_code, runtime, set_policy, signup
from test_cli import ACTOR, CLI_SECRET, VERIFYD, cli_env, run_main
from verifyd.flows.stats import StatsQuery
from verifyd.models import Account, AccountLabel, table_of

Label = Callable[..., tuple[int, str, str]]


@pytest.fixture
def label(
    database_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> Label:
    """``verifyd accounts label …`` in-process on this test's database."""
    monkeypatch.setenv("VERIFYD_DATABASE_URL", database_url)
    monkeypatch.setenv("VERIFYD_SECRET_KEY", CLI_SECRET)
    monkeypatch.chdir(tmp_path)
    return lambda *args: run_main(capsys, "accounts", "label", *args)


def _accounts(client: TestClient, n: int) -> list[str]:
    """``n`` phone signups under a phone policy; the first two verify."""
    set_policy(client, "phone")
    ids = []
    for i in range(n):
        phone = f"+1202555{150 + i:04d}"
        created = signup(client, phone=phone)
        ids.append(created["account"]["id"])
        if i < 2:
            vid = created["verifications"][0]["id"]
            r = client.post(
                f"/v1/verifications/{vid}/check", json={"code": latest_code(client, phone)}
            )
            assert r.status_code == 200, r.text
    return ids


def _labels(client: TestClient) -> list[Any]:
    with runtime(client).db.read() as conn:
        return list(conn.execute(select(table_of(AccountLabel)).order_by("id")).all())


def _current(client: TestClient) -> dict[str, str | None]:
    a = table_of(Account).c
    with runtime(client).db.read() as conn:
        return {row.id: row.label for row in conn.execute(select(a.id, a.label))}


def _phone_labels(client: TestClient) -> dict[str, Any]:
    (version,) = runtime(client).stats.report(StatsQuery())["versions"]
    (arm,) = version["arms"]
    labels: dict[str, Any] = arm["labels"]
    return labels


def _write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "labels.csv"
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_a_file_with_header_and_comments_labels_exactly_its_accounts(
    client: TestClient, label: Label, tmp_path: Path
) -> None:
    a, b, c, d = _accounts(client, 4)
    path = _write(
        tmp_path,
        "account_id,label,reason\n"
        "# exported from the abuse queue\n"
        f"{a},fake,spam\n"
        "\n"
        f'{b},,"chargeback, then ban evasion"\n'
        f"  {c} , genuine\n"
        "   \n",
    )
    code, out, err = label("--file", path, "--label", "fake", "--reason", "batch 7")
    assert (code, err) == (0, ""), err
    assert out == "labelled 3 accounts (fake: 2, genuine: 1)\n"
    rows = [(r.account_id, r.label, r.reason, r.actor) for r in _labels(client)]
    assert sorted(rows) == sorted(
        [
            (a, "fake", "spam", ACTOR),
            (b, "fake", "chargeback, then ban evasion", ACTOR),
            (c, "genuine", "batch 7", ACTOR),
        ]
    )
    assert _current(client) == {a: "fake", b: "fake", c: "genuine", d: None}
    counted = _phone_labels(client)
    assert (counted["fake"], counted["genuine"]) == (2, 1)
    assert (counted["fake_verified"], counted["genuine_verified"]) == (2, 0), "a and b verified"


def test_a_bad_line_is_named_and_nothing_is_labelled(
    client: TestClient, label: Label, tmp_path: Path
) -> None:
    a, b, c = _accounts(client, 3)
    path = _write(
        tmp_path,
        f"account_id,label\n{a},fake\n{b},bot\n\n{c}\n,fake\n{a},fake,spam,extra\n",
    )
    code, out, err = label("--file", path)
    assert (code, out) == (1, "")
    assert f"{path}: line 3: invalid label 'bot' (fake or genuine)" in err
    assert "line 5: no label (give one in the file or --label)" in err
    assert "line 6: no account id" in err
    assert "line 7: more than 3 columns" in err
    assert "line 2" not in err and "nothing labelled" in err
    assert _labels(client) == [] and set(_current(client).values()) == {None}

    # With a default label only the invalid one, the missing id and the extra column remain.
    code, _, err = label("--file", path, "--label", "genuine")
    assert code == 1 and "line 3" in err and "line 5" not in err
    assert _labels(client) == []
    code, _, err = label("--file", _write(tmp_path, "# nothing\n\n"), "--label", "fake")
    assert code == 1 and "no account ids" in err


def test_unknown_ids_exit_1_and_the_rest_are_labelled(
    client: TestClient, label: Label, tmp_path: Path
) -> None:
    a, b = _accounts(client, 2)
    path = _write(tmp_path, f"{a}\nacc_nobody\n{b},genuine\nacc_gone,fake\n")
    code, out, err = label("--file", path, "--label", "fake")
    assert code == 1
    assert out == "labelled 2 accounts (fake: 1, genuine: 1)\n"
    assert err.splitlines() == ["verifyd: not found: acc_nobody", "verifyd: not found: acc_gone"]
    assert _current(client) == {a: "fake", b: "genuine"}

    # Relabelling moves the counts; a later line for the same account wins.
    code, out, _ = label("--file", _write(tmp_path, f"{a},fake\n{a},genuine,appeal\n"))
    assert (code, out) == (0, "labelled 1 accounts (fake: 0, genuine: 1)\n")
    assert [(r.label, r.reason) for r in _labels(client) if r.account_id == a] == [
        ("fake", None),
        ("genuine", "appeal"),
    ]
    counted = _phone_labels(client)
    assert (counted["fake"], counted["genuine"]) == (0, 2)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_stdin_through_the_installed_command(
    client: TestClient, database_url: str, tmp_path: Path
) -> None:
    a, b = _accounts(client, 2)
    done = subprocess.run(
        [*VERIFYD, "accounts", "label", "--file", "-", "--label", "fake"],
        input=f"account_id,label\n{a}\n{b},genuine\n",
        env=cli_env(database_url),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (done.returncode, done.stderr) == (0, ""), done.stderr
    assert done.stdout == "labelled 2 accounts (fake: 1, genuine: 1)\n"
    assert {(r.account_id, r.label, r.actor) for r in _labels(client)} == {
        (a, "fake", ACTOR),
        (b, "genuine", ACTOR),
    }


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_usage_errors(label: Label, tmp_path: Path) -> None:
    code, out, err = label("--file", str(tmp_path / "missing.csv"), "--label", "fake")
    assert (code, out) == (2, "") and "cannot read" in err and "missing.csv" in err
    code, out, err = label("--file", "-", "--label", "bot")
    assert (code, out) == (2, "") and "invalid choice" in err
    code, _, err = label("--label", "fake")
    assert code == 2 and "--file" in err
