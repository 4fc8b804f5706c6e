"""``create_app(settings)``: the one place that wires verifyd together."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from verifyd import __version__
from verifyd.api import admin, dashboard, handlers, ops, public, receipts, stats, twilio
from verifyd.api.bodylimit import BodyLimit
from verifyd.api.requestid import install_request_ids
from verifyd.registry import Registry
from verifyd.runtime import Runtime, build_runtime
from verifyd.settings import Settings

access_log = logging.getLogger("verifyd.access")


class AccessLog:
    """Logs method, path (never the query: it can carry a token) and status.

    It replaces uvicorn's access log, which prints query strings.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not access_log.isEnabledFor(logging.INFO):
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def capture(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            client = scope.get("client") or ("-", 0)
            query = "?[redacted]" if scope.get("query_string") else ""
            method, path, ms = scope["method"], scope["path"], (time.perf_counter() - start) * 1000
            access_log.info(
                '%s "%s %s%s" %d %.1fms',
                client[0],
                method,
                path,
                query,
                status,
                ms,
                extra={"method": method, "path": path, "status": status, "ms": round(ms, 1)},
            )


def create_app(settings: Settings, *, registry: Registry | None = None) -> FastAPI:
    """Build the ASGI app for these settings.

    The outbox dispatcher runs inside the app's lifespan. Migrations are not applied
    here: ``verifyd serve`` (development) or ``verifyd migrate`` does that.

    Args:
        settings: The settings to run with.
        registry: The plugins; by default read from the installed entry points.
    """
    rt: Runtime = build_runtime(settings, registry)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # Everything built so far lives as long as the process: moved out of the
        # collector's sight, a full collection no longer walks it, which took the
        # flow's p99 at c=16 from about 60 ms to about 20 ms (bench/).
        gc.collect()
        gc.freeze()
        # ``VERIFYD_DISPATCHER=off``: a separate ``verifyd worker`` delivers instead.
        task = (
            asyncio.create_task(rt.dispatcher.run(), name="verifyd-outbox")
            if settings.dispatcher == "inprocess"
            else None
        )
        try:
            yield
        finally:
            if task is not None:
                # Let the sends in flight record their outcome, hand back the rest
                # (see Dispatcher.stop); past the grace, abandon what is mid-call.
                rt.dispatcher.stop()
                finished, _pending = await asyncio.wait(
                    [task], timeout=settings.shutdown_grace_seconds
                )
                if not finished:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
            for provider in rt.providers.values():
                await provider.aclose()
            rt.db.dispose()

    # Off (production's default), the documents answer 404 like any unknown path: the
    # API's shape is no secret (openapi.yaml ships), but a public server need not serve it.
    docs = bool(settings.api_docs)
    app = FastAPI(
        title="verifyd",
        version=__version__,
        summary="Account verification by SMS code or email link, under a policy you can compare.",
        lifespan=lifespan,
        docs_url="/docs" if docs else None,
        redoc_url="/redoc" if docs else None,
        openapi_url="/openapi.json" if docs else None,
    )
    app.state.runtime = rt
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    handlers.install(app)
    app.include_router(public.router)
    if settings.sandbox_on:
        app.include_router(public.sandbox_router)
    app.include_router(admin.router)
    app.include_router(stats.router)
    app.include_router(dashboard.router)
    app.include_router(receipts.router)
    if settings.twilio_compat:
        app.include_router(twilio.router)
    app.include_router(ops.router)
    # Inside the access log (which then logs its 413s and 408s), outside every route.
    app.add_middleware(
        BodyLimit,
        max_bytes=settings.max_body_bytes,
        timeout=settings.body_timeout_seconds,
        larger={stats.BULK_LABELS_PATH: stats.BULK_LABELS_MAX_BYTES},
        twilio_prefix=twilio.router.prefix if settings.twilio_compat else None,
    )
    if settings.access_log:
        app.add_middleware(AccessLog)
    install_request_ids(app)  # outermost, outside even the 500 handler
    return app


#: The tags of ``openapi.yaml``, in the order a reader meets them.
TAGS = [
    {"name": "public", "description": "What a signup frontend calls: the policy, the "
     "signup, checks, resends and the email link. No credentials."},
    {"name": "sandbox", "description": "What the sandbox delivered (sandbox on only)."},
    {"name": "admin", "description": "The operator's API: policy, outbox, breakers, stats, "
     "labels. `Authorization: Bearer vdk_…` (an admin-scoped key)."},
    {"name": "providers", "description": "Callbacks from delivery providers (Twilio's "
     "status callbacks, signed)."},
    {"name": "twilio", "description": "The Twilio Verify-compatible API, for the official "
     "`twilio` SDK: form-encoded requests, snake_case JSON, Twilio's error body and codes. "
     "HTTP Basic with a verify-scoped key (`verifyd admin-key create --scope verify`). "
     "Off with `VERIFYD_TWILIO_COMPAT=false`. Guide: docs/twilio.md."},
    {"name": "ops", "description": "Probes and metrics."},
]  # fmt: skip
#: The admin API's security scheme.
ADMIN_KEY = "adminKey"


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document, with every error answer documented as problem+json.

    Under ``/v2`` the errors are Twilio's body instead (``twilio.document``). The admin
    API and ``/v2`` name their security schemes.
    """
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(
        title=app.title, version=app.version, summary=app.summary, routes=app.routes, tags=TAGS
    )
    problem_ref = {"$ref": "#/components/schemas/Problem"}
    for path, path_item in schema["paths"].items():
        if twilio.under(path):
            continue
        for operation in path_item.values():
            if path.startswith(admin.router.prefix + "/"):
                operation["security"] = [{ADMIN_KEY: []}]
            for status, answer in operation.get("responses", {}).items():
                if status.isdigit() and int(status) >= 400:
                    answer["content"] = {"application/problem+json": {"schema": problem_ref}}
                    if status == "422":
                        answer["description"] = "Invalid request (problem+json with `errors`)"
    components = schema.setdefault("components", {})
    for unused in ("HTTPValidationError", "ValidationError"):
        components.get("schemas", {}).pop(unused, None)
    components.setdefault("securitySchemes", {})[ADMIN_KEY] = {
        "type": "http",
        "scheme": "bearer",
        "description": "An admin-scoped key, `vdk_…` (`verifyd admin-key create`).",
    }
    twilio.document(schema)
    app.openapi_schema = schema
    return schema


def app_from_env() -> Any:
    """The app with settings from the environment (uvicorn's ``--factory`` target)."""
    return create_app(Settings())
