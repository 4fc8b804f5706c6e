"""Domain errors with stable codes, rendered once as RFC 9457 problem+json.

The tree::

    VerifydError
    ├── InvalidRequest            400/422 invalid_request, invalid_phone, invalid_email, …
    │   ├── PolicyRequires        422 policy_requires_phone | _email | _both
    │   └── CodeIncorrect         422 code_incorrect (+ attempts_left)
    ├── NotFound                  404 not_found, account_not_found, verification_not_found
    ├── Unauthorized              401 unauthorized
    ├── Forbidden                 403 sms_destination_suspended
    ├── Conflict                  409 verification_closed, idempotency_in_progress
    ├── Gone                      410 code_expired
    ├── RateLimited               429 rate_limited, too_many_attempts (+ Retry-After)
    └── Unavailable               503 database_unavailable, migrations_behind (+ Retry-After)

The flows raise these; they never import HTTP. ``verifyd.api`` renders them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar


@dataclass(frozen=True)
class FieldError:
    """One offending field of a request body."""

    field: str
    code: str
    message: str


class VerifydError(Exception):
    """Base of every error verifyd answers with; ``code`` is stable and machine-readable."""

    status: ClassVar[int] = 400
    title: ClassVar[str] = "Bad request"

    def __init__(
        self,
        code: str,
        detail: str,
        *,
        errors: list[FieldError] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail
        self.errors = errors or []
        self.extra = extra or {}

    @classmethod
    def field(cls, code: str, field: str, message: str) -> VerifydError:
        """An error about one request field."""
        return cls(code, message, errors=[FieldError(field, code, message)])


class InvalidRequest(VerifydError):
    status = 422
    title = "Invalid request"


class PolicyRequires(InvalidRequest):
    title = "The verification policy needs another identity"


class CodeIncorrect(InvalidRequest):
    title = "Code incorrect"


class NotFound(VerifydError):
    status = 404
    title = "Not found"


class Unauthorized(VerifydError):
    status = 401
    title = "Unauthorized"


class Forbidden(VerifydError):
    status = 403
    title = "Forbidden"


class Conflict(VerifydError):
    status = 409
    title = "Conflict"


class Gone(VerifydError):
    status = 410
    title = "Gone"


class RateLimited(VerifydError):
    status = 429
    title = "Too many requests"

    def __init__(self, code: str, detail: str, *, retry_after: int) -> None:
        super().__init__(code, detail, extra={"retry_after": max(1, retry_after)})
        self.retry_after = max(1, retry_after)


class Unavailable(VerifydError):
    """The service cannot answer now, through no fault of the request; retry later."""

    status = 503
    title = "Service unavailable"

    def __init__(
        self, code: str, detail: str, *, retry_after: int, extra: dict[str, Any] | None = None
    ) -> None:
        super().__init__(code, detail, extra={**(extra or {}), "retry_after": max(1, retry_after)})
        self.retry_after = max(1, retry_after)


def problem(
    status: int,
    code: str,
    title: str,
    detail: str,
    *,
    errors: list[FieldError] | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The problem+json document for an error."""
    body: dict[str, Any] = {
        "type": f"urn:verifyd:problem:{code}",
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
    }
    if errors:
        body["errors"] = [{"field": e.field, "code": e.code, "message": e.message} for e in errors]
    if extra:
        body.update(extra)
    return body


def to_problem(error: VerifydError) -> dict[str, Any]:
    """Render a domain error as problem+json."""
    return problem(
        error.status,
        error.code,
        error.title,
        error.detail,
        errors=error.errors,
        extra=error.extra,
    )
