"""Request-scoped dependencies: the runtime, the caller's address, the admin actor."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request

from verifyd.runtime import Runtime


# The two below are ``async`` although they never wait: FastAPI runs a plain ``def``
# dependency in its thread pool, a thread hop per request on the hot path.
async def runtime(request: Request) -> Runtime:
    """The process's runtime, attached by ``create_app``."""
    rt: Runtime = request.app.state.runtime
    return rt


RuntimeDep = Annotated[Runtime, Depends(runtime)]


async def client_ip(request: Request) -> str:
    """The caller's address; ``X-Forwarded-For`` only from a trusted proxy."""
    rt: Runtime = request.app.state.runtime
    peer = request.client.host if request.client else "unknown"
    if peer in rt.settings.trusted_proxies:
        forwarded = request.headers.get("x-forwarded-for", "")
        hops = [h.strip() for h in forwarded.split(",") if h.strip()]
        for hop in reversed(hops):
            if hop not in rt.settings.trusted_proxies:
                return hop[:64]
    return peer


ClientIp = Annotated[str, Depends(client_ip)]


def admin_actor(
    request: Request,
    authorization: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> str:
    """Authenticate the admin bearer key; returns ``key:<name>``."""
    rt: Runtime = request.app.state.runtime
    return rt.admin_keys.authenticate(authorization)


AdminActor = Annotated[str, Depends(admin_actor)]
