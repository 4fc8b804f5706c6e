"""Every error as RFC 9457 problem+json: domain errors, validation, 404/405, database
outages (503, ``verifyd.outages``), the unexpected."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.responses import Response
from starlette.routing import Match

from verifyd import outages
from verifyd.api import twilio_errors
from verifyd.errors import (
    FieldError,
    RateLimited,
    Unauthorized,
    Unavailable,
    VerifydError,
    problem,
    to_problem,
)
from verifyd.verify.errors import TwilioError, invalid, translate

log = logging.getLogger("verifyd.api")

PROBLEM_JSON = "application/problem+json"
#: The status logged for a request whose client left before its answer (nginx's
#: "client closed request"); nobody receives it.
CLIENT_CLOSED = 499

_HTTP_CODES = {
    400: ("invalid_request", "Bad request"),
    401: ("unauthorized", "Unauthorized"),
    404: ("not_found", "Not found"),
    405: ("method_not_allowed", "Method not allowed"),
    413: ("payload_too_large", "Payload too large"),
    415: ("invalid_request", "Unsupported media type"),
}


def problem_response(body: dict[str, Any], headers: dict[str, str] | None = None) -> JSONResponse:
    """A problem+json response for a rendered problem document."""
    return JSONResponse(body, status_code=body["status"], media_type=PROBLEM_JSON, headers=headers)


def error_response(error: VerifydError) -> JSONResponse:
    """The response for a domain error (``Retry-After`` on 429s, ``WWW-Authenticate`` on 401s)."""
    headers = None
    if isinstance(error, RateLimited | Unavailable):
        headers = {"Retry-After": str(error.retry_after)}
    elif isinstance(error, Unauthorized):
        headers = {"WWW-Authenticate": 'Bearer realm="verifyd admin"'}
    return problem_response(to_problem(error), headers)


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


def _allowed_methods(request: Request) -> str:
    # Starlette answers 405 from the first route matching the path; a path served by
    # several routes (GET/HEAD and POST) must list all of their methods. Routers are
    # nested, so ask each top-level route which methods it would fully match.
    allowed = [
        method
        for method in _METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] == Match.FULL
            for route in request.app.router.routes
        )
    ]
    return ", ".join(allowed)


def _field(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] in ("body", "query", "path", "header"):
        parts = parts[1:]
    return ".".join(parts) or "body"


def validation_errors(errors: list[dict[str, Any]] | Any) -> list[FieldError]:
    """FastAPI/pydantic errors as field errors (``invalid_request``)."""
    out = []
    for err in errors:
        if err.get("type") == "json_invalid":  # its loc ends in a byte offset, not a field
            out.append(FieldError("body", "invalid_request", "body is not valid JSON"))
            continue
        out.append(FieldError(_field(err.get("loc", ())), "invalid_request", err.get("msg", "")))
    return out


def _client_gone(request: Request) -> Response:
    """The non-answer to a client that disconnected before its body arrived.

    A client closing its connection mid-body is not a server error: one debug line,
    no traceback, and a 499 (never sent) for the access log. ``verifyd.api.bodylimit``
    ends a refused body the same way, so this covers that too.
    """
    log.debug("client disconnected before its request body arrived: %s", request.url.path)
    return Response(status_code=CLIENT_CLOSED)


def install(app: FastAPI) -> None:
    """Register the handlers on an app."""

    @app.exception_handler(ClientDisconnect)
    async def _disconnect(request: Request, _: ClientDisconnect) -> Response:
        return _client_gone(request)

    @app.exception_handler(TwilioError)
    async def _twilio(_: Request, exc: TwilioError) -> JSONResponse:
        return twilio_errors.response(exc)

    @app.exception_handler(VerifydError)
    async def _domain(request: Request, exc: VerifydError) -> JSONResponse:
        if twilio_errors.under_v2(request):
            return twilio_errors.response(translate(exc))
        return error_response(exc)

    async def _outage(request: Request, exc: Exception) -> JSONResponse:
        # One line per request, no traceback: an outage is the operator's alert, not a bug.
        log.warning(
            "database unavailable (%s %s): %s",
            request.method,
            request.url.path,
            outages.describe(exc),
        )
        if twilio_errors.under_v2(request):
            return twilio_errors.response(translate(outages.unavailable()))
        return error_response(outages.unavailable())

    for kind in outages.UNAVAILABLE:
        app.add_exception_handler(kind, _outage)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = validation_errors(exc.errors())
        if twilio_errors.under_v2(request):
            return twilio_errors.response(invalid(errors[0].field if errors else "body"))
        detail = "; ".join(f"{e.field}: {e.message}" for e in errors[:5])
        return problem_response(
            problem(422, "invalid_request", "Invalid request", detail, errors=errors)
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        if isinstance(exc.__cause__, ClientDisconnect):  # FastAPI's 400 for a body cut short
            return _client_gone(request)
        code, title = _HTTP_CODES.get(exc.status_code, ("invalid_request", "Error"))
        detail = exc.detail if isinstance(exc.detail, str) else title
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            headers["Allow"] = _allowed_methods(request) or headers.get("Allow", "")
        if twilio_errors.under_v2(request):
            return twilio_errors.http(exc.status_code, headers)
        return problem_response(problem(exc.status_code, code, title, detail), headers)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error")
        if twilio_errors.under_v2(request):
            return twilio_errors.internal()
        return problem_response(
            problem(500, "internal_error", "Internal error", "an unexpected error occurred")
        )
