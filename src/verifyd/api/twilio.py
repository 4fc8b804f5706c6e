"""``/v2``: the Twilio Verify-compatible API, for the official ``twilio`` SDK unchanged.

Form-encoded requests with PascalCase keys, snake_case JSON answers, HTTP Basic auth
with a verify-scoped key (``verifyd admin-key create --scope verify``), and Twilio's
error body (:mod:`verifyd.verify.errors`). The flows are :mod:`verifyd.verify`.
Mounted unless ``VERIFYD_TWILIO_COMPAT=false``.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from verifyd.api.deps import runtime_of
from verifyd.runtime import Runtime
from verifyd.verify import checks, services, starts
from verifyd.verify.params import Form

router = APIRouter(prefix="/v2", tags=["twilio"])

_FORM = "application/x-www-form-urlencoded"


def _form_body(params: tuple[str, ...], required: tuple[str, ...] = ()) -> dict[str, Any]:
    """The OpenAPI ``requestBody`` of a form endpoint (the router reads the body itself)."""
    schema = {
        "type": "object",
        "properties": {p: {"type": "string"} for p in params},
        "additionalProperties": False,
    }
    if required:
        schema["required"] = list(required)
    return {"requestBody": {"required": True, "content": {_FORM: {"schema": schema}}}}


_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"description": "Twilio's error body: {code, message, more_info, status}"}
    for status in (400, 401, 403, 404, 429, 503)
}


async def _account(request: Request) -> tuple[Runtime, str]:
    rt = runtime_of(request)
    account = await run_in_threadpool(
        rt.admin_keys.verify_account, request.headers.get("authorization")
    )
    return rt, account


def _json(body: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(body, status_code=status)


@router.post(
    "/Services",
    status_code=201,
    responses=_ERRORS,
    openapi_extra=_form_body(services.PARAMS, ("FriendlyName",)),
)
async def create_service(request: Request) -> Any:
    """Create a Verify service (Twilio's `CreateService`)."""
    rt, account = await _account(request)
    form = Form.parse(await request.body(), services.PARAMS)
    return _json(await rt.verify.services.create(account, form), 201)


@router.get("/Services", responses=_ERRORS)
async def list_services(request: Request) -> Any:
    """List the credential's services, paged the Twilio way (`PageSize`, `Page`, `PageToken`)."""
    rt, account = await _account(request)
    query = Form(request.query_params.multi_items(), ("PageSize", "Page", "PageToken"))
    return _json(await run_in_threadpool(rt.verify.services.page, account, query))


@router.get("/Services/{service_sid}", responses=_ERRORS)
async def fetch_service(service_sid: str, request: Request) -> Any:
    """One service."""
    rt, account = await _account(request)
    return _json(await run_in_threadpool(rt.verify.services.fetch, account, service_sid))


@router.post(
    "/Services/{service_sid}", responses=_ERRORS, openapi_extra=_form_body(services.PARAMS)
)
async def update_service(service_sid: str, request: Request) -> Any:
    """Change a service's fields."""
    rt, account = await _account(request)
    form = Form.parse(await request.body(), services.PARAMS)
    return _json(await rt.verify.services.update(account, service_sid, form))


@router.delete("/Services/{service_sid}", status_code=204, responses=_ERRORS)
async def delete_service(service_sid: str, request: Request) -> Response:
    """Delete a service (its figures stay in the stats)."""
    rt, account = await _account(request)
    await rt.verify.services.delete(account, service_sid)
    return Response(status_code=204)


@router.post(
    "/Services/{service_sid}/Verifications",
    status_code=201,
    responses=_ERRORS,
    openapi_extra=_form_body(starts.PARAMS, ("To", "Channel")),
)
async def start_verification(service_sid: str, request: Request) -> Any:
    """Start a verification (`sms` or `email`), or send the pending one's code again."""
    rt, account = await _account(request)
    form = Form.parse(await request.body(), starts.PARAMS, starts.UNSUPPORTED)
    return _json(await rt.verify.starts.start(account, service_sid, form), 201)


@router.get("/Services/{service_sid}/Verifications/{sid}", responses=_ERRORS)
async def fetch_verification(service_sid: str, sid: str, request: Request) -> Any:
    """A pending verification (20404 once approved, canceled or expired)."""
    rt, account = await _account(request)
    return _json(await run_in_threadpool(rt.verify.checks.fetch, account, service_sid, sid))


@router.post(
    "/Services/{service_sid}/Verifications/{sid}",
    responses=_ERRORS,
    openapi_extra=_form_body(("Status",), ("Status",)),
)
async def update_verification(service_sid: str, sid: str, request: Request) -> Any:
    """`Status=canceled` or `Status=approved`."""
    rt, account = await _account(request)
    form = Form.parse(await request.body(), ("Status",))
    return _json(await rt.verify.checks.update(account, service_sid, sid, form))


@router.post(
    "/Services/{service_sid}/VerificationCheck",
    responses=_ERRORS,
    openapi_extra=_form_body(checks.PARAMS, ("Code",)),
)
async def check_verification(service_sid: str, request: Request) -> Any:
    """Check a code: `200` with `status: approved` or, for a wrong code, `pending`."""
    rt, account = await _account(request)
    form = Form.parse(await request.body(), checks.PARAMS, checks.UNSUPPORTED)
    return _json(await rt.verify.checks.check(account, service_sid, form))
