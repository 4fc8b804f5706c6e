"""Ops endpoints: liveness and readiness."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from verifyd import health
from verifyd.api.deps import RuntimeDep
from verifyd.schemas import Health

router = APIRouter(tags=["ops"])


@router.get("/healthz", response_model=Health)
async def healthz() -> Any:
    """The process is up."""
    return {"status": "ok", "checks": {}}


@router.get("/readyz", response_model=Health, responses={503: {"model": Health}})
async def readyz(rt: RuntimeDep) -> Any:
    """The database answers and its migrations are current."""
    checks = await run_in_threadpool(health.readiness, rt.db)
    ready = all(v == "ok" for v in checks.values())
    return JSONResponse(
        {"status": "ok" if ready else "unavailable", "checks": checks},
        status_code=200 if ready else 503,
    )
