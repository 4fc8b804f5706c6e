"""``verifyd accounts label``: label accounts fake or genuine from a CSV file."""

from __future__ import annotations

import argparse
import csv
import io
import sys
from typing import TYPE_CHECKING, Any, cast

from verifyd.cli.common import actor, open_database
from verifyd.settings import Settings

if TYPE_CHECKING:
    from verifyd.flows.labels import Label, LabelRequest

#: The bounds the admin API puts on a label's fields (``stats_schemas.BulkLabel``).
MAX_ID, MAX_REASON = 64, 500
LABELS = ("fake", "genuine")


def parse(
    text: str, default_label: str | None, default_reason: str | None
) -> tuple[list[LabelRequest], list[str]]:
    """The labels a file asks for, and the problems of each bad line.

    Args:
        text: The file.
        default_label: The label of a row that gives none.
        default_reason: The reason of a row that gives none.

    Returns:
        One request per account (a later line for the same account wins), and one
        problem per bad line, naming it.
    """
    from verifyd.flows.labels import LabelRequest

    wanted: dict[str, LabelRequest] = {}
    problems: list[str] = []
    reader = csv.reader(io.StringIO(text, newline=""))
    for row in reader:
        cells = [cell.strip() for cell in row]
        if cells:
            cells[0] = cells[0].lstrip("\ufeff")  # a spreadsheet's byte-order mark
        line = f"line {reader.line_num}"
        if not any(cells) or cells[0].startswith("#") or cells[0].lower() == "account_id":
            continue
        if len(cells) > 3:
            problems.append(f"{line}: more than 3 columns (quote a reason that has a comma)")
            continue
        account_id, label, reason = [*cells, "", ""][:3]
        label = label or default_label or ""
        if not account_id:
            problems.append(f"{line}: no account id")
        elif len(account_id) > MAX_ID:
            problems.append(f"{line}: account id longer than {MAX_ID} characters")
        elif not label:
            problems.append(f"{line}: no label (give one in the file or --label)")
        elif label not in LABELS:
            problems.append(f"{line}: invalid label {label[:20]!r} (fake or genuine)")
        elif len(reason) > MAX_REASON:
            problems.append(f"{line}: reason longer than {MAX_REASON} characters")
        else:
            wanted.pop(account_id, None)
            wanted[account_id] = LabelRequest(
                account_id, cast("Label", label), reason or default_reason
            )
    return list(wanted.values()), problems


def label(settings: Settings, args: argparse.Namespace) -> int:
    """Label the file's accounts, all or none when a line is bad.

    Returns:
        The exit status: 1 when a line is bad (nothing labelled) or an id has no account
        (the rest labelled), 2 when the file cannot be read.
    """
    from verifyd.flows.labels import Labels

    if args.reason is not None and len(args.reason) > MAX_REASON:
        print(f"verifyd: --reason is longer than {MAX_REASON} characters", file=sys.stderr)
        return 2
    try:
        if args.file == "-":
            text = sys.stdin.read()
        else:
            with open(args.file, encoding="utf-8-sig", newline="") as f:
                text = f.read()
    except (OSError, UnicodeDecodeError) as exc:
        print(f"verifyd: cannot read {args.file}: {exc}", file=sys.stderr)
        return 2
    wanted, problems = parse(text, args.label, args.reason)
    if not problems and not wanted:
        problems.append("no account ids in the file")
    if problems:
        for problem in problems:
            print(f"verifyd: {args.file}: {problem}", file=sys.stderr)
        print("verifyd: nothing labelled", file=sys.stderr)
        return 1
    db = open_database(settings)
    try:
        result = Labels(db).label_many(wanted, actor())
    finally:
        db.dispose()
    by_label = result["by_label"]
    print(
        f"labelled {result['labelled']} accounts "
        f"(fake: {by_label['fake']}, genuine: {by_label['genuine']})"
    )
    for account_id in result["not_found"]:
        print(f"verifyd: not found: {account_id}", file=sys.stderr)
    return 1 if result["not_found"] else 0


def add_parsers(sub: Any) -> None:
    """Add ``accounts label`` to the top-level subcommands."""
    p = sub.add_parser(
        "accounts",
        help="label accounts fake or genuine (ground truth for the comparison)",
        description=(
            "Record what the operator learnt about accounts after signup: which were fake "
            "and which genuine. Labels feed the confirmed-fake rates of verifyd report."
        ),
    )
    asub = p.add_subparsers(
        title="commands", dest="accounts_command", required=True, metavar="COMMAND"
    )
    lb = asub.add_parser(
        "label",
        help="label the accounts of a CSV file",
        description=(
            "Label the accounts of a CSV file with the columns account_id[,label[,reason]]: "
            "a header row, blank lines and # comments are skipped, a later line for the same "
            "account wins. The whole file is checked first: a bad line labels nothing. Ids "
            "no account has are listed on stderr (exit 1), the rest labelled. Audited as "
            "cli:USER."
        ),
    )
    lb.add_argument("--file", required=True, metavar="PATH", help="the CSV file, - for stdin")
    lb.add_argument("--label", choices=LABELS, help="the label of rows that give none")
    lb.add_argument("--reason", metavar="TEXT", help="the reason of rows that give none")
    lb.set_defaults(func=label)
