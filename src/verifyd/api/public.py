"""Public endpoints: policy, signup, verifications, the email link, the sandbox inbox."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode, urlsplit, urlunsplit

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.responses import RedirectResponse
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from verifyd import locales, texts
from verifyd.api import pages
from verifyd.api.deps import ClientIp, RuntimeDep, address_of, runtime_of
from verifyd.api.handlers import error_response, problem_response, validation_errors
from verifyd.errors import VerifydError, problem
from verifyd.flows.approval import Approved
from verifyd.flows.signup import SignupRequest
from verifyd.idempotency import request_hash, scoped_key
from verifyd.runtime import Runtime
from verifyd.schemas import (
    AccountDetailOut,
    CheckIn,
    CheckOut,
    Problem,
    PublicPolicyOut,
    SandboxMessagesOut,
    SignupIn,
    SignupOut,
    TokenIn,
    VerificationOut,
)

router = APIRouter(prefix="/v1", tags=["public"])
sandbox_router = APIRouter(prefix="/v1/sandbox", tags=["sandbox"])

PROBLEMS: dict[int | str, dict[str, Any]] = {
    code: {"model": Problem, "content": {"application/problem+json": {}}}
    for code in (404, 409, 410, 422, 429, 503)
}


@router.get(
    "/policy", response_model=PublicPolicyOut, response_model_exclude_none=True, responses=PROBLEMS
)
async def get_policy(
    rt: RuntimeDep, subject: Annotated[str | None, Query(max_length=200)] = None
) -> Any:
    """What the signup form must collect, for this subject's arm.

    Under `split` without `subject`, the answer carries a fresh opaque `subject`:
    send it back with `POST /v1/accounts` so the signup gets the same arm. A read
    with a subject (or one that hands one out) records an exposure, once per subject
    and policy version: the funnel of `GET /v1/admin/stats` starts there.
    """
    form = rt.policies.current().form(subject)
    shown = subject if subject is not None else form.get("subject")
    if shown is not None:
        await rt.exposures.record(form["policy_version"], form["arm"], shown)
    return form


@router.post("/accounts", status_code=201, response_model=SignupOut, responses=PROBLEMS)
async def create_account(
    body: SignupIn,
    request: Request,
    idempotency_key: Annotated[
        str | None,
        Header(
            description="Replays this client's first 201 for 24 h (1-255 characters; "
            "a key is scoped to the client address)"
        ),
    ] = None,
) -> Any:
    """Create a pending account and send what the active policy needs verified."""
    rt = runtime_of(request)
    fields = body.model_dump()
    # The tag stored and rendered: the body's, else Accept-Language's, else English.
    fields["locale"] = locales.negotiate(
        body.locale, request.headers.get("accept-language"), _locales(rt)
    )
    req = SignupRequest(**fields, ip=address_of(request))
    if idempotency_key is None:
        result = await rt.signup.create(req)
        return Response(
            SignupOut.model_validate(result).model_dump_json(),
            status_code=201,
            media_type="application/json",
            headers={"Location": f"/v1/accounts/{result['account']['id']}"},
        )
    # The key is the client's own: the same key from another address is another key.
    key = scoped_key(f"ip:{req.ip}", idempotency_key)
    digest = request_hash(body.model_dump(exclude_none=True))
    replay = await run_in_threadpool(rt.idempotency.claim, key, digest)
    if replay is not None:
        headers = {"Idempotent-Replayed": "true"}
        if replay.location:
            headers["Location"] = replay.location
        return Response(
            replay.body, status_code=replay.status, media_type="application/json", headers=headers
        )
    try:
        result = await rt.signup.create(req)
    except BaseException:
        await run_in_threadpool(rt.idempotency.release, key)
        raise
    location = f"/v1/accounts/{result['account']['id']}"
    payload = SignupOut.model_validate(result).model_dump_json()
    await run_in_threadpool(rt.idempotency.complete, key, 201, payload, location)
    return Response(
        payload, status_code=201, media_type="application/json", headers={"Location": location}
    )


@router.get("/accounts/{account_id}", response_model=AccountDetailOut, responses=PROBLEMS)
def get_account(account_id: str, rt: RuntimeDep) -> Any:
    """An account, its status and which identities are verified."""
    return rt.lookup.account(account_id)


@router.get("/verifications/{verification_id}", response_model=VerificationOut, responses=PROBLEMS)
def get_verification(verification_id: str, rt: RuntimeDep) -> Any:
    """One verification."""
    return rt.lookup.verification(verification_id)


@router.post("/verifications/{verification_id}/check", response_model=CheckOut, responses=PROBLEMS)
async def check(verification_id: str, body: CheckIn, request: Request) -> Any:
    """Check an SMS code. Each check uses one of the verification's attempts."""
    rt = runtime_of(request)
    result = await rt.codes.check(verification_id, body.code, address_of(request))
    return _approved(result)


