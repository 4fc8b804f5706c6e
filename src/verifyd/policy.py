"""The verification policy as data: modes, split assignment, what a signup must give."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from verifyd.slidinglimit import Bounds

Mode = Literal["phone", "email", "either", "both", "split"]
Identity = Literal["phone", "email"]
MODES: tuple[Mode, ...] = ("phone", "email", "either", "both", "split")
IDENTITIES: tuple[Identity, ...] = ("phone", "email")
BUCKETS = 10_000
MAX_WEIGHT = 1_000_000


@dataclass(frozen=True)
class SmsKnobs:
    """How codes behave under a policy: by SMS, and by email (the ``email_code`` channel)."""

    code_length: int = 4
    ttl_seconds: int = 600
    max_checks: int = 5
    resend_cooldown_seconds: int = 30


@dataclass(frozen=True)
class EmailKnobs:
    """How email links behave under a policy."""

    ttl_seconds: int = 86400


@dataclass(frozen=True)
class Requirement:
    """What a signup must give: all of ``require``, and one of ``one_of`` when non-empty."""

    require: tuple[Identity, ...]
    one_of: tuple[Identity, ...] = ()


@dataclass(frozen=True)
class Policy:
    """One version of the policy document (``PUT /v1/admin/policy`` replaces it whole)."""

    mode: Mode
    version: int = 0
    weights: dict[str, int] | None = None
    prefer: Identity = "email"
    experiment: str | None = None
    sms: SmsKnobs = field(default_factory=SmsKnobs)
    email: EmailKnobs = field(default_factory=EmailKnobs)
    salt: str = ""
    changed_at: datetime | None = None
    changed_by: str = ""

    def arm_for(self, subject: str | None) -> Mode:
        """The arm a subject is assigned: the mode itself unless ``split``.

        ``bucket = int(sha256(salt ‖ subject)[:8]) mod 10000`` against the cumulative
        weights, in the order phone, email. Without a subject a random one is drawn.
        """
        if self.mode != "split":
            return self.mode
        weights = self.weights or {}
        total = sum(weights.get(arm, 0) for arm in IDENTITIES)
        if subject is None:
            subject = secrets.token_hex(16)
        digest = hashlib.sha256(self.salt.encode() + subject.encode()).digest()
        bucket = int.from_bytes(digest[:8], "big") % BUCKETS
        cumulative = 0
        for arm in IDENTITIES:
            cumulative += weights.get(arm, 0)
            if bucket * total < cumulative * BUCKETS:
                return arm
        return IDENTITIES[-1]  # unreachable while total > 0

    def form(self, subject: str | None) -> dict[str, Any]:
        """What a signup form must collect for a subject (``GET /v1/policy``).

        Under ``split`` without a subject, a fresh opaque ``subject`` is drawn and
        returned: the frontend sends it back with the signup, so both calls agree on
        the arm (a signup without one would draw an arm of its own).
        """
        answer: dict[str, Any] = {}
        if self.mode == "split" and subject is None:
            subject = answer["subject"] = f"sub_{secrets.token_urlsafe(16)}"
        arm = self.arm_for(subject)
        requirement = self.requirement(arm)
        return {
            "policy_version": self.version,
            "mode": self.mode,
            "arm": arm,
            "require": list(requirement.require),
            "one_of": list(requirement.one_of),
            **answer,
        }

    @staticmethod
    def requirement(arm: Mode) -> Requirement:
        """What an arm (a non-split mode) needs from the signup."""
        if arm == "phone":
            return Requirement(("phone",))
        if arm == "email":
            return Requirement(("email",))
        if arm == "both":
            return Requirement(("phone", "email"))
        if arm == "either":
            return Requirement((), ("phone", "email"))
        raise ValueError(f"not an arm: {arm}")

    def guess_bound(self, guesses_per_day: int) -> str:
        """The chance of guessing a code with ``guesses_per_day`` evaluated guesses.

        Args:
            guesses_per_day: The most guesses any 24 hours allow one destination
                (:attr:`verifyd.slidinglimit.Backoff.bound`, not the free budget alone).
        """
        odds = max(1, 10**self.sms.code_length // max(1, guesses_per_day))
        return f"1 in {odds:,} per destination per day"

    def document(self, bounds: Bounds) -> dict[str, Any]:
        """The public policy document (the salt stays private).

        Args:
            bounds: The per-destination limits of the running settings; the document
                states what they allow (read only: settings, not policy, change them).
        """
        return {
            "version": self.version,
            **self._knobs_document(),
            "guess_bound": self.guess_bound(bounds.guesses.bound),
            **bounds.describe(),
            "changed_at": self.changed_at.isoformat() if self.changed_at else None,
            "changed_by": self.changed_by,
        }

    def _knobs_document(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "weights": dict(self.weights) if self.weights is not None else None,
            "prefer": self.prefer,
            "experiment": self.experiment,
            "sms": {
                "code_length": self.sms.code_length,
                "ttl_seconds": self.sms.ttl_seconds,
                "max_checks": self.sms.max_checks,
                "resend_cooldown_seconds": self.sms.resend_cooldown_seconds,
            },
            "email": {"ttl_seconds": self.email.ttl_seconds},
        }

    def knobs(self) -> dict[str, Any]:
        """What makes two versions different (version, salt and audit fields excluded)."""
        return {
            "mode": self.mode,
            "weights": self.weights,
            "prefer": self.prefer,
            "experiment": self.experiment,
            "sms": self.sms,
            "email": self.email,
        }

    def stored(self) -> dict[str, Any]:
        """The document as stored in ``policy_versions.document``."""
        return self._knobs_document()

    @classmethod
    def from_stored(
        cls, version: int, doc: dict[str, Any], salt: str, changed_at: datetime, changed_by: str
    ) -> Policy:
        """Rebuild a version from its stored row."""
        return cls(
            mode=doc["mode"],
            version=version,
            weights=doc.get("weights"),
            prefer=doc.get("prefer", "email"),
            experiment=doc.get("experiment"),
            sms=SmsKnobs(**doc["sms"]),
            email=EmailKnobs(**doc["email"]),
            salt=salt,
            changed_at=changed_at,
            changed_by=changed_by,
        )


def changes(older: dict[str, Any] | None, newer: dict[str, Any]) -> dict[str, list[Any]]:
    """What a policy document changed from the one before it: ``field -> [old, new]``."""
    out: dict[str, list[Any]] = {}
    for key in ("mode", "weights", "prefer", "experiment", "sms", "email"):
        before = older[key] if older else None
        if before != newer[key]:
            out[key] = [before, newer[key]]
    return out


def with_changes(documents: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Policy documents, newest first, each with what it changed from the one after it."""
    return [
        {**doc, "changes": changes(older, doc)}
        for doc, older in zip(documents, [*documents[1:], None], strict=True)
    ]


