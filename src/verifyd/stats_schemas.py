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


class StatsOut(BaseModel):
    """``GET /v1/admin/stats``."""

    since: datetime | None
    until: datetime | None
    generated_at: datetime
    currency: str | None = Field(description="Of every cost; null when no prices are set.")
    versions: list[StatsVersion]
    compare: dict[str, Any] | None = Field(
        default=None, description="The two versions (or version:arm) of `compare`, b - a."
    )
