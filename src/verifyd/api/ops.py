"""Ops endpoints: liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from verifyd import floors, health, outages
from verifyd.api.deps import RuntimeDep
from verifyd.api.handlers import error_response
from verifyd.codes import same
from verifyd.errors import Unauthorized, Unavailable
from verifyd.metrics import CONTENT_TYPE, Metrics
from verifyd.schemas import Health, Problem

router = APIRouter(tags=["ops"])


@router.get("/healthz", response_model=Health)
async def healthz() -> Any:
    """The process is up."""
    return {"status": "ok", "checks": {}}


@router.get(
    "/readyz",
    response_model=Health,
    responses={
        503: {
            "model": Problem,
            "description": "Not ready: `database_unavailable` or `migrations_behind`, "
            "with every check's state in `checks`",
        }
    },
)
async def readyz(rt: RuntimeDep) -> Any:
    """The database answers and its migrations are current.

    Not ready is a 503 problem (``database_unavailable`` or ``migrations_behind``)
    that still lists each check. It answers within the connect timeout however the
    database fails, so a load balancer's probe never hangs on it.
    """
    checks = await run_in_threadpool(health.readiness, rt.db)
    if all(v == "ok" for v in checks.values()):
        return JSONResponse({"status": "ok", "checks": checks})
    if checks.get("database") != "ok":
        code, detail = "database_unavailable", "the database does not answer"
    else:
        code, detail = "migrations_behind", "the database is behind its migrations"
    return error_response(
        Unavailable(code, detail, retry_after=outages.RETRY_AFTER, extra={"checks": checks})
    )


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {
            "description": "Prometheus text format 0.0.4",
            "content": {"text/plain": {"schema": {"type": "string"}}},
        },
        401: {"description": "`VERIFYD_METRICS_TOKEN` is set and the bearer token is not it"},
    },
)
async def metrics(request: Request, rt: RuntimeDep) -> Response:
    """Prometheus metrics (text format 0.0.4).

    Business counters and outbox gauges come from the database, so every worker and
    replica answers the same; provider latency and rate-limit hits are this process's
    (every worker's, with `PROMETHEUS_MULTIPROC_DIR`). Labels never carry a phone
    number, an address or an id.
    """
    token = rt.settings.metrics_token
    if token is not None:
        # Read here, not as a parameter: one would add a 422 answer to the document.
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not same(given.strip(), token.get_secret_value()):
            raise Unauthorized("unauthorized", "a metrics token is required (Bearer …)")
    # One per app, made on the first scrape: it holds the database figures' cache.
    exporter: Metrics | None = getattr(request.app.state, "metrics", None)
    if exporter is None:
        warned = [w.setting for w in floors.warnings(rt.settings)]
        exporter = request.app.state.metrics = Metrics(rt.db, config_warnings=warned)
    body = await run_in_threadpool(exporter.render)
    return Response(body, media_type=CONTENT_TYPE)
