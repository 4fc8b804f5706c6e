"""``verifyd report``: the stats of ``GET /v1/admin/stats`` as a table, JSON or CSV."""

from __future__ import annotations

import argparse
import sys
from datetime import datetime
from typing import Any

from verifyd.cli.common import open_database
from verifyd.cli.reporttable import table, write_csv
from verifyd.settings import Settings


def _when(raw: str) -> datetime:
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {raw!r}") from None
    if value.tzinfo is None:
        raise argparse.ArgumentTypeError(f"give a time zone: {raw}Z or {raw}+01:00")
    return value


def _pair(raw: str) -> tuple[str, str]:
    from verifyd.flows.comparison import parse_pair

    try:
        return parse_pair(raw)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _version(raw: str) -> int:
    if not raw.isdigit() or int(raw) < 1:
        raise argparse.ArgumentTypeError(f"not a policy version: {raw!r}")
    return int(raw)


def report(settings: Settings, args: argparse.Namespace) -> int:
    """Print the stats; exit 2 when ``--until`` is not after ``--since``."""
    from verifyd.flows.stats import Stats, StatsQuery
    from verifyd.pricing import Prices
    from verifyd.stats_schemas import StatsOut

    if args.since is not None and args.until is not None and args.until <= args.since:
        print("verifyd: --until must be after --since", file=sys.stderr)
        return 2
    prices = Prices.from_settings(settings)
    db = open_database(settings)
    try:
        query = StatsQuery(args.since, args.until, args.policy_version, args.compare)
        answer = Stats(db, prices).report(query)
    finally:
        db.dispose()
    if args.format == "json":
        print(StatsOut.model_validate(answer).model_dump_json())
    elif args.format == "csv":
        write_csv(answer, sys.stdout)
    else:
        sys.stdout.write(table(answer))
    return 0


def add_parsers(sub: Any) -> None:
    """Add ``report`` to the top-level subcommands."""
    p = sub.add_parser(
        "report",
        help="the comparison per policy version and arm (GET /v1/admin/stats)",
        description=(
            "Print what GET /v1/admin/stats returns: per policy version and arm the funnel "
            "(exposures, signups, messages, verified), time to verify, cost, suspect and "
            "confirmed-fake rates, and for a split (or --compare) the differences with "
            "their intervals, p-values and a verdict; then the Verify services of the "
            "Twilio-compatible API (/v2), per channel. Times select signups (and /v2 "
            "verifications) by the hour (UTC); csv carries the figures per version and arm, "
            "without the comparisons or the Verify services."
        ),
    )
    p.add_argument(
        "--since", type=_when, metavar="ISO", help="signups from this time (ISO 8601 with zone)"
    )
    p.add_argument(
        "--until", type=_when, metavar="ISO", help="signups before this time (ISO 8601 with zone)"
    )
    p.add_argument("--policy-version", type=_version, metavar="N", help="only this policy version")
    p.add_argument(
        "--compare",
        type=_pair,
        metavar="V1,V2",
        help="compare two versions: 3,5 or 3:phone,5:email",
    )
    p.add_argument(
        "--format",
        choices=["table", "json", "csv"],
        default="table",
        help="table (default, 80 columns), json (as the API) or csv (one row per version and arm)",
    )
    p.set_defaults(func=report)
