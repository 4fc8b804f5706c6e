"""Ops endpoints: liveness and readiness."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text
from starlette.concurrency import run_in_threadpool

from verifyd import migrate
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

    def probe() -> dict[str, str]:
        checks = {}
        try:
            with rt.db.read() as conn:
                conn.execute(text("SELECT 1"))
            checks["database"] = "ok"
            checks["migrations"] = "ok" if migrate.is_current(rt.db.reader) else "behind"
        except Exception as exc:  # any failure means not ready
            checks["database"] = f"error: {type(exc).__name__}"
        return checks

    checks = await run_in_threadpool(probe)
    ready = all(v == "ok" for v in checks.values()) and len(checks) == 2
    return JSONResponse(
        {"status": "ok" if ready else "unavailable", "checks": checks},
        status_code=200 if ready else 503,
    )
