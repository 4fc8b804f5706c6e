"""The ``verifyd`` command: serve, migrate, policy show/set, admin-key create/list/revoke."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from verifyd.cli import keys, policy, serve
from verifyd.errors import VerifydError
from verifyd.registry import RegistryError
from verifyd.settings import ConfigurationError, Settings

__all__ = ["main", "parser"]


def parser() -> argparse.ArgumentParser:
    """The command-line grammar."""
    p = argparse.ArgumentParser(prog="verifyd", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    for family in (serve, policy, keys):
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
        settings.check_production()
        result: int = args.func(settings, args)
        return result
    except (ConfigurationError, RegistryError) as exc:
        print(f"verifyd: {exc}", file=sys.stderr)
        return 2
    except VerifydError as exc:
        print(f"verifyd: {exc.code}: {exc.detail}", file=sys.stderr)
        return 1
