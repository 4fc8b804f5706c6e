"""``verifyd``: serve, worker, migrate, policy, admin-key, messages, report, accounts, demo, dev."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from verifyd import __version__, floors
from verifyd.cli import accounts, demo, dev, keys, messages, policy, report, serve, worker
from verifyd.errors import VerifydError
from verifyd.registry import RegistryError
from verifyd.settings import ConfigurationError, Settings

__all__ = ["main", "parser"]

#: What ``verifyd --help`` says before the commands (plain text: argparse shows it as is).
DESCRIPTION = (
    "verifyd proves that a new account controls the phone number or email address it "
    "signed up with, by an SMS code or an email link, under a verification policy you "
    "can switch or split between the two and compare. Settings come from VERIFYD_* "
    "environment variables (VERIFYD_ENV, VERIFYD_DATABASE_URL, VERIFYD_SECRET_KEY, ...); "
    "by default the database is the SQLite file var/verifyd.db. "
    "Run verifyd COMMAND --help for what a command does and its options."
)


def parser() -> argparse.ArgumentParser:
    """The command-line grammar."""
    p = argparse.ArgumentParser(prog="verifyd", description=DESCRIPTION)
    p.add_argument("--version", action="version", version=f"verifyd {__version__}")
    sub = p.add_subparsers(title="commands", dest="command", required=True, metavar="COMMAND")
    for family in (serve, worker, policy, keys, messages, report, accounts, demo, dev):
        family.add_parsers(sub)
    return p


def _settings() -> Settings | None:
    """Settings from the environment, or ``None`` after naming each bad variable."""
    from pydantic import ValidationError

    try:
        return Settings()
    except ValidationError as exc:
        for err in exc.errors():
            name = f"VERIFYD_{str(err['loc'][0]).upper()}" if err["loc"] else "settings"
            print(f"verifyd: invalid {name}: {err['msg']}", file=sys.stderr)
        return None


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI.

    Args:
        argv: The arguments after the program name; by default ``sys.argv[1:]``.

    Returns:
        The exit status: 0 on success, 1 for a refused request, 2 for a bad configuration.
    """
    args = parser().parse_args(argv)
    try:
        settings = _settings()
        if settings is None:
            return 2
        if not getattr(args, "development_only", False):
            floors.check(settings)  # a development-only command refuses production itself
        result: int = args.func(settings, args)
        return result
    except (ConfigurationError, RegistryError) as exc:
        print(f"verifyd: {exc}", file=sys.stderr)
        return 2
    except VerifydError as exc:
        print(f"verifyd: {exc.code}: {exc.detail}", file=sys.stderr)
        return 1
