"""The ``verifyd`` command: serve, migrate, policy show/set, admin-key create/list/revoke."""

from __future__ import annotations

import argparse
import getpass
import json
import logging
import sys
from collections.abc import Sequence
from typing import Any

from verifyd import migrate
from verifyd.db import Database
from verifyd.errors import VerifydError
from verifyd.registry import RegistryError
from verifyd.settings import ConfigurationError, Settings


def _actor() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"cli:{user}"


def _serve(settings: Settings, args: argparse.Namespace) -> int:
    import uvicorn

    db = Database(settings.database_url)
    try:
        if settings.production:
            if not migrate.is_current(db.writer):
                print(
                    "verifyd: the database is behind its migrations; run `verifyd migrate` first",
                    file=sys.stderr,
                )
                return 2
        else:
            migrate.upgrade(db)
    finally:
        db.dispose()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)  # /readyz asks it on every probe
    host = args.host or settings.host
    port = args.port or settings.port
    print(
        f"verifyd {settings.env} on http://{host}:{port} "
        f"(sandbox {'on' if settings.sandbox_on else 'off'}, database {db.describe()})",
        file=sys.stderr,
    )
    uvicorn.run(
        "verifyd.app:app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=args.workers,
        access_log=False,  # verifyd.access logs without query strings
        proxy_headers=False,
        log_level="info",
    )
    return 0


def _migrate(settings: Settings, _: argparse.Namespace) -> int:
    db = Database(settings.database_url)
    try:
        migrate.upgrade(db)
        print(f"verifyd: database at revision {migrate.current(db.writer)}", file=sys.stderr)
    finally:
        db.dispose()
    return 0


def _policies(settings: Settings) -> Any:
    from verifyd.policystore import PolicyStore

    db = Database(settings.database_url)
    if not settings.production:
        migrate.upgrade(db)
    return PolicyStore(db, settings), db


def _policy_show(settings: Settings, _: argparse.Namespace) -> int:
    store, db = _policies(settings)
    try:
        print(json.dumps(store.current().document(settings.guess_budget_per_day), indent=2))
    finally:
        db.dispose()
    return 0


def _weights(raw: str) -> dict[str, int]:
    out = {}
    for part in raw.split(","):
        arm, _, weight = part.partition("=")
        try:
            out[arm.strip()] = int(weight)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"bad weight {part!r}: use phone=50,email=50"
            ) from None
    return out


_FLAGS = {
    "sms.code_length": "--code-length",
    "sms.ttl_seconds": "--ttl",
    "sms.max_checks": "--max-checks",
    "sms.resend_cooldown_seconds": "--resend-cooldown",
    "email.ttl_seconds": "--email-ttl",
    "experiment": "--experiment",
}


def _policy_problems(body: dict[str, Any]) -> list[str]:
    """What is wrong with a ``policy set`` document: the bounds the admin API enforces."""
    from pydantic import ValidationError

    from verifyd.schemas import PolicyIn

    problems = []
    if body["mode"] != "split":
        problems += [
            f"--{flag} applies to split only" for flag in ("weights", "experiment") if body[flag]
        ]
    try:
        PolicyIn.model_validate(body)
    except ValidationError as exc:
        for err in exc.errors():
            field = ".".join(str(part) for part in err["loc"])
            flag = _FLAGS.get(field, field)
            problems.append(f"invalid {flag}: {err['msg']}")
    return problems


def _policy_set(settings: Settings, args: argparse.Namespace) -> int:
    from verifyd.policystore import from_request

    body = {
        "mode": args.mode,
        "weights": args.weights,
        "prefer": args.prefer,
        "experiment": args.experiment,
        "sms": {
            "code_length": args.code_length,
            "ttl_seconds": args.ttl,
            "max_checks": args.max_checks,
            "resend_cooldown_seconds": args.resend_cooldown,
        },
        "email": {"ttl_seconds": args.email_ttl},
    }
    problems = _policy_problems(body)
    if problems:
        for problem in problems:
            print(f"verifyd: {problem}", file=sys.stderr)
        return 1
    store, db = _policies(settings)
    try:
        policy, created = store.change(from_request(settings, body), _actor())
    finally:
        db.dispose()
    print(json.dumps(policy.document(settings.guess_budget_per_day), indent=2))
    print(
        f"verifyd: policy version {policy.version}"
        + (" created" if created else " unchanged (identical document)"),
        file=sys.stderr,
    )
    return 0


