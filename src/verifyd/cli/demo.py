"""``verifyd demo``: a synthetic population under a split experiment (development only).

The demo starts a private verifyd in a thread, on 127.0.0.1 and a free port, with the
user's settings changed only where the demo needs it (every message into the sandbox
inbox, ``X-Forwarded-For`` trusted from 127.0.0.1: see ``verifyd.demo.server``), and
drives its public and admin API over real HTTP. The user's own ``verifyd serve`` keeps
its own settings; it shares the database, which is why its ``/admin``, its ``/metrics``
and ``verifyd report`` show what the demo did.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from datetime import UTC, datetime
from typing import Any

from verifyd.cli.common import actor, open_database
from verifyd.settings import ConfigurationError, Settings

#: The default population: about 40 s on a 2-core machine, server start included.
DEFAULT_PEOPLE = 900
DEFAULT_SEED = 20261202
REFUSED = "demo is for development only (VERIFYD_ENV=production)"


def demo(settings: Settings, args: argparse.Namespace) -> int:
    """Run the demo; the temporary admin key is revoked however it ends.

    Returns:
        The exit status: 1 when the service failed, 130 when interrupted.

    Raises:
        ConfigurationError: in production, before anything is opened.
    """
    if settings.production:
        raise ConfigurationError(REFUSED)
    from verifyd.adminkeys import AdminKeys
    from verifyd.app import create_app
    from verifyd.demo import DemoFailure
    from verifyd.demo.population import population
    from verifyd.demo.progress import Progress
    from verifyd.demo.server import demo_settings, private_server
    from verifyd.demo.session import drive, report

    started = time.monotonic()
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    name = f"demo-{stamp}"
    people = population(args.people, args.seed, run=stamp)
    db = open_database(settings)
    keys = AdminKeys(db)
    try:
        key, info = keys.create(name, actor())
        try:
            app = create_app(demo_settings(settings))
            progress = Progress(len(people), sys.stderr, enabled=not args.quiet)
            with private_server(app) as server:
                outcome = asyncio.run(
                    drive(
                        server.base_url,
                        key,
                        people,
                        experiment=name,
                        seed=args.seed,
                        progress=progress,
                    )
                )
        except DemoFailure as exc:
            print(f"\nverifyd: demo failed: {exc}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            print("\nverifyd: demo interrupted", file=sys.stderr)
            return 130
        finally:
            keys.revoke(info.id, actor())
    finally:
        db.dispose()
    took = time.monotonic() - started
    print(report(outcome, people, seed=args.seed, took=took, base_url=settings.public_base_url))
    return 0


def _positive(raw: str) -> int:
    if not raw.isdigit() or int(raw) < 1:
        raise argparse.ArgumentTypeError(f"not a positive number: {raw!r}")
    return int(raw)


def add_parsers(sub: Any) -> None:
    """Add ``demo`` to the top-level subcommands."""
    p = sub.add_parser(
        "demo",
        help="development only: a synthetic population under a split phone/email experiment",
        description=(
            "Run a synthetic population through verifyd under a new split experiment "
            "(phone 50, email 50), in under a minute: genuine people who see the form, some "
            "of whom never submit it (more where a phone is asked), who verify after a "
            "realistic delay or drop off, and a bot farm using disposable domains, Gmail "
            "aliases, VoIP and consecutive numbers from a few addresses, which rarely "
            "verifies; then it labels most of the bots' accounts fake. Times are "
            "compressed: a second stands for a real user's minute. The demo starts a private "
            "verifyd on 127.0.0.1 with your settings, except that every message goes to its "
            "sandbox inbox (nothing reaches a phone, a mailbox or the console) and "
            "X-Forwarded-For from 127.0.0.1 is trusted, and drives its public API over "
            "HTTP with a temporary admin key, revoked at the end. Your verifyd serve keeps "
            "its own settings; it shares the database (VERIFYD_DATABASE_URL), which is why "
            "its /admin, its /metrics and verifyd report show the demo's results. The new "
            "policy version stays in force. Refused in production."
        ),
    )
    p.set_defaults(development_only=True)  # it refuses production itself, saying why
    p.add_argument(
        "--people",
        type=_positive,
        default=DEFAULT_PEOPLE,
        metavar="N",
        help=f"how many people, a third of them bots (default {DEFAULT_PEOPLE})",
    )
    p.add_argument(
        "--seed",
        type=int,
        default=DEFAULT_SEED,
        help="fixes who the people are and what they do (default: the same every run)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar on stderr")
    p.set_defaults(func=demo)
