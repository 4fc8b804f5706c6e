"""``verifyd --help`` and ``--version``: every command explains itself in plain text."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from test_cli import cli_env, ok, run_all, run_main
from verifyd import __version__
from verifyd.cli import parser

#: Every command a user can type, as the README lists them.
COMMANDS = [
    [],
    ["serve"],
    ["worker"],
    ["migrate"],
    ["policy"],
    ["policy", "show"],
    ["policy", "set"],
    ["admin-key"],
    ["admin-key", "create"],
    ["admin-key", "list"],
    ["admin-key", "revoke"],
    ["messages"],
    ["messages", "list"],
    ["messages", "redrive"],
    ["report"],
    ["accounts"],
    ["accounts", "label"],
    ["demo"],
    ["dev"],
    ["dev", "reset"],
]


Parsers = dict[tuple[str, ...], argparse.ArgumentParser]


def _walk(p: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> Parsers:
    """Each (sub)command's parser by its words, found through argparse's own tree."""
    found: Parsers = {path: p}
    for action in p._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                found |= _walk(child, (*path, name))
    return found


def _description(help_text: str) -> str:
    """The paragraph between the usage block and the first section of a ``--help``."""
    blocks = help_text.split("\n\n")
    assert len(blocks) >= 3, help_text
    paragraph = blocks[1]
    assert not paragraph.rstrip().endswith(":"), f"no description before a section:\n{help_text}"
    return " ".join(paragraph.split())


def test_the_command_list_is_complete() -> None:
    assert sorted(_walk(parser())) == sorted(tuple(c) for c in COMMANDS)


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "verifyd")
def test_help_is_plain_text_with_a_description(
    command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_main(capsys, *command, "--help")
    assert code == 0 and err == "", (command, err)
    assert out.startswith(f"usage: {' '.join(['verifyd', *command])}"), out
    assert "`" not in out and "::" not in out, f"reStructuredText markup in --help:\n{out}"
    description = _description(out)
    assert len(description.split()) >= 12, f"a one-paragraph description, not {description!r}"
    assert description.endswith("."), description
    assert re.search(r"\bverifyd\b", out)

    own = _walk(parser())[tuple(command)]
    for action in own._actions:
        # A command group's own line is bare; each of its commands has its help line.
        bare = argparse._HelpAction | argparse._VersionAction | argparse._SubParsersAction
        if not isinstance(action, bare):
            assert action.help, f"{' '.join(command)}: {action.option_strings or action.dest}"


def test_version(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (script,) = run_all([["--version"]], cli_env(None), tmp_path)
    assert ok(script).stdout == f"verifyd {__version__}\n"
    assert run_main(capsys, "--version") == (0, f"verifyd {__version__}\n", "")
    assert not list(tmp_path.iterdir()), "--version must not create files"