def _keys(settings: Settings) -> Any:
    from verifyd.adminkeys import AdminKeys

    db = Database(settings.database_url)
    if not settings.production:
        migrate.upgrade(db)
    return AdminKeys(db), db


def _key_create(settings: Settings, args: argparse.Namespace) -> int:
    keys, db = _keys(settings)
    try:
        key, info = keys.create(args.name, _actor())
    finally:
        db.dispose()
    print(key)
    print(
        f"verifyd: admin key {info.name!r} (id {info.id}) created; it is shown once",
        file=sys.stderr,
    )
    return 0


def _key_list(settings: Settings, _: argparse.Namespace) -> int:
    keys, db = _keys(settings)
    try:
        for k in keys.list():
            state = f"revoked {k.revoked_at.isoformat()}" if k.revoked_at else "active"
            print(f"{k.id}\t{k.name}\t{k.created_at.isoformat()}\t{k.created_by}\t{state}")
    finally:
        db.dispose()
    return 0


def _key_revoke(settings: Settings, args: argparse.Namespace) -> int:
    keys, db = _keys(settings)
    try:
        info = keys.revoke(args.name, _actor())
    finally:
        db.dispose()
    print(f"verifyd: admin key {info.name!r} revoked", file=sys.stderr)
    return 0


def parser() -> argparse.ArgumentParser:
    """The command-line grammar."""
    p = argparse.ArgumentParser(prog="verifyd", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the HTTP API (development: migrates first)")
    serve.add_argument("--host", help="default VERIFYD_HOST (127.0.0.1)")
    serve.add_argument("--port", type=int, help="default VERIFYD_PORT (8000)")
    serve.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    serve.set_defaults(func=_serve)

    mig = sub.add_parser("migrate", help="apply database migrations (safe to run concurrently)")
    mig.set_defaults(func=_migrate)

    policy = sub.add_parser("policy", help="show or change the verification policy")
    psub = policy.add_subparsers(dest="policy_command", required=True)
    psub.add_parser("show", help="print the active policy").set_defaults(func=_policy_show)
    pset = psub.add_parser("set", help="replace the policy (omitted knobs take the defaults)")
    pset.add_argument("mode", choices=["phone", "email", "either", "both", "split"])
    pset.add_argument("--weights", type=_weights, help="split weights, e.g. phone=50,email=50")
    pset.add_argument("--prefer", choices=["phone", "email"])
    pset.add_argument("--experiment", help="split experiment name (a new name draws a new salt)")
    pset.add_argument("--code-length", type=int)
    pset.add_argument("--ttl", type=int, help="SMS code lifetime, seconds")
    pset.add_argument("--max-checks", type=int)
    pset.add_argument("--resend-cooldown", type=int, help="seconds")
    pset.add_argument("--email-ttl", type=int, help="email link lifetime, seconds")
    pset.set_defaults(func=_policy_set)

    keys = sub.add_parser("admin-key", help="manage admin API keys")
    ksub = keys.add_subparsers(dest="key_command", required=True)
    kc = ksub.add_parser("create", help="create a key; prints it alone on stdout")
    kc.add_argument("--name", required=True)
    kc.set_defaults(func=_key_create)
    ksub.add_parser("list", help="list keys").set_defaults(func=_key_list)
    kr = ksub.add_parser("revoke", help="revoke a key by name or id")
    kr.add_argument("name")
    kr.set_defaults(func=_key_revoke)
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
    """Run the CLI; returns the exit status."""
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


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
