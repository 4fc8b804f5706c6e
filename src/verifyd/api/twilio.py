"""``/v2``: the Twilio Verify-compatible API, for the official ``twilio`` SDK unchanged.

Form-encoded requests with PascalCase keys, snake_case JSON answers, HTTP Basic auth
with a verify-scoped key (``verifyd admin-key create --scope verify``), and Twilio's
error body (:mod:`verifyd.verify.errors`). The flows are :mod:`verifyd.verify`.
Mounted unless ``VERIFYD_TWILIO_COMPAT=false``.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from verifyd.api.deps import runtime_of
from verifyd.runtime import Runtime
from verifyd.verify import checks, forms, schemas, services, starts
from verifyd.verify.params import Form

router = APIRouter(prefix="/v2", tags=["twilio"])

#: The query of ``GET /v2/Services`` and the form of ``POST …/Verifications/{sid}``.
_PAGE = ("PageSize", "Page", "PageToken")
_STATUS = ("Status",)
#: Twilio's codes behind each error status of ``/v2`` (``docs/twilio.md`` has the table).
_CODES = {
    400: "60200 (a parameter, named), 60205, 60221, 60223",
    401: "20003: missing or unknown credentials",
    403: "20003 (an admin key), 60410 (pumping hold), 60605 (country not allowed)",
    404: "20404: no such service or verification, or one no longer pending",
    429: "20429, 60202 (max check attempts), 60203 (max send attempts), 60212 (concurrent)",
    503: "20503: the database is unavailable (`Retry-After`)",
}


ServiceSid = Annotated[str, Path(description="The service: `VA` and 32 hex digits")]
VerificationSid = Annotated[str, Path(description="The verification: `VE` and 32 hex digits")]


def _errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The documented error answers: these, and what every ``/v2`` request can get."""
    return {
        status: {"model": schemas.TwilioError, "description": _CODES[status]}
        for status in sorted({*statuses, 401, 403, 503})
    }


#: The security scheme's name, as in Twilio's own OpenAPI file.
BASIC = "accountSid_authToken"
_ERROR_REF = {"$ref": "#/components/schemas/TwilioError"}


def document(schema: dict[str, Any]) -> None:
    """Finish the ``/v2`` operations of an OpenAPI document (``app._openapi`` calls it).

    Every error answer is Twilio's body (``application/json``, never problem+json); no
    ``422`` (nothing here is validated by FastAPI: a bad parameter is 60200); HTTP Basic.
    """
    operations = [
        op for path, item in schema["paths"].items() if under(path) for op in item.values()
    ]
    if not operations:  # VERIFYD_TWILIO_COMPAT=false
        return
    components = schema.setdefault("components", {})
    components.setdefault("schemas", {}).setdefault(
        "TwilioError", schemas.TwilioError.model_json_schema()
    )
    components.setdefault("securitySchemes", {})[BASIC] = {
        "type": "http",
        "scheme": "basic",
        "description": "The account SID (`AC…`) as the user and the auth token as the "
        "password, from `verifyd admin-key create --scope verify`.",
    }
    for operation in operations:
        answers = operation.get("responses", {})
        answers.pop("422", None)
        for status, answer in answers.items():
            if status.isdigit() and int(status) >= 400:
                answer["content"] = {"application/json": {"schema": dict(_ERROR_REF)}}
        operation["security"] = [{BASIC: []}]


def under(path: str) -> bool:
    """Whether an OpenAPI path is this router's."""
    return path == router.prefix or path.startswith(router.prefix + "/")


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
    operation_id="CreateService",
    response_description="The new service",
    response_model=schemas.Service,
    responses=_errors(400),
    openapi_extra=forms.body(services.PARAMS, ("FriendlyName",)),
)
async def create_service(request: Request) -> Any:
    """Create a Verify service (Twilio's `CreateService`)."""
    rt, account = await _account(request)
    form = Form.parse(await request.body(), services.PARAMS)
    return _json(await rt.verify.services.create(account, form), 201)


@router.get(
    "/Services",
    operation_id="ListService",
    response_description="One page of services",
    response_model=schemas.ServicePage,
    responses=_errors(400),
    openapi_extra=forms.query(_PAGE),
)
async def list_services(request: Request) -> Any:
    """List the credential's services, paged the Twilio way (`PageSize`, `Page`, `PageToken`)."""
    rt, account = await _account(request)
    query = Form(request.query_params.multi_items(), _PAGE)
    return _json(await run_in_threadpool(rt.verify.services.page, account, query))


