"""Request-scoped dependencies: the runtime, the caller's address, the admin actor."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request

from verifyd.runtime import Runtime


def runtime_of(request: Request) -> Runtime:
    """The process's runtime, attached by ``create_app``."""
    rt: Runtime = request.app.state.runtime
    return rt


# The two below are ``async`` although they never wait: FastAPI runs a plain ``def``
# dependency in its thread pool, a thread hop per request. The OTP flow's endpoints
# skip even these and call ``runtime_of`` and ``address_of`` themselves.
async def runtime(request: Request) -> Runtime:
    """The process's runtime (as a dependency)."""
    return runtime_of(request)


RuntimeDep = Annotated[Runtime, Depends(runtime)]


async def client_ip(request: Request) -> str:
    """The caller's address (as a dependency)."""
    return address_of(request)


def address_of(request: Request) -> str:
    """The caller's address; ``X-Forwarded-For`` only from a trusted proxy."""
    peer = request.client.host if request.client else "unknown"
    return runtime_of(request).proxies.client(peer, request.headers.get("x-forwarded-for", ""))


ClientIp = Annotated[str, Depends(client_ip)]


def admin_actor(
    request: Request,
    authorization: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> str:
    """Authenticate the admin bearer key; returns ``key:<name>``."""
    rt: Runtime = request.app.state.runtime
    return rt.admin_keys.authenticate(authorization)


AdminActor = Annotated[str, Depends(admin_actor)]
