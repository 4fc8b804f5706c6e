"""Admin endpoints of the comparison: the stats, and labels on accounts."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query

from verifyd.api.deps import AdminActor, RuntimeDep
from verifyd.errors import InvalidRequest
from verifyd.flows.comparison import parse_pair
from verifyd.flows.labels import LabelRequest
from verifyd.flows.stats import StatsQuery
from verifyd.schemas import Problem
from verifyd.stats_schemas import BulkLabelsIn, BulkLabelsOut, LabelIn, LabelOut, StatsOut

router = APIRouter(prefix="/v1/admin", tags=["admin"])

#: The body cap of ``POST /v1/admin/labels`` (``verifyd.api.bodylimit``): 10,000 labels
#: with 64-character ids and 500-character reasons are about 6.2 MB of JSON.
BULK_LABELS_PATH = "/v1/admin/labels"
BULK_LABELS_MAX_BYTES = 8 * 1024 * 1024

PROBLEMS: dict[int | str, dict[str, Any]] = {
    code: {"model": Problem, "content": {"application/problem+json": {}}}
    for code in (401, 404, 422)
}


@router.get("/stats", response_model=StatsOut, responses=PROBLEMS)
def stats(
    rt: RuntimeDep,
    _actor: AdminActor,
    since: Annotated[datetime | None, Query(description="Signups from (ISO 8601).")] = None,
    until: Annotated[datetime | None, Query(description="Signups before (ISO 8601).")] = None,
    policy_version: Annotated[int | None, Query(ge=1)] = None,
    compare: Annotated[
        str | None, Query(max_length=64, description="Two versions, `3,5` or `3:phone,5:email`.")
    ] = None,
) -> Any:
    """The comparison per policy version and arm: funnel, time to verify, cost, suspect
    and confirmed-fake rates; for a `split`, and for `compare`, the differences with
    fixed-horizon and always-valid intervals and a verdict."""
    pair = None
    if compare is not None:
        try:
            pair = parse_pair(compare)
        except ValueError as exc:
            raise InvalidRequest.field("invalid_request", "compare", str(exc)) from exc
    for name, value in (("since", since), ("until", until)):
        if value is not None and value.tzinfo is None:
            raise InvalidRequest.field(
                "invalid_request", name, "give a time zone (2026-12-01T00:00:00Z)"
            )
    if since is not None and until is not None and until <= since:
        raise InvalidRequest.field("invalid_request", "until", "until must be after since")
    return rt.stats.report(StatsQuery(since, until, policy_version, pair))


@router.post(
    "/accounts/{account_id}/labels", status_code=201, response_model=LabelOut, responses=PROBLEMS
)
def label_account(
    account_id: Annotated[str, Path(max_length=64)],
    body: LabelIn,
    rt: RuntimeDep,
    actor: AdminActor,
) -> Any:
    """Record what the operator learnt about an account: `fake` or `genuine`."""
    return rt.labels.label(LabelRequest(account_id, body.label, body.reason), actor)


@router.post("/labels", response_model=BulkLabelsOut, responses=PROBLEMS)
def label_accounts(body: BulkLabelsIn, rt: RuntimeDep, actor: AdminActor) -> Any:
    """Label many accounts at once; ids no account has are listed, the rest labelled."""
    return rt.labels.label_many(
        (LabelRequest(i.account_id, i.label, i.reason) for i in body.labels), actor
    )