def validate_weights(weights: dict[str, int]) -> dict[str, int]:
    """Check split weights: arms ``phone``/``email``, non-negative integers, not all zero.

    Raises:
        ValueError: with a message naming the problem.
    """
    unknown = set(weights) - set(IDENTITIES)
    if unknown:
        raise ValueError(f"unknown arm(s): {', '.join(sorted(unknown))}; arms are phone, email")
    if any(isinstance(w, bool) or not isinstance(w, int) or w < 0 for w in weights.values()):
        raise ValueError("weights must be non-negative integers")
    if any(w > MAX_WEIGHT for w in weights.values()):
        raise ValueError(f"weights must be at most {MAX_WEIGHT:,}")
    if sum(weights.values()) == 0:
        raise ValueError("weights must not all be zero")
    return {arm: weights.get(arm, 0) for arm in IDENTITIES}


def next_version(
    current: Policy | None,
    proposed: Policy,
    *,
    salt_of: dict[str, str],
) -> Policy | None:
    """The version a change creates, or ``None`` when it changes nothing.

    Args:
        current: The active version (``None`` before the first).
        proposed: The new document; version, salt and audit fields are filled here.
        salt_of: Salts of experiments run before, by experiment name, so naming an
            earlier experiment resumes its assignment.

    Returns:
        The new version, or ``None`` for an identical document.
    """
    if proposed.mode == "split":
        experiment = proposed.experiment
        if experiment is None:
            running = (
                current.experiment if current is not None and current.mode == "split" else None
            )
            experiment = running or f"exp_{secrets.token_hex(3)}"
        salt = salt_of.get(experiment) or secrets.token_hex(16)
        if current is not None and current.experiment == experiment:
            salt = current.salt
        proposed = replace(proposed, experiment=experiment, salt=salt)
    else:
        proposed = replace(
            proposed, weights=None, experiment=None, salt=current.salt if current else ""
        )
    if current is not None and current.knobs() == proposed.knobs():
        return None
    return replace(proposed, version=(current.version if current else 0) + 1)
