"""The seeded population: 30 days of signups under three policy versions, as table rows.

What the stats of a service in use would summarise, generated deterministically (one
``random.Random`` per batch, seeded by its first index) and written by bench/seed.py:

- three policy versions (:data:`VERSIONS`): ``phone`` with stricter SMS knobs for the
  first ten days, a 50/50 ``split`` of phone and email for the next ten, then
  ``phone`` with the shipped defaults, the current version the bench's flows sign up
  under, so they measure what they measured on an empty database;
- signups spread evenly over the 30 days up to the seeding (``created_at`` rising with
  the index, ids time-prefixed like :func:`verifyd.codes.new_id`'s, so the flows'
  rows land after them in every index, as they would in a real database);
- per signup: its verification (a share resent, approved, expired, locked or still
  pending), the outbox rows of what was sent (country and segments; the sandbox's
  share has none, as the sandbox leaves none), a share flagged by a signal, labelled
  (with its ``account_labels`` history) or refused (``signup_blocks``, never from
  ``127.0.0.1``, where the bench's flows come from: no flow reads as
  ``blocked_before``); the split's signups carry a subject and their exposures, and
  more subjects were exposed than signed up.

Nothing is queued and nothing pending has run out of time (as of the seeding): the
server's outbox and expiry sweep find no work in the seeded rows. Phones are the bench's
``+999`` numbers (bench/seed.py), so a message's country is drawn, not derived.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from random import Random
from typing import Any

from verifyd import aliases
from verifyd.policy import Policy, SmsKnobs

#: How far back the signups go.
SPAN = timedelta(days=30)
#: Outbox rows' countries (a +999 number has none) and their shares.
COUNTRIES = (("US", 0.45), ("GB", 0.2), ("DE", 0.1), ("FR", 0.1), ("IN", 0.1), ("BR", 0.05))
#: A sent message's fate and its share.
FATES = (("delivered", 0.93), ("sent", 0.04), ("undelivered", 0.02), ("dead", 0.01))
#: Addresses the signups and refusals come from (documentation ranges, RFC 5737).
NETS = ("192.0.2", "198.51.100", "203.0.113")
#: A verification's ``delivery`` by its last message's fate (the receipts' mapping).
_DELIVERY = {"delivered": "delivered", "sent": "sent"}
SANDBOX_SHARE = 0.05
RESEND_SHARE = 0.08

Row = tuple[Any, ...]
Batch = dict[str, list[Row]]


@dataclass(frozen=True)
class Version:
    """A policy version of the seeded history: from ``since`` before the end, until the next."""

    number: int
    since: timedelta
    policy: Policy
    changed_by: str


_SALT = "5eed" * 8  # the split's salt; the version after it keeps it, as next_version does
VERSIONS = (
    Version(
        1,
        SPAN,
        Policy(mode="phone", sms=SmsKnobs(code_length=6, ttl_seconds=300, max_checks=3)),
        "system:defaults",
    ),
    Version(
        2,
        SPAN * 2 / 3,
        Policy(
            mode="split", weights={"phone": 50, "email": 50}, experiment="exp_bench", salt=_SALT
        ),
        "key:ops",
    ),
    Version(3, SPAN / 3, Policy(mode="phone", salt=_SALT), "key:ops"),
)
CURRENT = VERSIONS[-1]

COLUMNS: dict[str, tuple[str, ...]] = {  # in the order they are written (foreign keys)
    "accounts": (
        "id", "status", "phone", "email", "phone_verified_at", "email_verified_at", "needs",
        "needs_all", "policy_version", "arm", "subject_hash", "locale", "redirect_url",
        "flags", "shadow", "ip", "email_key", "label", "created_at", "activated_at",
    ),
    "verifications": (
        "id", "account_id", "channel", "identity", "destination", "sandbox", "shadow",
        "status", "secret_hash", "generation", "attempts", "max_checks", "code_length",
        "resends", "delivery", "expires_at", "resend_available_at", "created_at",
        "approved_at", "viewed_at", "policy_version", "arm",
    ),
    "messages": (
        "id", "verification_id", "generation", "kind", "provider", "to", "status",
        "attempts", "next_attempt_at", "last_error", "error_code", "provider_message_id",
        "country", "segments", "lease", "created_at", "sent_at", "delivered_at",
    ),
    "identities": ("kind", "value", "account_id", "created_at"),
    "exposures": ("policy_version", "subject_hash", "arm", "at"),
    "signup_blocks": ("at", "policy_version", "arm", "reason", "ip", "destination_hash"),
    "account_labels": ("account_id", "label", "reason", "actor", "at"),
}  # fmt: skip
POLICY_COLUMNS = ("version", "document", "salt", "changed_at", "changed_by")


def seeded_email(i: int) -> str:
    """The address of seeded account ``i`` when it signed up on the email arm."""
    return f"seeded{i:011d}@bench.invalid"  # .invalid: no mail can ever leave for it


def policy_rows(end: datetime) -> list[Row]:
    """The ``policy_versions`` rows of the seeded history (naive UTC, as stored)."""
    return [
        (v.number, v.policy.stored(), v.policy.salt, end - v.since, v.changed_by) for v in VERSIONS
    ]


def _id(rng: Random, prefix: str, at: datetime) -> str:
    # verifyd.codes.new_id's shape: milliseconds as 12 hex digits, then 96 random bits.
    ms = int((at - datetime(1970, 1, 1)).total_seconds() * 1000)
    return f"{prefix}_{ms:012x}{base64.urlsafe_b64encode(rng.randbytes(12)).decode()}"


def _pick(rng: Random, shares: tuple[tuple[str, float], ...]) -> str:
    r = rng.random()
    for value, share in shares:
        r -= share
        if r < 0:
            return value
    return shares[-1][0]


def _ip(rng: Random) -> str:
    return f"{NETS[rng.randrange(len(NETS))]}.{rng.randrange(1, 255)}"


class _Batch:
    """One batch's rows, and what a signup writes into it."""

    def __init__(self, rng: Random, end: datetime, phone_of: Callable[[int], str]) -> None:
        self.rng, self.end, self.phone_of = rng, end, phone_of
        self.rows: Batch = {table: [] for table in COLUMNS}

    def signup(self, i: int, at: datetime) -> None:
        rng, end = self.rng, self.end
        v = next(v for v in reversed(VERSIONS) if at >= end - v.since)
        subject = None
        if v.policy.mode == "split":
            subject = rng.randbytes(32).hex()
            arm = "phone" if rng.random() < 0.5 else "email"
            self._exposure(v.number, subject, arm, at - timedelta(seconds=rng.uniform(2, 600)))
            if rng.random() < 0.6:  # exposed, never signed up
                other = "phone" if rng.random() < 0.5 else "email"
                self._exposure(v.number, rng.randbytes(32).hex(), other, at)
        else:
            arm = v.policy.mode
        phone = arm == "phone"
        dest = self.phone_of(i) if phone else seeded_email(i)
        r = rng.random()
        flags = (
            (["velocity_ip"] if r < 0.01 else ["voip"] if r < 0.025 else ["non_mobile"])
            if phone and r < 0.03
            else (["disposable_email"] if r < 0.02 else ["email_alias"])
            if not phone and r < 0.03
            else []
        )
        sms = v.policy.sms
        ttl = sms.ttl_seconds if phone else v.policy.email.ttl_seconds
        cooldown = sms.resend_cooldown_seconds
        max_checks = sms.max_checks if phone else 1
        sandbox = rng.random() < SANDBOX_SHARE
        resends = 1 if rng.random() < RESEND_SHARE else 0
        sends = [at] + [at + timedelta(seconds=cooldown + rng.uniform(0, 60))] * resends
        sends = [s for s in sends if s <= end]
        resends = len(sends) - 1
        account_id, vid = _id(rng, "acc", at), _id(rng, "ver", at)
        fates = [] if sandbox else [_pick(rng, FATES) for _ in sends]
        reached = sandbox or fates[-1] in ("delivered", "sent")
        last = sends[-1]
        expires, resend_at = last + timedelta(seconds=ttl), last + timedelta(seconds=cooldown)
        approved_at = viewed_at = None
        if reached and rng.random() < (0.85 if phone else 0.65):
            median, sigma = (35.0, 0.6) if phone else (300.0, 1.2)
            ttv = min(max(rng.lognormvariate(math.log(median), sigma), 8.0), ttl - 1.0)
            approved_at = last + timedelta(seconds=ttv)
        if approved_at is not None and approved_at <= end:
            status = "approved"
            attempts = 1 if not phone else 1 + (rng.random() < 0.1) + (rng.random() < 0.02)
            if not phone and rng.random() < 0.8:
                viewed_at = approved_at - timedelta(seconds=rng.uniform(1, min(30, ttv)))
        else:
            approved_at = None
            if phone and rng.random() < 0.15 and last + timedelta(seconds=60) <= end:
                status, attempts = "locked", max_checks
            else:
                status = "expired" if expires <= end else "pending"
                attempts = 1 if phone and rng.random() < 0.3 else 0
            seen = last + timedelta(seconds=rng.uniform(5, 120))
            if not phone and rng.random() < 0.25 and seen <= end:
                viewed_at = seen  # a mail scanner, or a user who gave up
        active = status == "approved"
        label = None
        if rng.random() < (0.3 if flags else 0.01):
            label = "fake" if flags or rng.random() < 0.3 else "genuine"
            labelled = min(end, at + timedelta(days=rng.uniform(0.5, 5)))
            self.rows["account_labels"].append(
                (account_id, label, "bench seed", "key:ops", labelled)
            )
        self.rows["accounts"].append(
            (account_id, "active" if active else "pending")
            + ((dest, None, approved_at, None) if phone else (None, dest, None, approved_at))
            + ("phone" if phone else "email", True, v.number, arm, subject, None, None, flags)
            + (False, _ip(rng), None if phone else aliases.alias_key(dest), label, at)
            + (approved_at,)
        )
        delivery = "sent" if sandbox else _DELIVERY.get(fates[-1], "failed")
        self.rows["verifications"].append(
            (vid, account_id, "sms" if phone else "email", arm, dest, sandbox, False, status)
            + (rng.randbytes(32).hex(), resends, attempts, max_checks)
            + (sms.code_length if phone else None, resends)
            + (delivery,)
            + (expires, resend_at, at, approved_at, viewed_at, v.number, arm)
        )
        for generation, (sent, fate) in enumerate(zip(sends, fates, strict=not sandbox)):
            self._message(vid, generation, phone, dest, sent, fate)
        if active:
            self.rows["identities"].append((arm, dest, account_id, approved_at))
        if rng.random() < 0.004:
            blocked = at - timedelta(seconds=rng.uniform(1, 3600))
            reason = _pick(
                rng,
                (("number_type_blocked", 0.5), ("country_not_allowed", 0.3), ("velocity_ip", 0.2)),
            )
            self.rows["signup_blocks"].append(
                (blocked, v.number, arm, reason, _ip(rng), rng.randbytes(32).hex())
            )

    def _exposure(self, version: int, subject: str, arm: str, at: datetime) -> None:
        self.rows["exposures"].append((version, subject, arm, at))

    def _message(
        self, vid: str, generation: int, phone: bool, to: str, at: datetime, fate: str
    ) -> None:
        rng = self.rng
        sent = fate != "dead"
        sent_at = at + timedelta(seconds=rng.uniform(0.2, 2)) if sent else None
        delivered_at = (
            sent_at + timedelta(seconds=rng.uniform(1, 10))
            if sent_at is not None and fate == "delivered"
            else None
        )
        country = (_pick(rng, COUNTRIES) if phone else "-") if sent else None
        segments = (2 if phone and rng.random() < 0.05 else 1) if sent else None
        self.rows["messages"].append(
            (_id(rng, "msg", at), vid, generation, "sms" if phone else "email")
            + ("twilio" if phone else "smtp", to, fate, 1, at)
            + (None if sent else "the provider refused the message",)
            + ({"undelivered": "30003", "dead": "21610"}.get(fate),)
            + (
                (f"SM{rng.randbytes(16).hex()}" if phone else rng.randbytes(16).hex(),)
                if sent
                else (None,)
            )
            + (country, segments, None, at, sent_at, delivered_at)
        )


def batches(
    count: int,
    start: int,
    end: datetime,
    phone_of: Callable[[int], str],
    rows_per_batch: int,
) -> Iterator[Batch]:
    """Batches (table -> rows) for accounts ``start`` .. ``start + count - 1``.

    Account ``start + k`` signs up at ``end - SPAN + (k + u) * SPAN / count`` (``u`` in
    [0, 1)), with phone ``phone_of(index)`` on the phone arm. Datetimes are naive UTC, as
    verifyd stores them; the caller renders them for its driver.
    """
    step = SPAN / max(count, 1)
    for first in range(start, start + count, rows_per_batch):
        batch = _Batch(Random(first), end, phone_of)
        for i in range(first, min(first + rows_per_batch, start + count)):
            batch.signup(i, end - SPAN + step * (i - start + batch.rng.random()))
        yield batch.rows
