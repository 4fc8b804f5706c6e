"""Admin endpoints behind a bearer API key: the policy, its history, the outbox, breakers."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Path, Query, Response

from verifyd.api.deps import AdminActor, RuntimeDep
from verifyd.errors import InvalidRequest
from verifyd.policy import with_changes
from verifyd.policy_schemas import PolicyHistoryOut, PolicyIn, PolicyOut
from verifyd.policystore import from_request
from verifyd.schemas import BreakersOut, MessagesOut, Problem, RedriveIn, RedriveOut
from verifyd.slidinglimit import Bounds

router = APIRouter(prefix="/v1/admin", tags=["admin"])

PROBLEMS: dict[int | str, dict[str, Any]] = {
    code: {"model": Problem, "content": {"application/problem+json": {}}} for code in (401, 422)
}


@router.get("/policy", response_model=PolicyOut, responses=PROBLEMS)
def get_policy(rt: RuntimeDep, _actor: AdminActor) -> Any:
    """The active policy document."""
    return rt.policies.current().document(Bounds.of(rt.settings))


@router.put("/policy", response_model=PolicyOut, responses=PROBLEMS)
def put_policy(body: PolicyIn, rt: RuntimeDep, actor: AdminActor) -> Any:
    """Replace the policy whole. An identical document creates no new version."""
    proposed = from_request(rt.settings, body.model_dump())
    policy, _ = rt.policies.change(proposed, actor)
    return policy.document(Bounds.of(rt.settings))


@router.get("/policy/history", response_model=PolicyHistoryOut, responses=PROBLEMS)
def policy_history(rt: RuntimeDep, _actor: AdminActor) -> Any:
    """Every version, newest first, each with what it changed (old -> new)."""
    bounds = Bounds.of(rt.settings)
    rt.policies.current()  # a fresh database gets its first version before it has a history
    versions = with_changes([p.document(bounds) for p in rt.policies.history(limit=501)])
    return {"versions": versions[:500]}


@router.get("/messages", response_model=MessagesOut, responses=PROBLEMS)
def list_messages(
    rt: RuntimeDep,
    _actor: AdminActor,
    status: str = Query("dead", description="A message state, or `all`."),
    limit: int = Query(50, description="Page size, 1–200."),
    cursor: str | None = Query(None, max_length=64),
) -> Any:
    """Outbox messages, newest first, destinations masked: by default the dead letters."""
    page, next_cursor = rt.messages.page(
        None if status == "all" else status, limit=limit, before=cursor
    )
    return {"messages": page, "next_cursor": next_cursor}


@router.post("/messages/redrive", response_model=RedriveOut, responses=PROBLEMS)
def redrive_messages(body: RedriveIn, rt: RuntimeDep, actor: AdminActor) -> Any:
    """Queue dead messages again on their chain's first provider; each skip says why."""
    if (body.ids is None) == (not body.all):
        raise InvalidRequest.field(
            "invalid_request", "ids", "give either ids or all: true, not both and not neither"
        )
    result = rt.messages.redrive(None if body.all else body.ids, actor)
    return {"redriven": result.redriven, "skipped": result.skipped}


@router.get("/breakers", response_model=BreakersOut, responses=PROBLEMS)
def list_breakers(rt: RuntimeDep, _actor: AdminActor) -> Any:
    """The SMS-pumping breakers holding sends now (lifted and expired ones are gone)."""
    return {"breakers": rt.pumping.active()}


@router.delete(
    "/breakers/{breaker_id}",
    status_code=204,
    response_class=Response,
    responses={**PROBLEMS, 404: PROBLEMS[401], 204: {"description": "Lifted"}},
)
async def lift_breaker(
    rt: RuntimeDep, actor: AdminActor, breaker_id: str = Path(max_length=64)
) -> Response:
    """Lift one breaker now: sends to its prefix or country flow again (audited)."""
    await rt.pumping.lift(breaker_id, actor)
    return Response(status_code=204)
