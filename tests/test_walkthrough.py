"""The README's walk-through, pasted as a user pastes it, twice, against ``verifyd serve``.

The shell between the ``walkthrough:begin``/``end`` markers runs under bash with curl and
jq; every ``# → …`` line in it is the output the README promises, checked in order
(``…`` stands for anything). The second paste must work exactly like the first.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from support.net import free_port
from test_cli_serve import serving as serve_process

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PROMISE = "# → "


def walkthrough() -> str:
    """The shell of the README's walk-through, its fenced blocks joined."""
    text = README.read_text(encoding="utf-8")
    begin, end = "<!-- walkthrough:begin -->", "<!-- walkthrough:end -->"
    assert text.count(begin) == 1 and text.count(end) == 1, "walk-through markers"
    section = text.split(begin, 1)[1].split(end, 1)[0]
    blocks = re.findall(r"^```sh\n(.*?)^```", section, flags=re.S | re.M)
    assert blocks, "no ```sh block between the walk-through markers"
    return "\n".join(blocks)


def promises(script: str) -> list[re.Pattern[str]]:
    """The outputs the walk-through shows, as patterns (``…`` matches anything)."""
    lines = [ln.strip()[len(PROMISE) :] for ln in script.splitlines()]
    shown = [
        ln
        for ln, raw in zip(lines, script.splitlines(), strict=True)
        if raw.strip().startswith(PROMISE)
    ]
    return [re.compile(".*?".join(map(re.escape, p.split("…"))) + r"\Z") for p in shown]


def _verifyd() -> str:
    beside = Path(sys.executable).with_name("verifyd")
    assert beside.exists(), f"the verifyd console script is not installed beside {sys.executable}"
    return str(beside)


@contextmanager
def serving(home: Path, **settings: str) -> Iterator[tuple[str, dict[str, str]]]:
    """``verifyd serve`` as ``make run`` starts it: a SQLite file in ``home``, sandbox on.

    Args:
        home: The working directory, where the database, its secret and the log are.
        settings: More ``VERIFYD_*`` variables for the server (and for any command run
            with the environment it yields).

    Yields:
        The server's base URL, and the environment a CLI command on its database needs.
    """
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("VERIFYD_")}
    env.update(
        VERIFYD_DATABASE_URL=f"sqlite:///{home}/verifyd.db",
        VERIFYD_PORT=str(port),
        VERIFYD_PUBLIC_BASE_URL=f"http://127.0.0.1:{port}",
        **settings,
    )
    with serve_process(env, home, port=port) as server:
        yield server.base_url, env


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """``verifyd serve`` on its embedded default (a SQLite file, sandbox on), on a free port."""
    with serving(tmp_path) as started:
        yield started


def paste(script: str, base: str, env: dict[str, str], cwd: Path) -> str:
    """Run the walk-through as pasted into bash; returns what it printed."""
    host = base.removeprefix("http://")
    runnable = script.replace("localhost:8000", host).replace("127.0.0.1:8000", host)
    runnable = runnable.replace(".venv/bin/verifyd", _verifyd())
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", runnable],
        env=env,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done.stdout.replace(host, "127.0.0.1:8000")


def assert_keeps_its_promises(script: str, printed: str) -> None:
    """Every ``# →`` line is printed, in order."""
    out = iter(printed.splitlines())
    for pattern in promises(script):
        for line in out:
            if pattern.match(line):
                break
        else:
            raise AssertionError(f"never printed {pattern.pattern!r}; printed:\n{printed}")


def test_the_walkthrough_shows_what_it_promises() -> None:
    script = walkthrough()
    assert len(promises(script)) >= 10
    assert "dev reset" in script and "subject" in script


def test_the_walkthrough_pasted_twice_works_both_times(
    served: tuple[str, dict[str, str]], tmp_path: Path
) -> None:
    base, env = served
    script = walkthrough()
    first = paste(script, base, env, tmp_path)
    assert_keeps_its_promises(script, first)
    second = paste(script, base, env, tmp_path)
    assert_keeps_its_promises(script, second)
    # the codes differ (a new verification each time), the answers do not
    assert first != second
