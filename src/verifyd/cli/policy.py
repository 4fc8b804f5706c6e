"""``verifyd policy show`` and ``verifyd policy set``: read and replace the active policy."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from verifyd.cli.common import actor, open_database
from verifyd.settings import Settings

#: Policy document fields and the flag that sets each, to name the flag in an error.
_FLAGS = {
    "sms.code_length": "--code-length",
    "sms.ttl_seconds": "--ttl",
    "sms.max_checks": "--max-checks",
    "sms.resend_cooldown_seconds": "--resend-cooldown",
    "email.ttl_seconds": "--email-ttl",
    "experiment": "--experiment",
}


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


def _problems(body: dict[str, Any]) -> list[str]:
    """What is wrong with a ``policy set`` document: the bounds the admin API enforces."""
    from pydantic import ValidationError

    from verifyd.policy_schemas import PolicyIn

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


def show(settings: Settings, _: argparse.Namespace) -> int:
    """Print the active policy document as JSON."""
    from verifyd.policystore import PolicyStore
    from verifyd.slidinglimit import Bounds

    db = open_database(settings)
    try:
        store = PolicyStore(db, settings)
        print(json.dumps(store.current().document(Bounds.of(settings)), indent=2))
    finally:
        db.dispose()
    return 0


def set_policy(settings: Settings, args: argparse.Namespace) -> int:
    """Replace the policy; an identical document creates no new version.

    Returns:
        The exit status: 1 when the document is refused (nothing changes).
    """
    from verifyd.policystore import PolicyStore, from_request
    from verifyd.slidinglimit import Bounds

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
    problems = _problems(body)
    if problems:
        for problem in problems:
            print(f"verifyd: {problem}", file=sys.stderr)
        return 1
    db = open_database(settings)
    try:
        store = PolicyStore(db, settings)
        policy, created = store.change(from_request(settings, body), actor())
    finally:
        db.dispose()
    print(json.dumps(policy.document(Bounds.of(settings)), indent=2))
    print(
        f"verifyd: policy version {policy.version}"
        + (" created" if created else " unchanged (identical document)"),
        file=sys.stderr,
    )
    return 0


def add_parsers(sub: Any) -> None:
    """Add ``policy show|set`` to the top-level subcommands."""
    policy = sub.add_parser(
        "policy",
        help="show or change the verification policy",
        description=(
            "Show or replace the verification policy: which identity a signup must prove "
            "(phone, email, either, both, or a split experiment between phone and email). "
            "Every change is a new version, audited as cli:USER, and running servers pick "
            "it up within VERIFYD_POLICY_CACHE_SECONDS."
        ),
    )
    psub = policy.add_subparsers(
        title="commands", dest="policy_command", required=True, metavar="COMMAND"
    )
    psub.add_parser(
        "show",
        help="print the active policy",
        description=(
            "Print the active policy document as JSON on stdout, as the admin API's "
            "GET /v1/admin/policy returns it."
        ),
    ).set_defaults(func=show)
    pset = psub.add_parser(
        "set",
        help="replace the policy (omitted knobs take the defaults)",
        description=(
            "Replace the whole policy with MODE and the knobs given; every knob left out "
            "takes its default from the VERIFYD_* settings. Prints the new document as JSON "
            "on stdout and its version on stderr; an identical document creates no version."
        ),
    )
    pset.add_argument(
        "mode",
        choices=["phone", "email", "either", "both", "split"],
        metavar="MODE",
        help="what a signup must verify: phone, email, either, both, or split (an A/B test)",
    )
    pset.add_argument("--weights", type=_weights, help="split weights, e.g. phone=50,email=50")
    pset.add_argument(
        "--prefer",
        choices=["phone", "email"],
        help="under either, the channel for a signup that gives both (default email)",
    )
    pset.add_argument("--experiment", help="split experiment name (a new name draws a new salt)")
    pset.add_argument("--code-length", type=int, help="digits in an SMS code, 4 to 10")
    pset.add_argument("--ttl", type=int, help="SMS code lifetime, seconds")
    pset.add_argument("--max-checks", type=int, help="checks allowed per code before it locks")
    pset.add_argument("--resend-cooldown", type=int, help="seconds between two SMS resends")
    pset.add_argument("--email-ttl", type=int, help="email link lifetime, seconds")
    pset.set_defaults(func=set_policy)
