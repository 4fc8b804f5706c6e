"""Errors under ``/v2`` in Twilio's body, whatever raised them (see ``handlers.py``)."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import JSONResponse

from verifyd.verify.errors import TwilioError

PREFIX = "/v2"
#: Twilio's codes for what the framework itself answers.
_HTTP = {
    404: (20404, "The requested resource was not found"),
    405: (20004, "Method not allowed"),
    413: (60200, "Invalid parameter: the body is too large"),
}


def under_v2(request: Request) -> bool:
    """Whether the request is the Twilio-compatible surface's (when it is mounted)."""
    path = request.url.path
    if not (path == PREFIX or path.startswith(PREFIX + "/")):
        return False
    return bool(request.app.state.runtime.settings.twilio_compat)


def response(error: TwilioError, headers: dict[str, str] | None = None) -> JSONResponse:
    """The answer for a Twilio error (``Retry-After`` and ``WWW-Authenticate`` as due)."""
    out = dict(headers or {})
    if error.retry_after is not None:
        out["Retry-After"] = str(error.retry_after)
    if error.status == 401:
        out["WWW-Authenticate"] = 'Basic realm="verifyd Verify API"'
    return JSONResponse(error.body(), status_code=error.status, headers=out)


def http(status: int, headers: dict[str, str] | None = None) -> JSONResponse:
    """A framework answer (unknown path, wrong method…) in Twilio's body."""
    code, message = _HTTP.get(status, (status, "Bad request" if status < 500 else "Error"))
    return response(TwilioError(code, status, message), headers)


def internal() -> JSONResponse:
    """An unexpected error (logged by the caller), in Twilio's body."""
    return response(TwilioError(20500, 500, "Internal Server Error"))
