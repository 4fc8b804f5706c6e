"""Code checks and resends: one atomic attempt per check; a resend kills the old secret."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from sqlalchemy import Connection

from verifyd import rollup, views
from verifyd import statements as sql
from verifyd.channels.base import Channel, VerificationRef
from verifyd.codes import well_formed
from verifyd.db import Database
from verifyd.errors import (
    CodeIncorrect,
    Conflict,
    InvalidRequest,
    NotFound,
    RateLimited,
    VerifydError,
)
from verifyd.flows.approval import Approved, approve, closed_reason
from verifyd.flows.delivery import Delivery
from verifyd.flows.limits import Limits
from verifyd.flows.pumping import Held, Pumping
from verifyd.models import utcnow
from verifyd.policystore import PolicyStore


class Codes:
    """Checks codes and resends codes or links.

    Args:
        db: The database.
        channels: Channel instances by name.
        policies: The policy store (a resend takes the current policy's terms).
        limits: The rate limits.
        delivery: The hand-off to providers and the outbox.
        pumping: The SMS send budgets and breakers (a resend is a send).
        wake: Called after a commit that queued messages (wakes the dispatcher).
    """

    def __init__(
        self,
        db: Database,
        channels: dict[str, Channel],
        policies: PolicyStore,
        limits: Limits,
        delivery: Delivery,
        pumping: Pumping,
        wake: Callable[[], None] = lambda: None,
    ) -> None:
        self._db = db
        self._channels = channels
        self._policies = policies
        self._limits = limits
        self._delivery = delivery
        self._pumping = pumping
        self._wake = wake

    async def check(self, verification_id: str, raw_code: object, ip: str) -> Approved:
        """Check a code: one atomic attempt, then approve or count the miss.

        The attempt is one conditional ``UPDATE … WHERE attempts < max_checks …
        RETURNING``, so parallel guesses can never exceed a verification's checks.

        Raises:
            CodeIncorrect: wrong code (``attempts_left`` says how many remain).
            Gone: ``code_expired``.
            Conflict: ``verification_closed``.
            NotFound: ``verification_not_found``.
            RateLimited: ``rate_limited`` (per IP) or ``too_many_attempts``
                (the destination's daily guess budget).
        """
        if not well_formed(verification_id):
            raise NotFound("verification_not_found", "no verification with this id")
        now = utcnow()

        def count_ip(conn: Connection) -> bool:
            sandbox = conn.execute(sql.SANDBOX, {"vid": verification_id}).scalar()
            if sandbox is None:
                return False  # no such verification: the check's transaction answers
            self._limits.hit(conn, "check_ip", ip, sandbox, now)
            return True

        # The address's counter is shared by all its requests: apart, where that frees it.
        ip_counted = await self._limits.apart(self._db, count_ip)

        def work(conn: Connection) -> Approved | VerifydError:
            row = sql.ATTEMPT.first(conn, {"vid": verification_id, "now": now})
            if row is None:
                return closed_reason(conn, verification_id, now)
            channel = self._channels.get(row.channel)
            if channel is None or channel.confirm_by != "code":
                raise InvalidRequest.field(
                    "invalid_request", "code", "this verification is confirmed by its link"
                )
            code = channel.parse_candidate(raw_code)
            if not ip_counted:
                self._limits.hit(conn, "check_ip", ip, row.sandbox, now)
            self._limits.hit(
                conn,
                "guess_destination",
                row.destination,
                row.sandbox,
                now,
                code="too_many_attempts",
            )
            if channel.check(row.id, code, row.secret_hash):
                approved = approve(conn, row, now)
                if isinstance(approved, Approved):  # what keeps a prefix's breaker off
                    kind, dest = channel.message_kind, row.destination
                    self._pumping.verified(conn, kind, dest, row.sandbox, now)
                return approved
            left = row.max_checks - row.attempts
            version, arm, ch = row.policy_version, row.arm, row.channel
            rollup.add(conn, version, arm, f"checks.{ch}.incorrect", row.created_at)
            if left <= 0:
                sql.SET_STATUS.execute(conn, {"vid": row.id, "status": "locked"})
                rollup.add(conn, version, arm, f"locked.{ch}", row.created_at)
            return CodeIncorrect(
                "code_incorrect",
                "the code is not correct" + ("; no attempts left" if left <= 0 else ""),
                extra={"attempts_left": left},
            )

        outcome = await self._db.transact(work)
        # Raised after the commit: a miss must count, a lock must stick.
        if isinstance(outcome, VerifydError):
            raise outcome
        return outcome

    async def resend(self, verification_id: str, ip: str) -> dict[str, Any]:
        """Send a new code or link; the old one dies, the attempt count stays.

        Raises:
            RateLimited: within the cooldown, or the destination's send limit.
            Conflict: ``verification_closed``.
            NotFound: ``verification_not_found``.
        """
        if not well_formed(verification_id):
            raise NotFound("verification_not_found", "no verification with this id")
        now = utcnow()
        policy = self._policies.current()  # not inside the writer's transaction

        def work(conn: Connection) -> tuple[dict[str, Any], str]:
            row = sql.TO_RESEND.first(conn, {"vid": verification_id})
            if row is None:
                raise NotFound("verification_not_found", "no verification with this id")
            status = row.status
            if status == "pending" and row.expires_at <= now:
                status = "expired"
            if status not in ("pending", "expired") or row.attempts >= row.max_checks:
                closed = "locked" if status in ("pending", "expired") else status
                raise Conflict(
                    "verification_closed",
                    f"this verification is {closed}",
                    extra={"verification_status": closed},
                )
            if row.resend_available_at > now:
                wait = int((row.resend_available_at - now).total_seconds() + 0.999)
                raise RateLimited(
                    "rate_limited", "a new code can be sent after the cooldown", retry_after=wait
                )
            self._limits.hit(conn, "send_destination", row.destination, row.sandbox, now)
            channel = self._channels[row.channel]
            terms = channel.terms(policy)
            ref = VerificationRef(
                id=row.id,
                destination=row.destination,
                generation=row.generation + 1,
                sandbox=row.sandbox,
                expires_at=now + timedelta(seconds=terms.ttl_seconds),
                code_length=row.code_length,
                locale=row.locale,
            )
            secret_hash = (
                channel.hash(ref.id, secrets.token_hex(32)) if row.shadow else channel.issue(ref)
            )
            immediate = self._delivery.immediate(channel, row.sandbox)
            fresh = sql.RESEND.one(
                conn,
                {
                    "vid": row.id,
                    "generation": ref.generation,
                    "secret_hash": secret_hash,
                    "expires_at": ref.expires_at,
                    "resend_available_at": now + timedelta(seconds=terms.resend_cooldown_seconds),
                    "delivery": "sent" if immediate else "queued",
                },
            )
            cohort = (row.policy_version, row.arm, row.created_at)
            delivery = self._delivery.hand_off(conn, channel, ref, row.shadow, now, cohort)
            rollup.add(conn, row.policy_version, row.arm, f"resends.{row.channel}", row.created_at)
            # Last: the budgets' hot rows (country, global) stay locked only until the commit.
            kind, dest, arm = channel.message_kind, row.destination, (row.policy_version, row.arm)
            self._pumping.admit(conn, kind, dest, row.sandbox, now, arm)
            view = views.verification(fresh, now)
            view["delivery"] = delivery
            return view, delivery

        try:
            view, delivery = await self._db.transact(work)
        except Held as exc:
            # The send's transaction rolled back: the refusal is recorded in its own.
            held = exc
            await self._db.transact(lambda conn: self._pumping.refused(conn, held, now))
            raise held.error from None
        if delivery == "queued":
            self._wake()
        return view