@router.post(
    "/verifications/{verification_id}/resend",
    status_code=202,
    response_model=VerificationOut,
    responses=PROBLEMS,
)
async def resend(verification_id: str, rt: RuntimeDep, ip: ClientIp) -> Any:
    """Send a new code or link; the old one stops working, attempts are not reset."""
    view = await rt.codes.resend(verification_id, ip)
    return Response(
        VerificationOut.model_validate(view).model_dump_json(),
        status_code=202,
        media_type="application/json",
    )


_PAGE: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/html": {}}, "description": "The confirm page"}
}


def _locales(rt: Runtime) -> frozenset[str]:
    """The locales the templates provide (shipped and overriding), read once per folder."""
    return texts.shared(rt.settings.template_dir).locales


def _page_locale(rt: Runtime, request: Request, token: str) -> str:
    """The locale of a link's pages: its signup's, else the reader's ``Accept-Language``."""
    stored = rt.lookup.link_locale(token)
    if stored is not None:
        return stored
    return locales.negotiate(None, request.headers.get("accept-language"), _locales(rt))


@router.get("/email/verify", response_class=Response, responses=_PAGE)
async def email_page(
    rt: RuntimeDep, request: Request, token: Annotated[str, Query(max_length=200)] = ""
) -> Response:
    """The page an email link opens: a button that confirms. Opening it consumes nothing.

    The page speaks the signup's language (its `locale`), else the reader's. Its first
    showing is counted (a page never followed by a confirm: a mail scanner, or a user
    who gave up).
    """
    await rt.links.viewed(token)
    locale = await run_in_threadpool(_page_locale, rt, request, token)
    return pages.confirm_page(rt.settings, token, locale)


@router.head("/email/verify", response_class=Response, responses=_PAGE)
async def email_page_head(
    rt: RuntimeDep, request: Request, token: Annotated[str, Query(max_length=200)] = ""
) -> Response:
    """``HEAD`` of the confirm page (link checkers); consumes nothing either."""
    await rt.links.viewed(token)
    locale = await run_in_threadpool(_page_locale, rt, request, token)
    return pages.confirm_page(rt.settings, token, locale)


@router.post(
    "/email/verify",
    response_class=Response,
    responses={
        200: {"model": CheckOut, "content": {"text/html": {}}},
        303: {"description": "Confirmed: to the signup's redirect_url with ?status=verified"},
        **PROBLEMS,
    },
    openapi_extra={
        "requestBody": {
            "content": {
                "application/x-www-form-urlencoded": {
                    "schema": {
                        "type": "object",
                        "properties": {"token": {"type": "string"}},
                        "required": ["token"],
                    }
                },
                "application/json": {"schema": TokenIn.model_json_schema()},
            },
            "required": True,
        }
    },
)
async def email_confirm(request: Request, rt: RuntimeDep) -> Response:
    """Confirm an email link's token (form: HTML answers; JSON: JSON answers)."""
    is_json = request.headers.get("content-type", "").startswith("application/json")
    if is_json:
        try:
            token = TokenIn.model_validate_json(await request.body()).token
        except ValidationError as exc:
            errors = validation_errors(exc.errors())
            return problem_response(
                problem(422, "invalid_request", "Invalid request", errors[0].message, errors=errors)
            )
    else:
        form = await request.form()
        value = form.get("token")
        token = value if isinstance(value, str) else ""
    try:
        result = await rt.links.confirm(token)
    except VerifydError as exc:
        if is_json:
            return error_response(exc)
        locale = await run_in_threadpool(_page_locale, rt, request, token)
        return pages.failure_page(rt.settings, exc, locale)
    if is_json:
        return _approved(result)
    if result.redirect_url:
        return RedirectResponse(_with_status(result.redirect_url), status_code=303)
    locale = await run_in_threadpool(_page_locale, rt, request, token)
    return pages.success_page(rt.settings, locale)


def _approved(result: Approved) -> Response:
    """The ``200`` of an approval, serialised by its model without a second validation."""
    body = CheckOut.model_validate(
        {"status": "approved", "verification": result.verification, "account": result.account}
    )
    return Response(body.model_dump_json(), media_type="application/json")


def _with_status(url: str) -> str:
    parts = urlsplit(url)
    query = "&".join(q for q in (parts.query, urlencode({"status": "verified"})) if q)
    return urlunsplit(parts._replace(query=query))


@sandbox_router.get(
    "/messages",
    response_model=SandboxMessagesOut,
    response_model_exclude_none=True,  # `code` on codes, `link` on links
    responses=PROBLEMS,
)
def sandbox_messages(rt: RuntimeDep, to: Annotated[str, Query(max_length=320)]) -> Any:
    """What the sandbox provider delivered to a sandbox destination, newest first (50)."""
    return {"messages": rt.sandbox.messages(to)}
