"""Suspect signals of a signup, and the signups refused for one.

Every signup is assessed; each signal flags the account (``accounts.flags``) unless
``VERIFYD_BLOCKED_SIGNALS`` names it, in which case the signup is refused and the
refusal recorded (``signup_blocks``), where the stats and a later ``blocked_before``
signal find it. The signals:

- ``disposable_email``: the domain is on the ``disposable-email-domains`` list or the
  operator's file (``VERIFYD_DISPOSABLE_DOMAINS_FILE``);
- ``email_alias``: another account already uses the same mailbox under another
  spelling (plus tags; dots where the provider ignores them, see ``aliases.py``);
- ``voip``, ``non_mobile``: the number's type (phonenumbers), when not blocked outright;
- ``velocity_ip``, ``velocity_prefix``: more than ``VERIFYD_VELOCITY_IP_SIGNUPS`` signups
  from one address, or ``VERIFYD_VELOCITY_PREFIX_SIGNUPS`` for numbers sharing all but
  their last ``VERIFYD_VELOCITY_PREFIX_TAIL_DIGITS`` digits, within
  ``VERIFYD_VELOCITY_WINDOW_SECONDS`` (sandbox destinations count apart, with the
  sandbox multiplier, like the rate limits);
- ``blocked_before``: a signup from this address, or for this destination, was refused
  in the last 24 hours.

``identity_taken`` (the identity belongs to an active account) is a flag too, but never
blocks: refusing it would tell who has an account.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from datetime import datetime, timedelta

from sqlalchemy import Connection, bindparam, select

from verifyd import aliases, ratelimit, rollup
from verifyd.codes import Secrets
from verifyd.destinations import Destination
from verifyd.errors import InvalidRequest, RateLimited, VerifydError
from verifyd.models import Account, SignupBlock, table_of
from verifyd.prepared import Prepared
from verifyd.settings import Settings

#: How long a refused signup makes later ones from the same place suspect.
BLOCK_MEMORY = timedelta(hours=24)

_a = table_of(Account).c
_b = table_of(SignupBlock)
_ALIAS_OF = Prepared(
    select(_a.id).where(_a.email_key == bindparam("key"), _a.email != bindparam("email")).limit(1),
    (_a.id,),
)
_BLOCKED_IP = Prepared(
    select(_b.c.id).where(_b.c.ip == bindparam("ip"), _b.c.at > bindparam("since")).limit(1),
    (_b.c.id,),
)
_BLOCKED_DEST = Prepared(
    select(_b.c.id)
    .where(_b.c.destination_hash == bindparam("h"), _b.c.at > bindparam("since"))
    .limit(1),
    (_b.c.id,),
)
_ANY_BLOCK = Prepared(select(_b.c.id).where(_b.c.at > bindparam("since")).limit(1), (_b.c.id,))
_INSERT_BLOCK = Prepared(_b.insert())
#: Seconds a process trusts its last look at whether any refusal is recent.
BLOCKS_CHECK_SECONDS = 1.0


class Signals:
    """Assesses signups and records refusals.

    Args:
        settings: Which signals block, the velocity thresholds.
        secrets: Keyed hashing (refused destinations are kept as hashes).
    """

    def __init__(self, settings: Settings, secrets: Secrets) -> None:
        self._secrets = secrets
        self._blocking = set(settings.blocked_signals)
        self._recent_blocks = True
        self._blocks_checked_until = 0.0
        self._window = settings.velocity_window_seconds
        self._tail = settings.velocity_prefix_tail_digits
        mult = settings.sandbox_limit_multiplier
        self._velocity = {
            (bucket, sandbox): ratelimit.Limit(
                f"{'sandbox_' if sandbox else ''}{bucket}",
                threshold * (mult if sandbox else 1),
                self._window,
            )
            for bucket, threshold in (
                ("velocity_ip", settings.velocity_ip_signups),
                ("velocity_prefix", settings.velocity_prefix_signups),
            )
            for sandbox in (False, True)
        }

    def velocity(
        self,
        conn: Connection,
        dests: dict[str, Destination],
        ip: str,
        sandbox: bool,
        now: datetime,
    ) -> set[str]:
        """Count this signup against the velocity windows; the ``velocity_*`` signals it raises.

        Apart from :meth:`assess` so the flow can count these shared rows (one per
        address, one per number prefix) outside its own transaction
        (``Limits.apart``).
        """
        found = set()
        if ratelimit.count(conn, self._velocity["velocity_ip", sandbox], ip, now) > (
            self._velocity["velocity_ip", sandbox].limit
        ):
            found.add("velocity_ip")
        phone = dests.get("phone")
        if phone is not None and len(phone.value) > self._tail + 2:
            limit = self._velocity["velocity_prefix", phone.sandbox]
            if ratelimit.count(conn, limit, phone.value[: -self._tail], now) > limit.limit:
                found.add("velocity_prefix")
        return found

    def assess(
        self,
        conn: Connection,
        dests: dict[str, Destination],
        ip: str,
        velocity: set[str],
        now: datetime,
    ) -> list[str]:
        """Every signal of this signup, sorted: the destinations' own, ``velocity``'s
        (from :meth:`velocity`) and the database's."""
        found = {flag for d in dests.values() for flag in d.flags} | velocity
        email = dests.get("email")
        if email is not None:
            key = aliases.alias_key(email.value)
            if _ALIAS_OF.first(conn, {"key": key, "email": email.value}) is not None:
                found.add("email_alias")
        if self._refused_before(conn, dests.values(), ip, now):
            found.add("blocked_before")
        return sorted(found)

    def blocking(self, signals: Iterable[str]) -> str | None:
        """The first signal that refuses the signup, if any."""
        return next((s for s in signals if s in self._blocking), None)

    def refuse(
        self,
        conn: Connection,
        version: int,
        arm: str,
        reason: str,
        ip: str,
        dests: Iterable[Destination],
        now: datetime,
    ) -> None:
        """Record a refused signup (in its own transaction: the caller then raises)."""
        hashes: list[str | None] = [self._hash(d) for d in dests] or [None]
        for h in hashes:
            _INSERT_BLOCK.execute(
                conn,
                {
                    "at": now,
                    "policy_version": version,
                    "arm": arm,
                    "reason": reason,
                    "ip": ip,
                    "destination_hash": h,
                },
            )
        rollup.add(conn, version, arm, f"blocked.{reason}", now)
        self._recent_blocks = True

    def error(self, signal: str) -> VerifydError:
        """What a signup refused for ``signal`` answers."""
        if signal == "disposable_email":
            return InvalidRequest.field(
                "disposable_email", "email", "addresses on this domain are not accepted"
            )
        if signal == "email_alias":
            return InvalidRequest.field(
                "email_alias", "email", "use the address itself, without a tag or dots"
            )
        if signal in ("voip", "non_mobile"):
            return InvalidRequest.field(
                "number_type_blocked", "phone", "this type of number cannot receive codes"
            )
        if signal in ("velocity_ip", "velocity_prefix"):
            return RateLimited(
                "rate_limited",
                "too many signups like this one; try again later",
                retry_after=self._window,
            )
        return InvalidRequest("signup_blocked", "signups from here are refused for now")

    def _refused_before(
        self, conn: Connection, dests: Iterable[Destination], ip: str, now: datetime
    ) -> bool:
        since = now - BLOCK_MEMORY
        if not self._any_recent(conn, since):
            return False
        if _BLOCKED_IP.first(conn, {"ip": ip, "since": since}) is not None:
            return True
        return any(
            _BLOCKED_DEST.first(conn, {"h": self._hash(d), "since": since}) is not None
            for d in dests
        )

    def _any_recent(self, conn: Connection, since: datetime) -> bool:
        """Whether any refusal is recent, looked up at most once a second.

        Most of the time there is none, and the two probes per signup it saves are two
        statements in the database writer's thread. A refusal by another process can go
        unnoticed for a second; one by this process is seen at once.
        """
        clock = time.monotonic()
        if clock >= self._blocks_checked_until:
            self._recent_blocks = _ANY_BLOCK.first(conn, {"since": since}) is not None
            self._blocks_checked_until = clock + BLOCKS_CHECK_SECONDS
        return self._recent_blocks

    def _hash(self, dest: Destination) -> str:
        return self._secrets.hash_subject(f"{dest.kind}:{dest.value}")
