"""Delivery receipts from providers: Twilio's message status callbacks."""

from __future__ import annotations

import logging
from urllib.parse import parse_qsl

from fastapi import APIRouter, Request, Response

from verifyd.api.deps import runtime_of
from verifyd.api.handlers import problem_response
from verifyd.errors import FieldError, problem
from verifyd.flows.receipts import Receipt, Receipts
from verifyd.providers import twilio
from verifyd.schemas import Problem

log = logging.getLogger("verifyd.receipts")

router = APIRouter(prefix="/v1/providers", tags=["providers"])

#: A status callback is a few hundred bytes; anything much larger is not one.
MAX_CALLBACK_BYTES = 16 * 1024
#: Twilio sends about fifteen parameters.
MAX_FIELDS = 100
MAX_SID_LENGTH = 64

_FORM = "application/x-www-form-urlencoded"


class _Refused(Exception):
    def __init__(self, status: int, code: str, title: str, detail: str) -> None:
        super().__init__(detail)
        self.body = problem(status, code, title, detail)


@router.post(
    twilio.STATUS_PATH.removeprefix("/v1/providers"),
    status_code=204,
    response_class=Response,
    responses={
        204: {"description": "Recorded (or nothing to record)"},
        **{
            status: {"model": Problem, "content": {"application/problem+json": {}}}
            for status in (400, 403, 404, 413, 415, 422)
        },
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                _FORM: {
                    "schema": {
                        "type": "object",
                        "properties": {
                            name: {"type": "string"}
                            for name in (
                                "MessageSid",
                                "MessageStatus",
                                "ErrorCode",
                                "AccountSid",
                                "From",
                                "To",
                                "ApiVersion",
                                "SmsSid",
                                "SmsStatus",
                            )
                        },
                        "additionalProperties": {"type": "string"},
                    }
                }
            },
        }
    },
)
async def twilio_status(request: Request) -> Response:
    """Twilio's status callback for a message verifyd sent (``StatusCallback``).

    Signed by Twilio with `X-Twilio-Signature` over the callback URL verifyd gave it
    (`VERIFYD_PUBLIC_BASE_URL` + this path) and the form parameters; an unsigned or
    mis-signed request is refused (403). `delivered` marks the message delivered and
    the verification's `delivery` `delivered`; `undelivered` and `failed` mark it
    undelivered (with Twilio's `ErrorCode`) and the `delivery` `failed`. Other statuses,
    receipts for unknown messages and receipts after a final status change nothing.
    `MessageSid` and `MessageStatus` are required (the older `SmsSid`/`SmsStatus` are
    read when they are absent). 404 while the Twilio settings are not configured.
    """
    rt = runtime_of(request)
    settings = rt.settings
    token = settings.twilio_auth_token.get_secret_value() if settings.twilio_auth_token else ""
    if not (token and settings.twilio_account_sid):
        return problem_response(
            problem(404, "not_found", "Not found", "Twilio delivery is not configured")
        )
    try:
        params = _form(request.headers.get("content-type", ""), await _body(request))
    except _Refused as refused:
        return problem_response(refused.body)
    url = twilio.status_callback_url(settings)
    if not twilio.signature_valid(token, url, params, request.headers.get("x-twilio-signature")):
        log.warning("twilio status callback refused: missing or invalid X-Twilio-Signature")
        return problem_response(
            problem(403, "forbidden", "Forbidden", "the X-Twilio-Signature does not match")
        )
    fields: dict[str, str] = {}
    for name, value in params:
        fields.setdefault(name, value)
    sid = fields.get("MessageSid") or fields.get("SmsSid") or ""
    status = (fields.get("MessageStatus") or fields.get("SmsStatus") or "").strip().lower()
    errors = [
        FieldError(name, "invalid_request", message)
        for name, bad, message in (
            ("MessageSid", not sid or len(sid) > MAX_SID_LENGTH, "a message SID is required"),
            ("MessageStatus", not status, "a message status is required"),
        )
        if bad
    ]
    if errors:
        detail = "; ".join(f"{e.field}: {e.message}" for e in errors)
        return problem_response(
            problem(422, "invalid_request", "Invalid request", detail, errors=errors)
        )
    outcome = twilio.FINAL_STATUSES.get(status)
    if outcome is None:  # accepted, queued, sending, sent, read, …: nothing to record
        return Response(status_code=204)
    error_code = (fields.get("ErrorCode") or "").strip()[:32] or None
    detail = f"twilio: {status}" + (f" (error {error_code})" if error_code else "")
    receipt = Receipt("twilio", sid, outcome, error_code=error_code, detail=detail)
    await Receipts(rt.db).record(receipt)
    return Response(status_code=204)


async def _body(request: Request) -> bytes:
    """The request body, refused past ``MAX_CALLBACK_BYTES`` without reading it all."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_CALLBACK_BYTES:
        raise _too_large()
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_CALLBACK_BYTES:
            raise _too_large()
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large() -> _Refused:
    return _Refused(
        413, "payload_too_large", "Payload too large", "a status callback is a few hundred bytes"
    )


def _form(content_type: str, body: bytes) -> list[tuple[str, str]]:
    """The form's ``(name, value)`` pairs in order, every one kept (the signature covers all)."""
    # An empty body is an empty form, whatever it was labelled (clients omit the type).
    if body and content_type.split(";", 1)[0].strip().lower() != _FORM:
        raise _Refused(
            415, "invalid_request", "Unsupported media type", f"the body must be {_FORM}"
        )
    try:
        pairs: list[tuple[str, str]] = parse_qsl(
            body.decode("utf-8"),
            keep_blank_values=True,
            encoding="utf-8",
            errors="strict",
            max_num_fields=MAX_FIELDS,
        )
    except (UnicodeDecodeError, ValueError) as exc:
        raise _Refused(
            400, "invalid_request", "Bad request", "the body is not a UTF-8 form"
        ) from exc
    return pairs
