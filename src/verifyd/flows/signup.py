"""``POST /v1/accounts``: a pending account, and the verifications the policy asks for now."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from verifyd import aliases, redirects, rollup
from verifyd import statements as sql
from verifyd.channels.base import Channel
from verifyd.codes import Secrets, new_id
from verifyd.db import Database
from verifyd.destinations import Destination, Destinations, mask
from verifyd.errors import FieldError, InvalidRequest
from verifyd.flows.delivery import Delivery
from verifyd.flows.exposure import Exposures
from verifyd.flows.issuing import Issue, issue
from verifyd.flows.limits import Limits
from verifyd.flows.plan import Planner
from verifyd.flows.pumping import Held, Pumping
from verifyd.flows.signals import Signals
from verifyd.models import utcnow
from verifyd.policystore import PolicyStore
from verifyd.settings import Settings


@dataclass(frozen=True)
class SignupRequest:
    """What the frontend sent to ``POST /v1/accounts``, plus the caller's address."""

    phone: str | None = None
    email: str | None = None
    channel: str | None = None
    subject: str | None = None
    locale: str | None = None
    redirect_url: str | None = None
    ip: str = "unknown"


#: Destination errors that refuse a signup for what it is (recorded for the stats).
BLOCK_CODES = frozenset({"number_type_blocked", "country_not_allowed"})


