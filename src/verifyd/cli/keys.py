"""``verifyd admin-key create|list|revoke``: admin keys, and verify-scoped credentials."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from verifyd.cli.common import actor, open_database
from verifyd.settings import Settings


def create(settings: Settings, args: argparse.Namespace) -> int:
    """Create a key and print it on stdout (shown once); its metadata goes to stderr.

    An admin key prints alone (``vdk_…``). A verify key prints as two shell-sourceable
    lines, ``TWILIO_ACCOUNT_SID=AC…`` and ``TWILIO_AUTH_TOKEN=…``: the names the
    ``twilio`` SDK reads from the environment.
    """
    from verifyd.adminkeys import AdminKeys

    db = open_database(settings)
    try:
        key, info = AdminKeys(db).create(args.name, actor(), args.scope)
    finally:
        db.dispose()
    if info.scope == "verify":
        account_sid, _, token = key.partition(":")
        print(f"TWILIO_ACCOUNT_SID={account_sid}")
        print(f"TWILIO_AUTH_TOKEN={token}")
    else:
        print(key)
    print(
        f"verifyd: {info.scope} key {info.name!r} (id {info.id}) created; it is shown once",
        file=sys.stderr,
    )
    return 0


#: The columns of ``admin-key list``; tab-separated, so ``cut -f`` and ``column -t`` work.
LIST_HEADER = ("ID", "NAME", "CREATED", "CREATED_BY", "STATE", "SCOPE", "ACCOUNT_SID")


def list_keys(settings: Settings, _: argparse.Namespace) -> int:
    """Print a header row, then one tab-separated row per key, revoked ones included.

    With no keys, the header stands alone and stderr says there are none.
    """
    from verifyd.adminkeys import AdminKeys

    db = open_database(settings)
    try:
        keys = AdminKeys(db).list()
    finally:
        db.dispose()
    print("\t".join(LIST_HEADER))
    for k in keys:
        state = f"revoked {k.revoked_at.isoformat()}" if k.revoked_at else "active"
        print(
            f"{k.id}\t{k.name}\t{k.created_at.isoformat()}\t{k.created_by}\t{state}"
            f"\t{k.scope}\t{k.account_sid or '-'}"
        )
    if not keys:
        print("verifyd: no admin keys; create one with verifyd admin-key create", file=sys.stderr)
    return 0


def revoke(settings: Settings, args: argparse.Namespace) -> int:
    """Revoke a key by name or id."""
    from verifyd.adminkeys import AdminKeys

    db = open_database(settings)
    try:
        info = AdminKeys(db).revoke(args.name, actor())
    finally:
        db.dispose()
    print(f"verifyd: admin key {info.name!r} revoked", file=sys.stderr)
    return 0


def add_parsers(sub: Any) -> None:
    """Add ``admin-key create|list|revoke`` to the top-level subcommands."""
    keys = sub.add_parser(
        "admin-key",
        help="manage admin API keys and verify-scoped credentials",
        description=(
            "Manage API keys: admin keys, bearer keys of the admin API (/v1/admin and the "
            "dashboard), and verify-scoped credentials, an account SID and an auth token for "
            "the Twilio-compatible /v2 API. Only a hash of each secret is stored, and every "
            "creation and revocation is audited as cli:USER."
        ),
    )
    ksub = keys.add_subparsers(
        title="commands", dest="key_command", required=True, metavar="COMMAND"
    )
    kc = ksub.add_parser(
        "create",
        help="create a key; prints it alone on stdout",
        description=(
            "Create a key and print it on stdout, for a script to capture; it is shown this "
            "once only. An admin key prints alone (vdk_ID_SECRET); a verify key prints "
            "TWILIO_ACCOUNT_SID=AC… and TWILIO_AUTH_TOKEN=… on two lines (eval-able, the "
            "names the twilio SDK reads). Its name and id go to stderr."
        ),
    )
    kc.add_argument("--name", required=True, help="a unique name, recorded in the audit")
    kc.add_argument(
        "--scope",
        choices=("admin", "verify"),
        default="admin",
        help="admin (default): /v1/admin and the dashboard, printed as vdk_…; verify: the "
        "Twilio-compatible /v2 API only, printed as TWILIO_ACCOUNT_SID=… and "
        "TWILIO_AUTH_TOKEN=… lines",
    )
    kc.set_defaults(func=create)
    ksub.add_parser(
        "list",
        help="list keys, revoked ones included",
        description=(
            "List every key, revoked ones included, oldest first: a header row, then one "
            "tab-separated row per key (ID, NAME, CREATED, CREATED_BY, STATE, SCOPE, "
            "ACCOUNT_SID, the last a verify key's AC… or -). Secrets are never shown."
        ),
    ).set_defaults(func=list_keys)
    kr = ksub.add_parser(
        "revoke",
        help="revoke a key by name or id",
        description=(
            "Revoke an active key, named by its name or its id; requests that use it are "
            "refused with 401 from then on (under /v2, Twilio's 20003)."
        ),
    )
    kr.add_argument("name", help="the key's name or id")
    kr.set_defaults(func=revoke)
