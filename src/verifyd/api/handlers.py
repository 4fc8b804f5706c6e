"""Every error as RFC 9457 problem+json: domain errors, validation, 404/405, the unexpected."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from verifyd.errors import FieldError, RateLimited, VerifydError, problem, to_problem

log = logging.getLogger("verifyd.api")

PROBLEM_JSON = "application/problem+json"

_HTTP_CODES = {
    400: ("invalid_request", "Bad request"),
    401: ("unauthorized", "Unauthorized"),
    404: ("not_found", "Not found"),
    405: ("method_not_allowed", "Method not allowed"),
    413: ("invalid_request", "Request too large"),
    415: ("invalid_request", "Unsupported media type"),
}


def problem_response(body: dict[str, Any], headers: dict[str, str] | None = None) -> JSONResponse:
    """A problem+json response for a rendered problem document."""
    return JSONResponse(body, status_code=body["status"], media_type=PROBLEM_JSON, headers=headers)


def error_response(error: VerifydError) -> JSONResponse:
    """The response for a domain error (adds ``Retry-After`` to 429s)."""
    headers = {"Retry-After": str(error.retry_after)} if isinstance(error, RateLimited) else None
    return problem_response(to_problem(error), headers)


def _field(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] in ("body", "query", "path", "header"):
        parts = parts[1:]
    return ".".join(parts) or "body"


def validation_errors(errors: list[dict[str, Any]] | Any) -> list[FieldError]:
    """FastAPI/pydantic errors as field errors (``invalid_request``)."""
    out = []
    for err in errors:
        kind = err.get("type", "")
        message = "body is not valid JSON" if kind == "json_invalid" else err.get("msg", "invalid")
        out.append(FieldError(_field(err.get("loc", ())), "invalid_request", message))
    return out


def install(app: FastAPI) -> None:
    """Register the handlers on an app."""

    @app.exception_handler(VerifydError)
    async def _domain(_: Request, exc: VerifydError) -> JSONResponse:
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = validation_errors(exc.errors())
        detail = "; ".join(f"{e.field}: {e.message}" for e in errors[:5])
        return problem_response(
            problem(422, "invalid_request", "Invalid request", detail, errors=errors)
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code, title = _HTTP_CODES.get(exc.status_code, ("invalid_request", "Error"))
        detail = exc.detail if isinstance(exc.detail, str) else title
        return problem_response(
            problem(exc.status_code, code, title, detail), dict(exc.headers or {})
        )

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error")
        return problem_response(
            problem(500, "internal_error", "Internal error", "an unexpected error occurred")
        )