class Signup:
    """Creates accounts under the active policy, in one write transaction each.

    An identity an active account already owns gets a *shadow* verification: the same
    answer and statements as a real one, nothing sent, and it can never activate.

    Args:
        settings: The running settings (redirect allow-list).
        db: The database.
        secrets: Keyed hashing (subjects, the secret nobody knows of a shadow).
        channels: Channel instances by name.
        policies: The policy store.
        limits: The rate limits.
        delivery: The hand-off to providers and the outbox.
        signals: The suspect signals, and which of them refuse a signup.
        exposures: Where a signup's subject is recorded as exposed.
        pumping: The SMS send budgets and breakers.
        wake: Called after a commit that queued messages (wakes the dispatcher).
    """

    def __init__(
        self,
        settings: Settings,
        db: Database,
        secrets: Secrets,
        channels: dict[str, Channel],
        policies: PolicyStore,
        limits: Limits,
        delivery: Delivery,
        signals: Signals,
        exposures: Exposures,
        pumping: Pumping,
        wake: Callable[[], None] = lambda: None,
    ) -> None:
        self._settings = settings
        self._db = db
        self._secrets = secrets
        self._policies = policies
        self._limits = limits
        self._delivery = delivery
        self._signals = signals
        self._exposures = exposures
        self._pumping = pumping
        self._wake = wake
        self._destinations = Destinations(settings)
        self._by_identity = {
            "phone": channels[settings.phone_channel],
            "email": channels[settings.email_channel],
        }
        self._planner = Planner(self._by_identity)

    async def create(self, req: SignupRequest) -> dict[str, Any]:
        """Create a pending account and its verifications under the active policy.

        Everything that needs no database (parsing, the plan, the policy) happens
        before the transaction; the transaction itself is handed to the database's
        writer and the answer comes back once it is durable.

        Returns:
            ``{"account": …, "verifications": [...]}`` as rendered for the API.

        Raises:
            VerifydError: invalid input, a policy mismatch, or a rate limit.
        """
        self._planner.named(req.channel)  # checked whatever the policy: a typo never passes
        policy = self._policies.current()
        arm = policy.arm_for(req.subject)
        given = {"phone": req.phone is not None, "email": req.email is not None}
        plan = self._planner.plan(policy, arm, given, req.channel)
        try:
            dests = self._parse(req)
        except InvalidRequest as exc:
            if exc.code in BLOCK_CODES:
                reason, blocked_at = exc.code, utcnow()
                await self._db.transact(
                    lambda conn: self._signals.refuse(
                        conn, policy.version, arm, reason, req.ip, (), blocked_at
                    )
                )
            raise
        # Matched, stored and redirected to in its normalised form (dot segments resolved).
        redirect_url = None
        if req.redirect_url is not None:
            redirect_url = redirects.checked(req.redirect_url, self._settings.redirect_allowlist)
            if redirect_url is None:
                raise InvalidRequest.field(
                    "redirect_not_allowed", "redirect_url", "redirect_url is not on the allow-list"
                )

        now = utcnow()
        account_id = new_id("acc")
        all_sandbox = all(dests[i].sandbox for i in plan.verify_now)
        subject_hash = self._secrets.hash_subject(req.subject) if req.subject else None
        version = policy.version

        velocity: set[str] = set()

        def count_address(conn: Connection) -> bool:
            self._limits.hit(conn, "signup_ip", req.ip, all_sandbox, now)
            velocity.update(self._signals.velocity(conn, dests, req.ip, all_sandbox, now))
            return True

        # Counters every signup from this address (or number prefix) updates: apart from
        # the signup's transaction, where that frees their rows sooner (Limits.apart).
        counted = await self._limits.apart(self._db, count_address)

        def work(conn: Connection) -> list[dict[str, Any]] | str:
            if not counted:
                count_address(conn)
            for identity in plan.verify_now:
                d = dests[identity]
                self._limits.hit(conn, "send_destination", d.value, d.sandbox, now)
            signals = self._signals.assess(conn, dests, req.ip, velocity, now)
            refused = self._signals.blocking(signals)
            if refused is not None:
                # Committed, not raised: the refusal is recorded, then answered.
                self._signals.refuse(conn, version, arm, refused, req.ip, dests.values(), now)
                return refused
            taken = self._taken(conn, dests)
            shadow = bool(taken & set(plan.verify_now))
            flags = [*signals, "identity_taken"] if taken else signals
            self._count(conn, version, arm, flags, shadow, subject_hash, now)
            if subject_hash is not None:
                self._exposures.write(conn, version, arm, subject_hash, now)
            sql.INSERT_ACCOUNT.execute(
                conn,
                dict(
                    id=account_id,
                    status="pending",
                    phone=dests["phone"].value if "phone" in dests else None,
                    email=dests["email"].value if "email" in dests else None,
                    needs=",".join(plan.needs),
                    needs_all=plan.needs_all,
                    policy_version=policy.version,
                    arm=arm,
                    subject_hash=subject_hash,
                    locale=req.locale,
                    redirect_url=redirect_url,
                    flags=flags,
                    shadow=shadow,
                    ip=req.ip,
                    email_key=aliases.alias_key(dests["email"].value) if "email" in dests else None,
                    created_at=now,
                ),
            )
            issued = [
                issue(
                    conn,
                    self._by_identity[identity],
                    self._delivery,
                    Issue(policy, arm, identity, account_id, shadow, req.locale),
                    dests[identity],
                    now,
                )
                for identity in plan.verify_now
            ]
            # Last, so the send budgets' country and global rows, which every SMS of every
            # replica updates, stay locked only until the commit. A shadow is charged alike.
            for identity in plan.verify_now:
                d, kind = dests[identity], self._by_identity[identity].message_kind
                self._pumping.admit(conn, kind, d.value, d.sandbox, now, (version, arm))
            return issued

        try:
            issued = await self._db.transact(work)
        except Held as exc:
            # The send's transaction rolled back: the refusal is recorded in its own.
            held = exc

            def refuse(conn: Connection) -> None:
                self._pumping.trip(conn, held, now)
                self._signals.refuse(conn, version, arm, held.reason, req.ip, dests.values(), now)

            await self._db.transact(refuse)
            raise held.error from None
        if isinstance(issued, str):
            raise self._signals.error(issued)
        if subject_hash is not None:
            self._exposures.remember(version, subject_hash)
        if any(view["delivery"] == "queued" for view in issued):
            self._wake()
        account = {
            "id": account_id,
            "status": "pending",
            "phone": mask("phone", dests["phone"].value) if "phone" in dests else None,
            "email": mask("email", dests["email"].value) if "email" in dests else None,
            "policy_version": policy.version,
            "arm": arm,
            "created_at": now,
        }
        return {"account": account, "verifications": issued}

    def _parse(self, req: SignupRequest) -> dict[str, Destination]:
        """The given identities, normalised; every bad field is reported at once."""
        dests: dict[str, Destination] = {}
        errors: list[FieldError] = []
        for identity, raw in (("phone", req.phone), ("email", req.email)):
            if raw is None:
                continue
            try:
                dests[identity] = (
                    self._destinations.phone(raw)
                    if identity == "phone"
                    else self._destinations.email(raw)
                )
            except InvalidRequest as exc:
                errors.extend(exc.errors)
        if errors:
            first = errors[0]
            raise InvalidRequest(first.code, first.message, errors=errors)
        return dests

    @staticmethod
    def _count(
        conn: Connection,
        version: int,
        arm: str,
        flags: list[str],
        shadow: bool,
        subject_hash: str | None,
        now: datetime,
    ) -> None:
        rollup.add(conn, version, arm, "signups", now)
        if subject_hash is not None:
            rollup.add(conn, version, arm, "signups.exposed", now)
        # What tells a taken identity apart is counted for every signup, zero where it
        # does not apply: one upsert per counter, so a shadow runs a new one's statements.
        taken = "identity_taken" in flags
        rollup.add(conn, version, arm, "signups.shadow", now, int(shadow))
        rollup.add(conn, version, arm, "suspect", now, int(bool(flags)))
        rollup.add(conn, version, arm, "suspect.identity_taken", now, int(taken))
        for flag in flags:
            if flag != "identity_taken":
                rollup.add(conn, version, arm, f"suspect.{flag}", now)

    @staticmethod
    def _taken(conn: Connection, dests: dict[str, Destination]) -> set[str]:
        """Which of the given identities an active account already owns."""
        return {
            kind
            for kind, d in dests.items()
            if sql.TAKEN.first(conn, {"kind": kind, "value": d.value}) is not None
        }
