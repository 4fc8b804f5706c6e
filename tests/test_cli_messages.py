"""``verifyd messages list|redrive``, run as an operator runs it, against a live app's database."""

from __future__ import annotations

import subprocess
from pathlib import Path

from support.api import signup
from support.outbox import REAL_PHONES, Flaky, Start, check, delivery, message_row, wait
from test_cli import VERIFYD, cli_env


def _cli(database_url: str, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # The CLI reads the chains from the same settings as the server: flaky, here.
    env = {**cli_env(database_url), "VERIFYD_SMS_PROVIDER": "flaky"}
    return subprocess.run(
        [*VERIFYD, "messages", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_list_then_redrive_a_dead_message(
    start: Start, flaky: type[Flaky], database_url: str, tmp_path: Path
) -> None:
    flaky.fatal = True
    client = start()
    vid = signup(client, phone=REAL_PHONES[0])["verifications"][0]["id"]
    wait("dead", lambda: delivery(client, vid) == "failed")
    dead = message_row(client, vid)

    listed = _cli(database_url, tmp_path, "list")
    assert listed.returncode == 0, listed.stderr
    header, row = listed.stdout.splitlines()
    assert header.split("\t") == [
        "ID", "STATUS", "KIND", "PROVIDER", "TO", "ATTEMPTS", "ERROR_CODE", "CREATED"
    ]  # fmt: skip
    cells = row.split("\t")
    assert cells[:6] == [dead.id, "dead", "sms", "flaky", "+1 415-555-••71", "1"]
    assert "+14155552671" not in listed.stdout, "destinations are masked"
    empty = _cli(database_url, tmp_path, "list", "--status", "sent")
    assert empty.stdout.splitlines() == [header] and "no sent messages" in empty.stderr

    flaky.fatal = flaky.down = False
    redriven = _cli(database_url, tmp_path, "redrive", dead.id, "msg_unknown")
    assert redriven.returncode == 1, "one of the two could not be redriven"
    assert redriven.stdout.splitlines() == [
        f"{dead.id}\tredriven",
        "msg_unknown\tskipped: not_found",
    ]
    assert "1 redriven, 1 skipped" in redriven.stderr
    # The running server's dispatcher picks the queued message up by itself.
    wait("delivery", lambda: delivery(client, vid) == "sent")
    check(client, vid, flaky.sent[0].code or "")
    again = _cli(database_url, tmp_path, "redrive", "--all")
    assert (again.returncode, again.stdout) == (0, "")
    assert "0 redriven, 0 skipped" in again.stderr


def test_redrive_needs_ids_or_all_but_not_both(database_url: str, tmp_path: Path) -> None:
    for args in ((), ("--all", "msg_x")):
        done = _cli(database_url, tmp_path, "redrive", *args)
        assert done.returncode == 2 and "give message ids or --all" in done.stderr
