"""Request and response bodies of the HTTP API (they also shape ``openapi.yaml``)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool, StrictStr


def _no_nul(value: str) -> str:
    # PostgreSQL text cannot hold NUL; refuse it at the edge for every backend alike.
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


#: A string that may reach the database: no NUL characters.
Text = Annotated[StrictStr, AfterValidator(_no_nul)]


class Strict(BaseModel):
    """Unknown fields are refused, so a typo is an error rather than silently ignored."""

    model_config = ConfigDict(extra="forbid")


class SignupIn(Strict):
    """``POST /v1/accounts``."""

    phone: StrictStr | None = Field(default=None, max_length=64, examples=["+1 202 555 0142"])
    email: StrictStr | None = Field(default=None, max_length=320)
    channel: Text | None = Field(
        default=None,
        max_length=32,
        description="Under `either`, which identity to verify: `sms` or `phone` for the phone, "
        "`email` for the email (it must be one the signup gives). Checked under every policy.",
    )
    subject: Text | None = Field(
        default=None,
        max_length=200,
        description="Opaque device/session id for `split`: the one `GET /v1/policy` was "
        "asked with, or the `subject` it handed out",
    )
    locale: Text | None = Field(default=None, max_length=35)
    redirect_url: Text | None = Field(default=None, max_length=2048)


class CheckIn(Strict):
    """``POST /v1/verifications/{id}/check``: the code as a string of digits."""

    code: StrictStr = Field(max_length=16, examples=["0123"])


class TokenIn(Strict):
    """``POST /v1/email/verify`` as JSON."""

    token: StrictStr = Field(max_length=200)


class AccountOut(BaseModel):
    id: str
    status: Literal["pending", "active"]
    phone: str | None
    email: str | None
    policy_version: int
    arm: str
    created_at: datetime


class Verified(BaseModel):
    phone: bool
    email: bool


class AccountDetailOut(AccountOut):
    verified: Verified


class VerificationOut(BaseModel):
    id: str
    channel: str
    status: Literal["pending", "approved", "expired", "locked", "canceled"]
    to: str
    expires_at: datetime
    attempts_left: int
    resend_available_at: datetime
    delivery: Literal["queued", "sent", "delivered", "failed"]


class SignupOut(BaseModel):
    account: AccountOut
    verifications: list[VerificationOut]


class CheckOut(BaseModel):
    status: Literal["approved"]
    verification: VerificationOut
    account: AccountOut


class PublicPolicyOut(BaseModel):
    policy_version: int
    mode: str
    arm: str
    require: list[str]
    one_of: list[str]
    subject: str | None = Field(
        default=None,
        description="Under `split` when the request gave none: a fresh opaque subject for "
        "the frontend to send back with `POST /v1/accounts`, so the signup gets this arm",
    )


class SandboxMessageOut(BaseModel):
    id: str
    to: str
    channel: str
    kind: Literal["code", "link", "notice"]
    body: str
    code: str | None = None
    link: str | None = None
    created_at: datetime


class SandboxMessagesOut(BaseModel):
    messages: list[SandboxMessageOut]


class FieldProblem(BaseModel):
    field: str
    code: str
    message: str


class Problem(BaseModel):
    """RFC 9457 problem details; ``code`` is stable."""

    type: str
    title: str
    status: int
    detail: str
    code: str
    errors: list[FieldProblem] | None = None
    attempts_left: int | None = Field(default=None, description="With `code_incorrect`")
    verification_status: str | None = Field(
        default=None, description="With `verification_closed`: approved, locked or canceled"
    )
    retry_after: int | None = Field(
        default=None, description="With 429s and 503s, as `Retry-After`"
    )
    checks: dict[str, str] | None = Field(
        default=None, description="With `/readyz`'s 503: each readiness check's state"
    )


class Health(BaseModel):
    status: str
    checks: dict[str, str] = Field(default_factory=dict)


class MessageOut(BaseModel):
    """One outbox message as operators see it (the destination masked)."""

    id: str
    verification_id: str | None
    kind: Literal["sms", "email"]
    provider: str = Field(description="The provider trying it now; once sent, the one that did.")
    to: str
    status: Literal["queued", "sent", "delivered", "undelivered", "dead", "canceled", "suppressed"]
    attempts: int = Field(description="Tries on the current provider.")
    last_error: str | None
    error_code: str | None = Field(description="The provider's own code (Twilio's, SMTP's).")
    provider_message_id: str | None
    created_at: datetime
    next_attempt_at: datetime
    sent_at: datetime | None
    delivered_at: datetime | None


class MessagesOut(BaseModel):
    """``GET /v1/admin/messages``: a page, newest first."""

    messages: list[MessageOut]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page.")


class RedriveIn(Strict):
    """``POST /v1/admin/messages/redrive``: some messages by id, or every dead one."""

    ids: list[Text] | None = Field(default=None, min_length=1, max_length=1000)
    all: StrictBool = Field(default=False, description="Redrive every dead message.")


class RedriveSkip(BaseModel):
    id: str
    reason: str = Field(
        description="`not_found`, `not_dead`, `superseded`, `verification_expired`, "
        "`verification_approved`, `verification_locked`, `verification_canceled`."
    )


class RedriveOut(BaseModel):
    """What a redrive queued again, and what it left, with why."""

    redriven: list[str]
    skipped: list[RedriveSkip]


class BreakerOut(BaseModel):
    """An SMS-pumping breaker holding sends to a number prefix or a country."""

    id: str
    scope: Literal["prefix", "country"]
    key: str = Field(
        description="The prefix (the E.164 number without its last digits) or the "
        "phonenumbers region (`GB`, `ZZ` when unknown)."
    )
    tripped_at: datetime
    expires_at: datetime = Field(description="When it lifts by itself.")
    sent: int = Field(description="Codes sent there in the window it tripped in.")
    verified: int = Field(description="Of those, how many were verified.")


class BreakersOut(BaseModel):
    """``GET /v1/admin/breakers``: the breakers holding sends now, newest first."""

    breakers: list[BreakerOut]
