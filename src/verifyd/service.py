"""Signup, check, resend and confirm: the one module combining the database, channels and outbox.

Every operation is one write transaction. Hot paths use Core statements, and the
attempt counter moves in one conditional ``UPDATE … RETURNING``, so parallel
guesses can never exceed a verification's checks.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import Connection, Row, select, update

from verifyd import ratelimit, views
from verifyd import statements as sql
from verifyd.channels.base import Channel, VerificationRef
from verifyd.codes import Secrets, hash_token, new_id
from verifyd.db import Database
from verifyd.destinations import Destination, Destinations, mask
from verifyd.errors import (
    CodeIncorrect,
    Conflict,
    FieldError,
    Gone,
    InvalidRequest,
    NotFound,
    PolicyRequires,
    RateLimited,
    VerifydError,
)
from verifyd.models import (
    Account,
    Identity,
    Message,
    SandboxMessage,
    Verification,
    table_of,
    utcnow,
)
from verifyd.policy import Policy
from verifyd.policystore import PolicyStore
from verifyd.providers.base import Provider
from verifyd.settings import Settings

_accounts = table_of(Account)
_verifications = table_of(Verification)
_identities = table_of(Identity)
_messages = table_of(Message)
_sandbox = table_of(SandboxMessage)

SANDBOX_PROVIDER = "sandbox"
_v, _a = _verifications.c, _accounts.c


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


@dataclass(frozen=True)
class CheckResult:
    """An approved verification and its account, as rendered."""

    verification: dict[str, Any]
    account: dict[str, Any]
    #: The signup's ``redirect_url`` (where a confirmed email link goes next).
    redirect_url: str | None = None


_ID = re.compile(r"^[a-z]{3}_[A-Za-z0-9_-]{1,64}$")


def _well_formed(identifier: str) -> bool:
    """Whether an id could exist (never sends a NUL or a megabyte to the database)."""
    return bool(_ID.match(identifier))


class Service:
    """The verification flows.

    Args:
        settings: The running settings.
        db: The database.
        secrets: Keyed derivation and hashing of codes and tokens.
        channels: Channel instances by name (``sms``, ``email``, plugins).
        providers: Provider instances by name.
        policies: The policy store.
        wake: Called after a commit that queued messages (wakes the dispatcher).
    """

    def __init__(
        self,
        settings: Settings,
        db: Database,
        secrets: Secrets,
        channels: dict[str, Channel],
        providers: dict[str, Provider],
        policies: PolicyStore,
        wake: Callable[[], None] = lambda: None,
    ) -> None:
        self.settings = settings
        self.db = db
        self.secrets = secrets
        self.channels = channels
        self.providers = providers
        self.policies = policies
        self.destinations = Destinations(settings)
        self.wake = wake
        self.by_identity = {
            "phone": channels[settings.phone_channel],
            "email": channels[settings.email_channel],
        }
        mult = settings.sandbox_limit_multiplier
        self._limits = {
            "signup_ip": ratelimit.Limit("signup_ip", settings.signups_per_ip_per_hour, 3600),
            "send_destination": ratelimit.Limit(
                "send_destination", settings.sends_per_destination_per_hour, 3600
            ),
            "check_ip": ratelimit.Limit("check_ip", settings.checks_per_ip_per_minute, 60),
            "guess_destination": ratelimit.Limit(
                "guess_destination", settings.guess_budget_per_day, 86400
            ),
        }
        self._sandbox_limits = {
            name: ratelimit.Limit(f"sandbox_{lim.bucket}", lim.limit * mult, lim.window)
            for name, lim in self._limits.items()
        }

    # ------------------------------------------------------------------ helpers

    def _limit(
        self, conn: Connection, name: str, subject: str, sandbox: bool, now: datetime, **kw: str
    ) -> None:
        limits = self._sandbox_limits if sandbox else self._limits
        ratelimit.hit(conn, limits[name], subject, now, **kw)

    def _channel_for(self, identity: str) -> Channel:
        return self.by_identity[identity]

    def _provider_for(self, channel: Channel, sandbox: bool) -> Provider:
        if sandbox:
            return self.providers[SANDBOX_PROVIDER]
        name = (
            self.settings.sms_provider
            if channel.message_kind == "sms"
            else self.settings.email_provider
        )
        return self.providers[name]

    def _check_redirect(self, url: str | None) -> None:
        if url is None:
            return
        parts = urlsplit(url)
        if parts.scheme in ("http", "https") and parts.netloc:
            origin = f"{parts.scheme}://{parts.netloc}".lower()
            for allowed in self.settings.redirect_allowlist:
                a = urlsplit(allowed)
                if f"{a.scheme}://{a.netloc}".lower() != origin:
                    continue
                prefix = a.path.rstrip("/")
                if not prefix or parts.path == prefix or parts.path.startswith(prefix + "/"):
                    return
        raise InvalidRequest.field(
            "redirect_not_allowed", "redirect_url", "redirect_url is not on the allow-list"
        )

    def _deliver(
        self,
        conn: Connection,
        channel: Channel,
        ref: VerificationRef,
        shadow: bool,
        now: datetime,
    ) -> str:
        """Queue (or, for a transactional provider, deliver) the verification's message.

        Returns:
            The verification's ``delivery`` state after this transaction.
        """
        provider = self._provider_for(channel, ref.sandbox)
        if provider.transactional and not shadow:
            provider.send_in_transaction(conn, channel.render(ref, new_id("msg"), now))
            return "sent"
        # Nothing is sent for an identity an active account owns (``suppressed``); the
        # row keeps the statement count, and so the timing, of a real signup.
        conn.execute(
            sql.INSERT_MESSAGE,
            dict(
                id=new_id("msg"),
                verification_id=ref.id,
                generation=ref.generation,
                kind=channel.message_kind,
                provider=provider.name,
                to=ref.destination,
                status="suppressed" if shadow else "queued",
                attempts=0,
                next_attempt_at=now,
                created_at=now,
            ),
        )
        return "sent" if provider.transactional else "queued"

    # ------------------------------------------------------------------ signup

    def _plan(
        self, policy: Policy, arm: str, req: SignupRequest
    ) -> tuple[list[str], bool, list[str]]:
        """Which identities the account needs, whether all of them, and which to verify now."""
        requirement = policy.requirement(arm)  # type: ignore[arg-type]
        given = {"phone": req.phone is not None, "email": req.email is not None}
        missing = [i for i in requirement.require if not given[i]]
        if missing:
            code = (
                "policy_requires_both"
                if len(requirement.require) == 2
                else (f"policy_requires_{missing[0]}")
            )
            raise PolicyRequires(
                code,
                f"the verification policy needs {' and '.join(requirement.require)}",
                errors=[FieldError(i, code, f"{i} is required") for i in missing],
            )
        if requirement.require:
            return list(requirement.require), True, list(requirement.require)
        # one_of: verify the one given; with both, `channel` picks, else the preference
        offered = [i for i in requirement.one_of if given[i]]
        if not offered:
            code = "policy_requires_phone_or_email"
            raise PolicyRequires(
                code,
                "the verification policy needs a phone or an email",
                errors=[
                    FieldError(i, code, "phone or email is required") for i in ("phone", "email")
                ],
            )
        pick = offered[0] if len(offered) == 1 else self._pick(req.channel, policy.prefer)
        return list(requirement.one_of), False, [pick]

    def _pick(self, channel: str | None, prefer: str) -> str:
        if channel is None:
            return prefer
        for identity, ch in self.by_identity.items():
            if channel in (identity, ch.name):
                return identity
        raise InvalidRequest.field(
            "invalid_request",
            "channel",
            "channel must be one of "
            + ", ".join(sorted({c.name for c in self.by_identity.values()})),
        )

    def signup(self, req: SignupRequest) -> dict[str, Any]:
        """Create a pending account and its verifications under the active policy.

        Returns:
            ``{"account": …, "verifications": [...]}`` as rendered for the API.

        Raises:
            VerifydError: invalid input, a policy mismatch, or a rate limit.
        """
        policy = self.policies.current()
        arm = policy.arm_for(req.subject)
        needs, needs_all, verify_now = self._plan(policy, arm, req)
        dests: dict[str, Destination] = {}
        errors: list[FieldError] = []
        for identity, raw in (("phone", req.phone), ("email", req.email)):
            if raw is None:
                continue
            try:
                dests[identity] = (
                    self.destinations.phone(raw)
                    if identity == "phone"
                    else self.destinations.email(raw)
                )
            except InvalidRequest as exc:
                errors.extend(exc.errors)
        if errors:
            first = errors[0]
            raise InvalidRequest(first.code, first.message, errors=errors)
        self._check_redirect(req.redirect_url)

        now = utcnow()
        account_id = new_id("acc")
        flags = sorted({f for d in dests.values() for f in d.flags})
        all_sandbox = all(dests[i].sandbox for i in verify_now)
        issued: list[dict[str, Any]] = []
        with self.db.write() as conn:
            self._limit(conn, "signup_ip", req.ip, all_sandbox, now)
            for identity in verify_now:
                d = dests[identity]
                self._limit(conn, "send_destination", d.value, d.sandbox, now)
            taken = {
                row.kind
                for row in conn.execute(
                    select(_identities.c.kind).where(
                        _identities.c.kind.in_(list(dests)),
                        _identities.c.value.in_([d.value for d in dests.values()]),
                    )
                )
            } & set(dests)
            shadow = bool(taken & set(verify_now))
            if taken:
                flags.append("identity_taken")
            conn.execute(
                sql.INSERT_ACCOUNT,
                dict(
                    id=account_id,
                    status="pending",
                    phone=dests["phone"].value if "phone" in dests else None,
                    email=dests["email"].value if "email" in dests else None,
                    needs=",".join(needs),
                    needs_all=needs_all,
                    policy_version=policy.version,
                    arm=arm,
                    subject_hash=self.secrets.hash_subject(req.subject) if req.subject else None,
                    locale=req.locale,
                    redirect_url=req.redirect_url,
                    flags=flags,
                    shadow=shadow,
                    ip=req.ip,
                    created_at=now,
                ),
            )
            for identity in verify_now:
                issued.append(
                    self._issue(conn, policy, identity, dests[identity], account_id, shadow, now)
                )
        if any(view["delivery"] == "queued" for view in issued):
            self.wake()
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

    def _issue(
        self,
        conn: Connection,
        policy: Policy,
        identity: str,
        dest: Destination,
        account_id: str,
        shadow: bool,
        now: datetime,
    ) -> dict[str, Any]:
        channel = self._channel_for(identity)
        terms = channel.terms(policy)
        ref = VerificationRef(
            id=new_id("ver"),
            destination=dest.value,
            generation=0,
            sandbox=dest.sandbox,
            expires_at=now + timedelta(seconds=terms.ttl_seconds),
            code_length=terms.code_length,
        )
        # A shadow verification stores the hash of a secret nobody knows.
        secret_hash = channel.hash(ref.id, secrets.token_hex(32)) if shadow else channel.issue(ref)
        resend_at = now + timedelta(seconds=terms.resend_cooldown_seconds)
        values = {
            "id": ref.id,
            "account_id": account_id,
            "channel": channel.name,
            "identity": identity,
            "destination": dest.value,
            "sandbox": dest.sandbox,
            "shadow": shadow,
            "status": "pending",
            "secret_hash": secret_hash,
            "generation": 0,
            "attempts": 0,
            "max_checks": terms.max_checks,
            "code_length": terms.code_length,
            "resends": 0,
            "delivery": "queued",
            "expires_at": ref.expires_at,
            "resend_available_at": resend_at,
            "created_at": now,
        }
        # A shadow verification reads as delivered, as a real one does moments later.
        values["delivery"] = (
            "sent" if shadow or self._transactional(channel, dest.sandbox) else ("queued")
        )
        conn.execute(sql.INSERT_VERIFICATION, values)
        values["delivery"] = self._deliver(conn, channel, ref, shadow, now)
        return views.verification(views.Values(values), now)

    def _transactional(self, channel: Channel, sandbox: bool) -> bool:
        return self._provider_for(channel, sandbox).transactional

    # ------------------------------------------------------------------ reads

    def get_account(self, account_id: str) -> dict[str, Any]:
        """The account and which identities are verified.

        Raises:
            NotFound: ``account_not_found``.
        """
        row = None
        if _well_formed(account_id):
            with self.db.read() as conn:
                row = conn.execute(select(_accounts).where(_a.id == account_id)).first()
        if row is None:
            raise NotFound("account_not_found", "no account with this id")
        view = views.account(row)
        view["verified"] = {
            "phone": row.phone_verified_at is not None,
            "email": row.email_verified_at is not None,
        }
        return view

    def get_verification(self, verification_id: str) -> dict[str, Any]:
        """One verification.

        Raises:
            NotFound: ``verification_not_found``.
        """
        row = None
        if _well_formed(verification_id):
            with self.db.read() as conn:
                row = conn.execute(select(_verifications).where(_v.id == verification_id)).first()
        if row is None:
            raise NotFound("verification_not_found", "no verification with this id")
        return views.verification(row)

    # ------------------------------------------------------------------ check

    def check(self, verification_id: str, raw_code: object, ip: str) -> CheckResult:
        """Check a code: one atomic attempt, then approve or count the miss.

        Raises:
            CodeIncorrect: wrong code (``attempts_left`` says how many remain).
            Gone: ``code_expired``.
            Conflict: ``verification_closed``.
            NotFound: ``verification_not_found``.
            RateLimited: ``rate_limited`` (per IP) or ``too_many_attempts``
                (the destination's daily guess budget).
        """
        if not _well_formed(verification_id):
            raise NotFound("verification_not_found", "no verification with this id")
        now = utcnow()
        error: VerifydError | None = None
        with self.db.write() as conn:
            row = conn.execute(sql.ATTEMPT, {"vid": verification_id, "now": now}).first()
            if row is None:
                error = self._closed_reason(conn, verification_id, now)
            else:
                channel = self.channels.get(row.channel)
                if channel is None or channel.confirm_by != "code":
                    raise InvalidRequest.field(
                        "invalid_request", "code", "this verification is confirmed by its link"
                    )
                code = channel.parse_candidate(raw_code)
                self._limit(conn, "check_ip", ip, row.sandbox, now)
                self._limit(
                    conn,
                    "guess_destination",
                    row.destination,
                    row.sandbox,
                    now,
                    code="too_many_attempts",
                )
                if channel.check(row.id, code, row.secret_hash):
                    approved = self._approve(conn, row, now)
                    if isinstance(approved, VerifydError):
                        error = approved
                    else:
                        result = approved
                else:
                    left = row.max_checks - row.attempts
                    if left <= 0:
                        conn.execute(sql.SET_STATUS, {"vid": row.id, "status": "locked"})
                    error = CodeIncorrect(
                        "code_incorrect",
                        "the code is not correct" + ("; no attempts left" if left <= 0 else ""),
                        extra={"attempts_left": left},
                    )
        if error is not None:
            raise error
        return result

    def _closed_reason(self, conn: Connection, verification_id: str, now: datetime) -> VerifydError:
        row = conn.execute(sql.STATUS_OF, {"vid": verification_id}).first()
        if row is None:
            return NotFound("verification_not_found", "no verification with this id")
        status = row.status
        if status == "pending" and row.expires_at <= now:
            conn.execute(sql.SET_STATUS, {"vid": verification_id, "status": "expired"})
            status = "expired"
        if status == "expired":
            return Gone("code_expired", "the code has expired; ask for a new one")
        if status == "pending":  # every check used, the lock not yet written
            status = "locked"
        return Conflict(
            "verification_closed",
            f"this verification is {status}",
            extra={"verification_status": status},
        )

    def _approve(
        self, conn: Connection, row: Row[Any], now: datetime
    ) -> CheckResult | VerifydError:
        """Approve a verification and activate its account once the policy is met.

        Returns:
            The approved verification and its account, or an error for the caller to
            raise after the transaction commits.
        """
        approved = conn.execute(sql.APPROVE, {"vid": row.id, "now": now}).first()
        if approved is None:
            return Conflict(
                "verification_closed",
                "this verification is already closed",
                extra={"verification_status": "approved"},
            )
        account = conn.execute(
            sql.VERIFIED_AT[row.identity], {"aid": row.account_id, "now": now}
        ).one()
        verified = {
            "phone": account.phone_verified_at is not None,
            "email": account.email_verified_at is not None,
        }
        needs = account.needs.split(",")
        done = (
            all(verified[n] for n in needs)
            if account.needs_all
            else any(verified[n] for n in needs)
        )
        view = views.account(account)
        if done and account.status == "pending":
            claim = sql.CLAIM_IDENTITY[conn.dialect.name]
            for kind in ("phone", "email"):
                if not verified[kind]:
                    continue
                params = {
                    "kind": kind,
                    "value": getattr(account, kind),
                    "account_id": account.id,
                    "created_at": now,
                }
                if conn.execute(claim, params).first() is None:
                    # Another account activated with this identity first: this one never
                    # will, and must not count the identity as verified either.
                    conn.execute(
                        update(_verifications).where(_v.id == row.id).values(status="canceled")
                    )
                    conn.execute(sql.UNVERIFY[row.identity], {"aid": account.id})
                    return Conflict(
                        "verification_closed",
                        "this verification was canceled",
                        extra={"verification_status": "canceled"},
                    )
            conn.execute(sql.ACTIVATE, {"aid": account.id, "now": now})
            view["status"] = "active"
        return CheckResult(views.verification(approved, now), view, account.redirect_url)

    # ------------------------------------------------------------------ resend

    def resend(self, verification_id: str, ip: str) -> dict[str, Any]:
        """Send a new code or link; the old one dies, the attempt count stays.

        Raises:
            RateLimited: within the cooldown, or the destination's send limit.
            Conflict: ``verification_closed``.
            NotFound: ``verification_not_found``.
        """
        if not _well_formed(verification_id):
            raise NotFound("verification_not_found", "no verification with this id")
        now = utcnow()
        with self.db.write() as conn:
            v = _verifications.c
            row = conn.execute(
                select(_verifications).where(v.id == verification_id).with_for_update()
            ).first()
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
            self._limit(conn, "send_destination", row.destination, row.sandbox, now)
            channel = self.channels[row.channel]
            policy = self.policies.current()
            terms = channel.terms(policy)
            ref = VerificationRef(
                id=row.id,
                destination=row.destination,
                generation=row.generation + 1,
                sandbox=row.sandbox,
                expires_at=now + timedelta(seconds=terms.ttl_seconds),
                code_length=row.code_length,
            )
            secret_hash = (
                channel.hash(ref.id, secrets.token_hex(32)) if row.shadow else channel.issue(ref)
            )
            transactional = self._transactional(channel, row.sandbox)
            fresh = conn.execute(
                update(_verifications)
                .where(v.id == row.id)
                .values(
                    status="pending",
                    generation=ref.generation,
                    secret_hash=secret_hash,
                    resends=v.resends + 1,
                    expires_at=ref.expires_at,
                    resend_available_at=now + timedelta(seconds=terms.resend_cooldown_seconds),
                    delivery="sent" if transactional or row.shadow else "queued",
                )
                .returning(*_verifications.c)
            ).one()
            delivery = self._deliver(conn, channel, ref, row.shadow, now)
            view = views.verification(fresh, now)
            view["delivery"] = delivery
        if delivery == "queued":
            self.wake()
        return view

    # ------------------------------------------------------------------ email link

    def confirm_token(self, token: str) -> CheckResult:
        """Confirm an email link's token, once.

        Raises:
            VerifydError: ``token_invalid``, ``code_expired`` or ``verification_closed``.
        """
        if not token or len(token) > 200:
            raise InvalidRequest("token_invalid", "this link is not valid")
        now = utcnow()
        digest = hash_token(token)
        with self.db.write() as conn:
            row = conn.execute(sql.CONFIRM, {"digest": digest, "now": now}).first()
            channel = self.channels.get(row.channel) if row is not None else None
            if row is None or channel is None or channel.confirm_by != "link":
                found = conn.execute(select(_v.id).where(_v.secret_hash == digest)).scalar()
                outcome: CheckResult | VerifydError = (
                    self._closed_reason(conn, found, now)
                    if found is not None
                    else InvalidRequest("token_invalid", "this link is not valid")
                )
            else:
                outcome = self._approve(conn, row, now)
        if isinstance(outcome, VerifydError):
            raise outcome
        return outcome

    # ------------------------------------------------------------------ sandbox

    def sandbox_messages(self, to: str) -> list[dict[str, Any]]:
        """Messages the sandbox provider recorded for a destination, newest first (50)."""
        to = to.strip()
        if "\x00" in to:
            return []
        if to and to[0].isdigit() and "@" not in to:
            to = "+" + to  # a '+' that arrived as a space
        try:
            dest = self.destinations.email(to) if "@" in to else self.destinations.phone(to)
            value = dest.value
        except InvalidRequest:
            value = to
        with self.db.read() as conn:
            rows = conn.execute(
                select(_sandbox)
                .where(_sandbox.c.to == value)
                .order_by(_sandbox.c.created_at.desc(), _sandbox.c.id)
                .limit(50)
            ).all()
        messages = []
        for r in rows:
            item: dict[str, Any] = {
                "id": r.id,
                "to": r.to,
                "channel": r.channel,
                "kind": r.kind,
                "body": r.body,
                "created_at": r.created_at,
            }
            if r.code is not None:
                item["code"] = r.code
            if r.link is not None:
                item["link"] = r.link
            messages.append(item)
        return messages
