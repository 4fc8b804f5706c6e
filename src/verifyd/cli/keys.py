"""``verifyd admin-key create|list|revoke``: the admin API's bearer keys."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from verifyd.cli.common import actor, open_database
from verifyd.settings import Settings


def create(settings: Settings, args: argparse.Namespace) -> int:
    """Create a key; print it alone on stdout (shown once) and its metadata on stderr."""
    from verifyd.adminkeys import AdminKeys

    db = open_database(settings)
    try:
        key, info = AdminKeys(db).create(args.name, actor())
    finally:
        db.dispose()
    print(key)
    print(
        f"verifyd: admin key {info.name!r} (id {info.id}) created; it is shown once",
        file=sys.stderr,
    )
    return 0


def list_keys(settings: Settings, _: argparse.Namespace) -> int:
    """Print one tab-separated row per key, revoked ones included."""
    from verifyd.adminkeys import AdminKeys

    db = open_database(settings)
    try:
        for k in AdminKeys(db).list():
            state = f"revoked {k.revoked_at.isoformat()}" if k.revoked_at else "active"
            print(f"{k.id}\t{k.name}\t{k.created_at.isoformat()}\t{k.created_by}\t{state}")
    finally:
        db.dispose()
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
    keys = sub.add_parser("admin-key", help="manage admin API keys")
    ksub = keys.add_subparsers(dest="key_command", required=True)
    kc = ksub.add_parser("create", help="create a key; prints it alone on stdout")
    kc.add_argument("--name", required=True)
    kc.set_defaults(func=create)
    ksub.add_parser("list", help="list keys").set_defaults(func=list_keys)
    kr = ksub.add_parser("revoke", help="revoke a key by name or id")
    kr.add_argument("name")
    kr.set_defaults(func=revoke)
