"""``verifyd worker``: deliver the outbox in a process of its own."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
import time
from typing import TYPE_CHECKING, Any

from verifyd import floors, logs, migrate, outages
from verifyd.db import Database
from verifyd.settings import Settings

if TYPE_CHECKING:
    from verifyd.runtime import Runtime

log = logging.getLogger("verifyd.worker")


def worker(settings: Settings, args: argparse.Namespace) -> int:
    """Run the dispatcher until SIGTERM or SIGINT (or, with ``--once``, until nothing is due).

    Settings and plugins are checked first, as ``serve`` does; development applies
    pending migrations, production refuses to start while they are behind.

    Returns:
        The exit status: 2 when the worker cannot start.
    """
    from verifyd.runtime import build_runtime

    db = Database.from_settings(settings)
    try:
        failures = 0
        while True:
            try:
                if settings.production:
                    if not migrate.is_current(db.writer):
                        print(
                            "verifyd: the database is behind its migrations; "
                            "run `verifyd migrate` first",
                            file=sys.stderr,
                        )
                        return 2
                else:
                    migrate.upgrade(db)
                break
            except Exception as exc:
                # A worker (re)started during an outage waits for the database, as a
                # running one does; a one-off run (--once) has nobody to wait for.
                if not outages.is_unavailable(exc) or args.once:
                    raise
                failures += 1
                print(
                    f"verifyd: waiting for the database ({outages.describe(exc)})",
                    file=sys.stderr,
                    flush=True,
                )
                time.sleep(outages.backoff(0.5, failures))
    finally:
        db.dispose()
    rt = build_runtime(settings)
    logs.configure(settings)
    chains = (
        f"sms via {','.join(settings.sms_provider)}, email via {','.join(settings.email_provider)}"
    )
    logs.announce(
        settings, f"verifyd worker {settings.env} ({chains}; database {rt.db.describe()})"
    )
    floors.announce(settings)
    try:
        asyncio.run(_run(rt, once=args.once))
    finally:
        rt.db.dispose()
    return 0


async def _run(rt: Runtime, *, once: bool) -> None:
    try:
        if once:
            while await rt.dispatcher.run_once():
                pass
            return
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        task = asyncio.create_task(rt.dispatcher.run(), name="verifyd-outbox")
        await stop.wait()
        grace = rt.settings.shutdown_grace_seconds
        log.info("stopping: finishing the deliveries in flight (at most %g s)", grace)
        rt.dispatcher.stop()
        # Unsent claims are handed back at once; the calls in flight get the grace.
        # Past it, give up: those keep their lease, and once it lapses another worker
        # sends them again (the provider may have taken them: at least once).
        done, _ = await asyncio.wait([task], timeout=grace)
        if not done:
            log.warning("grace of %g s spent: abandoning the deliveries still in flight", grace)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    finally:
        for provider in rt.providers.values():
            await provider.aclose()


def add_parsers(sub: Any) -> None:
    """Add ``worker`` to the top-level subcommands."""
    p = sub.add_parser(
        "worker",
        help="deliver queued messages in a process of its own",
        description=(
            "Run the outbox dispatcher without the HTTP API: it claims due messages, sends "
            "them through the configured providers, retries, fails over and dead-letters. "
            "Run any number of workers against one PostgreSQL database; each message is "
            "claimed under a lease, so none is delivered twice by two workers. Set "
            "VERIFYD_DISPATCHER=off on the API servers when workers deliver. Stops on "
            "SIGTERM or SIGINT: claimed messages not yet sent are handed back at once, the "
            "deliveries in flight get VERIFYD_SHUTDOWN_GRACE_SECONDS to finish."
        ),
    )
    p.add_argument(
        "--once",
        action="store_true",
        help="deliver what is due now, then exit (for cron jobs and scripts)",
    )
    p.set_defaults(func=worker)
