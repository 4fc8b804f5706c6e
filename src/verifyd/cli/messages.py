"""``verifyd messages list|redrive``: the outbox's dead letters, from the command line."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from verifyd.cli.common import actor, open_database
from verifyd.settings import Settings

#: The columns of ``messages list``; tab-separated, so ``cut -f`` and ``column -t`` work.
LIST_HEADER = ("ID", "STATUS", "KIND", "PROVIDER", "TO", "ATTEMPTS", "ERROR_CODE", "CREATED")


def _messages(settings: Settings) -> Any:
    from verifyd.flows.messages import Messages

    db = open_database(settings)
    chains = {"sms": settings.sms_provider, "email": settings.email_provider}
    return db, Messages(db, chains)


def list_messages(settings: Settings, args: argparse.Namespace) -> int:
    """Print a header row, then one row per message, newest first (destinations masked)."""
    db, messages = _messages(settings)
    try:
        status = None if args.status == "all" else args.status
        page, next_cursor = messages.page(status, limit=args.limit, before=args.cursor)
    finally:
        db.dispose()
    print("\t".join(LIST_HEADER))
    for m in page:
        print(
            f"{m['id']}\t{m['status']}\t{m['kind']}\t{m['provider']}\t{m['to']}\t"
            f"{m['attempts']}\t{m['error_code'] or '-'}\t{m['created_at'].isoformat()}"
        )
    if next_cursor is not None:
        print(f"verifyd: more: --cursor {next_cursor}", file=sys.stderr)
    elif not page:
        print(f"verifyd: no {args.status} messages", file=sys.stderr)
    return 0


def redrive(settings: Settings, args: argparse.Namespace) -> int:
    """Queue dead messages again; exit 1 when any asked for could not be."""
    if bool(args.ids) == args.all:
        print("verifyd: give message ids or --all (not both)", file=sys.stderr)
        return 2
    db, messages = _messages(settings)
    try:
        result = messages.redrive(None if args.all else args.ids, actor())
    finally:
        db.dispose()
    for message_id in result.redriven:
        print(f"{message_id}\tredriven")
    for skip in result.skipped:
        print(f"{skip['id']}\tskipped: {skip['reason']}")
    print(
        f"verifyd: {len(result.redriven)} redriven, {len(result.skipped)} skipped",
        file=sys.stderr,
    )
    return 1 if result.skipped else 0


def add_parsers(sub: Any) -> None:
    """Add ``messages list|redrive`` to the top-level subcommands."""
    from verifyd.flows.messages import MAX_PAGE, STATUSES

    p = sub.add_parser(
        "messages",
        help="list outbox messages (dead letters) and redrive them",
        description=(
            "Inspect the outbox and send dead messages again. A message is dead when every "
            "provider of its chain failed it; redrive queues it again on the chain's first "
            "provider. A message whose code expired, was used or was replaced by a resend "
            "is not sent again: the user asks for a new code instead."
        ),
    )
    msub = p.add_subparsers(title="commands", dest="messages_command", required=True)
    ml = msub.add_parser(
        "list",
        help="list messages, newest first",
        description=(
            "Print a header row, then one tab-separated row per message, newest first: "
            f"{', '.join(LIST_HEADER)}. Destinations are masked."
        ),
    )
    ml.add_argument(
        "--status",
        default="dead",
        choices=[*STATUSES, "all"],
        help="which messages (default dead)",
    )
    ml.add_argument("--limit", type=int, default=50, help=f"rows, 1-{MAX_PAGE} (default 50)")
    ml.add_argument("--cursor", help="continue after this id (printed when there is more)")
    ml.set_defaults(func=list_messages)
    mr = msub.add_parser(
        "redrive",
        help="queue dead messages again",
        description=(
            "Queue the given dead messages (or --all) again on their chain's first "
            "provider, from attempt 0. Prints ID<TAB>redriven or ID<TAB>skipped: REASON per "
            "message; exits 1 when any was skipped. Audited as cli:USER."
        ),
    )
    mr.add_argument("ids", nargs="*", metavar="ID", help="message ids (msg_...)")
    mr.add_argument("--all", action="store_true", help="every dead message")
    mr.set_defaults(func=redrive)
