"""The ``/v2`` answers as Twilio documents them, for ``openapi.yaml``.

The router renders its answers itself (:mod:`verifyd.verify.views`) and returns them as
``JSONResponse``, so FastAPI never validates or filters them through these models: they
are the documentation. ``tests/test_openapi.py`` holds them to what the live API answers
(``extra="forbid"``: a field the API adds or drops fails it).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field


def _sid(prefix: str, what: str) -> Any:
    return Field(pattern=f"^{prefix}[0-9a-fA-F]{{32}}$", description=what)


#: Second-precision UTC, the one spelling the SDK parses (``%Y-%m-%dT%H:%M:%SZ``).
Date = Annotated[
    str,
    Field(
        pattern=r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$",
        examples=["2015-07-30T20:00:00Z"],
        description="UTC, to the second, with `Z` (the SDK parses exactly this spelling)",
    ),
]
ServiceSid = Annotated[str, _sid("VA", "The service (`VA` and 32 hex digits)")]
AccountSid = Annotated[str, _sid("AC", "The verify-scoped credential that owns the service")]
VerificationSid = Annotated[str, _sid("VE", "The verification (`VE` and 32 hex digits)")]
Channel = Annotated[
    str,
    Field(
        examples=["sms", "email"],
        description="Twilio's channel name: `sms` or `email` (a plugin channel answers its name)",
    ),
]


class _Twilio(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TwilioError(_Twilio):
    """Every error under ``/v2`` (no ``type``/``title``: the SDK reads those as RFC 9457)."""

    code: int = Field(examples=[60200], description="Twilio's error code")
    message: str = Field(examples=["Invalid parameter: To"])
    more_info: str = Field(examples=["https://www.twilio.com/docs/errors/60200"])
    status: int = Field(examples=[400], description="The HTTP status, repeated")


class Push(_Twilio):
    """Verify Push settings: kept and answered back; verifyd has no Push channel."""

    include_date: bool
    apn_credential_sid: str | None
    fcm_credential_sid: str | None


class Totp(_Twilio):
    """TOTP settings: kept and answered back; verifyd has no TOTP factors."""

    issuer: str | None
    time_step: int
    code_length: int
    skew: int


class Whatsapp(_Twilio):
    """WhatsApp settings: kept and answered back; verifyd has no WhatsApp channel."""

    msg_service_sid: str | None
    from_: str | None = Field(alias="from")


class Passkeys(_Twilio):
    """Passkeys settings: kept as given (text) and answered back; verifyd has no passkeys."""

    relying_party_id: str | None
    relying_party_name: str | None
    relying_party_origins: str | None
    authenticator_attachment: str | None
    discoverable_credentials: str | None
    user_verification: str | None


class ServiceLinks(_Twilio):
    """Twilio's sub-resources; verifyd serves ``verifications`` and ``verification_checks``
    (the others answer 20404)."""

    verification_checks: str
    verifications: str
    rate_limits: str
    messaging_configurations: str
    entities: str
    webhooks: str
    access_tokens: str


class Service(_Twilio):
    """A Verify service (``GET /v2/Services/{sid}``)."""

    sid: ServiceSid
    account_sid: AccountSid
    friendly_name: str = Field(description="Whom the messages speak for, 1–32 characters")
    code_length: int = Field(ge=4, le=10, description="Digits of every code it sends")
    lookup_enabled: bool = Field(description="Starts answer `lookup.carrier` (offline metadata)")
    psd2_enabled: bool = Field(description="Kept and answered back (`Amount`/`Payee` refused)")
    skip_sms_to_landlines: bool = Field(description="An SMS start to a landline gets 60205")
    dtmf_input_required: bool = Field(description="Kept and answered back (no voice channel)")
    tts_name: str | None = Field(description="Kept and answered back (no voice channel)")
    do_not_share_warning_enabled: bool = Field(description="Kept and answered back")
    custom_code_enabled: bool = Field(description="Kept and answered back (`CustomCode` refused)")
    default_template_sid: str | None = Field(description="Kept and answered back")
    verify_event_subscription_enabled: bool = Field(description="Kept and answered back")
    push: Push
    totp: Totp
    whatsapp: Whatsapp
    passkeys: Passkeys
    date_created: Date
    date_updated: Date
    url: str = Field(description="Absolute, from `VERIFYD_PUBLIC_BASE_URL`")
    links: ServiceLinks


class PageMeta(_Twilio):
    """Where a list page is; the SDK follows ``next_page_url`` as it is."""

    key: Literal["services"] = Field(description="The field that holds the items")
    page: int
    page_size: int
    first_page_url: str
    previous_page_url: None = Field(description="Always null (pages go forward only)")
    next_page_url: str | None = Field(
        description="Absolute, from `VERIFYD_PUBLIC_BASE_URL`; null on the last page"
    )
    url: str


class ServicePage(_Twilio):
    """``GET /v2/Services``: the credential's services, oldest first."""

    meta: PageMeta
    services: list[Service]


class Carrier(_Twilio):
    """The number range's original operator, from phonenumbers' metadata (no network query)."""

    mobile_country_code: None = Field(description="Always null: no network is queried")
    mobile_network_code: None = Field(description="Always null: no network is queried")
    name: str | None = Field(description="The range's original operator (a ported number keeps it)")
    type: Literal["mobile", "landline", "voip"] | None
    error_code: None


class Lookup(_Twilio):
    """``{}`` unless the service has ``lookup_enabled`` and the number is not a sandbox one."""

    carrier: Carrier | None = None


class SendCodeAttempt(_Twilio):
    """One send of the code: the first start, then each start again for the same ``To``."""

    time: Date
    channel: str = Field(examples=["SMS", "EMAIL"], description="Upper-case, as Twilio writes it")
    attempt_sid: str = Field(pattern="^VL[0-9a-fA-F]{32}$")


_STATUS = (
    "`pending` (a start, a fetch), `canceled` or `approved` (an update). A verification no "
    "longer pending answers 20404 to a fetch, as Twilio's soft-deleted ones do"
)


class Verification(_Twilio):
    """A verification: Twilio's 15 fields."""

    sid: VerificationSid
    service_sid: ServiceSid
    account_sid: AccountSid
    to: str = Field(description="The destination, normalised (E.164, or the address)")
    channel: Channel
    status: Literal["pending", "approved", "canceled"] = Field(description=_STATUS)
    valid: bool = Field(description="Whether `status` is `approved` (legacy; clients read it)")
    lookup: Lookup
    amount: None = Field(description="Always null: PSD2 details are not supported")
    payee: None = Field(description="Always null: PSD2 details are not supported")
    send_code_attempts: list[SendCodeAttempt] = Field(max_length=5)
    date_created: Date
    date_updated: Date
    sna: None = Field(description="Always null: no SNA channel")
    url: str = Field(description="Absolute, from `VERIFYD_PUBLIC_BASE_URL`")


class VerificationCheck(_Twilio):
    """A check's answer: Twilio's 12 fields. ``sid`` is the verification's."""

    sid: VerificationSid
    service_sid: ServiceSid
    account_sid: AccountSid
    to: str
    channel: Channel
    status: Literal["pending", "approved"] = Field(
        description="`approved` for the right code; `pending` (a 200) for a wrong one"
    )
    valid: bool = Field(description="`true` exactly when approved")
    amount: None
    payee: None
    sna_attempts_error_codes: list[object] = Field(max_length=0, description="Always empty")
    date_created: Date
    date_updated: Date
