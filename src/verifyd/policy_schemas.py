"""The policy document as the admin API reads and writes it (``/v1/admin/policy``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field, StrictInt, StrictStr

from verifyd.schemas import Strict


class SmsKnobsIn(Strict):
    code_length: StrictInt | None = Field(default=None, ge=4, le=10)
    ttl_seconds: StrictInt | None = Field(default=None, ge=30, le=86400)
    max_checks: StrictInt | None = Field(default=None, ge=1, le=20)
    resend_cooldown_seconds: StrictInt | None = Field(default=None, ge=0, le=3600)


class EmailKnobsIn(Strict):
    ttl_seconds: StrictInt | None = Field(default=None, ge=60, le=7 * 86400)


class PolicyIn(Strict):
    """``PUT /v1/admin/policy``: replaces the policy whole; omitted knobs take the defaults.

    ``version``, ``guess_bound``, ``guess_limit``, ``send_limit``, ``changed_at`` and
    ``changed_by`` may be sent back as they were read; they are ignored.
    """

    mode: Literal["phone", "email", "either", "both", "split"]
    weights: dict[str, StrictInt] | None = None
    prefer: Literal["phone", "email"] | None = None
    experiment: StrictStr | None = Field(default=None, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    sms: SmsKnobsIn | None = None
    email: EmailKnobsIn | None = None
    version: int | None = None
    guess_bound: str | None = None
    guess_limit: Any = None
    send_limit: Any = None
    changed_at: Any = None
    changed_by: str | None = None


class SmsKnobsOut(BaseModel):
    code_length: int
    ttl_seconds: int
    max_checks: int
    resend_cooldown_seconds: int


class EmailKnobsOut(BaseModel):
    ttl_seconds: int


class _BackoffOut(BaseModel):
    free: int = Field(description="Events any rolling window allows without waiting (N)")
    window_seconds: int
    backoff_base_seconds: int = Field(description="The first wait past the free events")
    backoff_cap_seconds: int = Field(description="The longest wait between two events")
    longest_owner_lockout_seconds: int = Field(
        description="The longest the owner waits after any burst: min(cap, backoff(K+1))"
    )


class GuessLimitOut(_BackoffOut):
    per_day: int = Field(description="Evaluated guesses any 24 hours allow one destination: N+K")


class SendLimitOut(_BackoffOut):
    per_hour: int = Field(description="Codes or links any hour allows one destination: N+K")


class PolicyOut(BaseModel):
    version: int
    mode: str
    weights: dict[str, int] | None
    prefer: str
    experiment: str | None
    sms: SmsKnobsOut
    email: EmailKnobsOut
    guess_bound: str
    guess_limit: GuessLimitOut
    send_limit: SendLimitOut
    changed_at: datetime | None
    changed_by: str


class PolicyVersionOut(PolicyOut):
    changes: dict[str, list[Any]] = Field(
        description="What this version changed from the one before: field -> [old, new]"
    )


class PolicyHistoryOut(BaseModel):
    versions: list[PolicyVersionOut]