@router.get(
    "/Services/{service_sid}",
    operation_id="FetchService",
    response_description="The service",
    response_model=schemas.Service,
    responses=_errors(404),
)
async def fetch_service(service_sid: ServiceSid, request: Request) -> Any:
    """One service."""
    rt, account = await _account(request)
    return _json(await run_in_threadpool(rt.verify.services.fetch, account, service_sid))


@router.post(
    "/Services/{service_sid}",
    operation_id="UpdateService",
    response_description="The service as changed",
    response_model=schemas.Service,
    responses=_errors(400, 404),
    openapi_extra=forms.body(services.PARAMS),
)
async def update_service(service_sid: ServiceSid, request: Request) -> Any:
    """Change a service's fields; the others keep their values."""
    rt, account = await _account(request)
    form = Form.parse(await request.body(), services.PARAMS)
    return _json(await rt.verify.services.update(account, service_sid, form))


@router.delete(
    "/Services/{service_sid}",
    status_code=204,
    operation_id="DeleteService",
    response_description="Deleted",
    responses=_errors(404),
)
async def delete_service(service_sid: ServiceSid, request: Request) -> Response:
    """Delete a service (its figures stay in the stats)."""
    rt, account = await _account(request)
    await rt.verify.services.delete(account, service_sid)
    return Response(status_code=204)


@router.post(
    "/Services/{service_sid}/Verifications",
    status_code=201,
    operation_id="CreateVerification",
    response_description="The pending verification (new, or sent again)",
    response_model=schemas.Verification,
    responses=_errors(400, 404, 429),
    openapi_extra=forms.body(starts.PARAMS, ("To", "Channel")),
)
async def start_verification(service_sid: ServiceSid, request: Request) -> Any:
    """Start a verification (`sms` or `email`), or send the pending one's code again.

    Starting again for the same `To` and channel while the code is alive sends the same
    code on the same verification (one more `send_code_attempts` entry), up to 5 sends.
    """
    rt, account = await _account(request)
    form = Form.parse(await request.body(), starts.PARAMS, starts.UNSUPPORTED)
    return _json(await rt.verify.starts.start(account, service_sid, form), 201)


@router.get(
    "/Services/{service_sid}/Verifications/{sid}",
    operation_id="FetchVerification",
    response_description="The verification",
    response_model=schemas.Verification,
    responses=_errors(404),
)
async def fetch_verification(
    service_sid: ServiceSid, sid: VerificationSid, request: Request
) -> Any:
    """A pending verification (20404 once approved, canceled, expired or out of checks)."""
    rt, account = await _account(request)
    return _json(await run_in_threadpool(rt.verify.checks.fetch, account, service_sid, sid))


@router.post(
    "/Services/{service_sid}/Verifications/{sid}",
    operation_id="UpdateVerification",
    response_description="The verification, canceled or approved",
    response_model=schemas.Verification,
    responses=_errors(400, 404),
    openapi_extra=forms.body(_STATUS, _STATUS),
)
async def update_verification(
    service_sid: ServiceSid, sid: VerificationSid, request: Request
) -> Any:
    """`Status=canceled` or `Status=approved` on a pending verification."""
    rt, account = await _account(request)
    form = Form.parse(await request.body(), _STATUS)
    return _json(await rt.verify.checks.update(account, service_sid, sid, form))


@router.post(
    "/Services/{service_sid}/VerificationCheck",
    operation_id="CreateVerificationCheck",
    response_description="The check: approved, or pending for a wrong code",
    response_model=schemas.VerificationCheck,
    responses=_errors(400, 404, 429),
    openapi_extra=forms.body(checks.PARAMS, ("Code",)),
)
async def check_verification(service_sid: ServiceSid, request: Request) -> Any:
    """Check a code: `200` with `status: approved` or, for a wrong code, `pending`.

    Name the verification by `To` (its newest one in the service) or `VerificationSid`.
    """
    rt, account = await _account(request)
    form = Form.parse(await request.body(), checks.PARAMS, checks.UNSUPPORTED)
    return _json(await rt.verify.checks.check(account, service_sid, form))
