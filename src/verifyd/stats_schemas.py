"""Bodies of the comparison's endpoints: labels in, stats out (see docs/stats.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field, StrictStr

from verifyd.schemas import Strict

LabelName = Literal["fake", "genuine"]


class LabelIn(Strict):
    """``POST /v1/admin/accounts/{id}/labels``."""

    label: LabelName
    reason: StrictStr | None = Field(default=None, max_length=500)


class LabelOut(BaseModel):
    """A label as recorded."""

    account_id: str
    label: LabelName
    reason: str | None
    previous: LabelName | None = Field(description="The label this one replaced, if any.")
    labelled_by: str
    labelled_at: datetime


class BulkLabel(Strict):
    account_id: StrictStr = Field(max_length=64)
    label: LabelName
    reason: StrictStr | None = Field(default=None, max_length=500)


class BulkLabelsIn(Strict):
    """``POST /v1/admin/labels``: many accounts at once."""

    labels: list[BulkLabel] = Field(min_length=1, max_length=10_000)


class BulkLabelsOut(BaseModel):
    """How many were labelled, per label, and the ids no account has."""

    labelled: int
    by_label: dict[LabelName, int]
    not_found: list[str]


class StatsVersion(BaseModel):
    """One policy version: its arms' figures and, for ``split``, their comparison."""

    policy_version: int
    mode: str | None
    weights: dict[str, int] | None
    experiment: str | None
    changed_at: datetime | None
    arms: list[dict[str, Any]] = Field(description="Per arm: see docs/stats.md for every field.")
    comparison: dict[str, Any] | None = None


class Rate(BaseModel):
    """``count`` of ``of``, the rate and its 95 % Wilson interval (null when ``of`` is 0)."""

    count: int
    of: int
    rate: float | None
    interval: list[float] | None


class VerifyMessages(BaseModel):
    """Messages a provider accepted (first sends and resends), delivered and failed."""

    sent: int
    first_sends: int
    resends: int = Field(description="Codes sent again: a start for the same To, or a resend.")
    delivered: int
    failed: int


class VerifyChecks(BaseModel):
    """Code checks: wrong ones, approving ones, and checks per approval."""

    incorrect: int
    approved: int
    per_approval: float | None


class VerifyCost(BaseModel):
    """The spend under the price list (nulls without one), in the answer's ``currency``."""

    total: float | None
    per_approved: float | None
    unpriced: int = Field(description="Messages sent with no price in the list.")


class VerifyFigures(BaseModel):
    """Verifications started through ``/v2`` and what became of them."""

    started: int
    approved: int
    canceled: int
    expired: int
    max_attempts: int = Field(description="Every check used (Twilio's 60202).")
    pending: int
    conversion: Rate = Field(description="Approved of started.")
    messages: VerifyMessages
    checks: VerifyChecks
    cost: VerifyCost


class VerifyChannel(VerifyFigures):
    """One channel of a service, as Twilio names it."""

    channel: str = Field(description="Twilio's channel name: `sms`, `email`.")


class Blocked(BaseModel):
    """Refusals, in all and by reason."""

    total: int
    by_reason: dict[str, int]


class TimeToVerify(BaseModel):
    """Start to approval: count, median and 90th percentile (seconds), and the buckets."""

    count: int
    p50: float | None
    p90: float | None
    histogram: list[dict[str, int | None]] = Field(
        description="Non-empty buckets, `{le: seconds (null: beyond the last), count}`."
    )


class VerifyServiceStats(BaseModel):
    """A Verify service of the Twilio-compatible surface, with its figures per channel."""

    sid: str | None = Field(description="`VA…`; null for counters of a service row gone.")
    friendly_name: str | None
    deleted_at: datetime | None = Field(description="Set for a deleted service: its stats stay.")
    channels: list[VerifyChannel]
    total: VerifyFigures = Field(description="Every channel together.")
    blocked: Blocked = Field(description="Sends refused, by reason (an SMS-pumping breaker).")
    time_to_verify: TimeToVerify


class StatsOut(BaseModel):
    """``GET /v1/admin/stats``."""

    since: datetime | None
    until: datetime | None
    generated_at: datetime
    currency: str | None = Field(description="Of every cost; null when no prices are set.")
    versions: list[StatsVersion] = Field(description="The signup policies, newest first.")
    verify_services: list[VerifyServiceStats] = Field(
        description="Verifications started through `/v2`, per service and channel; "
        "not narrowed by `policy_version`."
    )
    compare: dict[str, Any] | None = Field(
        default=None, description="The two versions (or version:arm) of `compare`, b - a."
    )
