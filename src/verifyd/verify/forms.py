"""The form parameters of ``/v2`` requests, typed and described for ``openapi.yaml``.

The router reads its bodies itself (:class:`verifyd.verify.params.Form`), so these
schemas validate nothing: they document. Which parameters an endpoint takes always
comes from the flow modules' ``PARAMS`` tuples; this table only says what each one is.
Form values are text on the wire; ``integer`` and ``boolean`` say how they are read
(``true``/``false`` for booleans).
"""

from __future__ import annotations

from typing import Any

from verifyd.verify.starts import TWILIO_CHANNELS

_KEPT = "Kept and answered back; it changes nothing in verifyd."


def _bool(description: str) -> dict[str, Any]:
    return {"type": "boolean", "description": description}


def _int(low: int, high: int, default: int, description: str) -> dict[str, Any]:
    return {
        "type": "integer",
        "minimum": low,
        "maximum": high,
        "default": default,
        "description": description,
    }


def _text(max_length: int, description: str) -> dict[str, Any]:
    return {"type": "string", "minLength": 1, "maxLength": max_length, "description": description}


def _sid(prefix: str, description: str) -> dict[str, Any]:
    return {"type": "string", "pattern": f"^{prefix}[0-9a-fA-F]{{32}}$", "description": description}


#: Every documented form or query parameter of ``/v2``, by name.
FIELDS: dict[str, dict[str, Any]] = {
    # POST /v2/Services and POST /v2/Services/{sid}
    "FriendlyName": _text(
        32,
        "The name the messages speak for (unless a start gives `CustomFriendlyName`). "
        "Required to create a service.",
    ),
    "CodeLength": _int(4, 10, 6, "Digits of every code the service sends."),
    "LookupEnabled": _bool(
        "Starts answer `lookup.carrier` for phone numbers, from phonenumbers' offline "
        "metadata (the range's original operator and its type; no network is queried)."
    ),
    "SkipSmsToLandlines": _bool(
        "Refuse (60205) an SMS start to a number that is neither mobile nor VoIP. Fixed "
        "lines are blocked outright by default (`VERIFYD_BLOCKED_NUMBER_TYPES`, 60200)."
    ),
    "DtmfInputRequired": _bool(_KEPT + " (No voice channel.)"),
    "Psd2Enabled": _bool(_KEPT + " (`Amount` and `Payee` are refused.)"),
    "DoNotShareWarningEnabled": _bool(_KEPT),
    "CustomCodeEnabled": _bool(_KEPT + " (`CustomCode` is refused: verifyd makes every code.)"),
    "VerifyEventSubscriptionEnabled": _bool(_KEPT),
    "TtsName": _text(64, _KEPT + " (No voice channel.)"),
    "DefaultTemplateSid": _text(64, _KEPT + " (Messages come from verifyd's templates.)"),
    "Push.IncludeDate": _bool(_KEPT),
    "Push.ApnCredentialSid": _text(200, _KEPT),
    "Push.FcmCredentialSid": _text(200, _KEPT),
    "Totp.Issuer": _text(200, _KEPT),
    "Totp.TimeStep": _int(20, 60, 30, _KEPT),
    "Totp.CodeLength": _int(3, 8, 6, _KEPT),
    "Totp.Skew": _int(0, 2, 1, _KEPT),
    "Whatsapp.MsgServiceSid": _text(200, _KEPT),
    "Whatsapp.From": _text(200, _KEPT),
    "Passkeys.RelyingParty.Id": _text(200, _KEPT),
    "Passkeys.RelyingParty.Name": _text(200, _KEPT),
    "Passkeys.RelyingParty.Origins": _text(200, _KEPT + " (As text.)"),
    "Passkeys.AuthenticatorAttachment": _text(200, _KEPT),
    "Passkeys.DiscoverableCredentials": _text(200, _KEPT),
    "Passkeys.UserVerification": _text(200, _KEPT),
    # GET /v2/Services
    "PageSize": _int(1, 1000, 50, "Services per page."),
    "Page": _int(0, 100_000, 0, "The page's number: only echoed in `meta.page`."),
    "PageToken": _sid(
        "VA", "Where the page starts: the previous page's last SID (`next_page_url` has it)."
    ),
    # POST /v2/Services/{sid}/Verifications
    "To": _text(
        320,
        "A phone number (E.164, or national with `VERIFYD_DEFAULT_REGION`) for `sms`, an "
        "email address for `email`. To a check, the destination of the newest verification "
        "of the service to check.",
    ),
    "Channel": {
        "type": "string",
        "enum": list(TWILIO_CHANNELS),
        "description": "`sms` or `email` (a code by email). The others answer 60223 unless a "
        "plugin channel of that name delivers codes.",
    },
    "Locale": _text(
        35,
        "The message's language, matched against the templates' languages (an unknown one "
        "falls back to the default). A start again re-sends the first message's language.",
    ),
    "CustomFriendlyName": _text(64, "The name this verification's messages speak for."),
    "DeviceIp": {
        "type": "string",
        "anyOf": [{"format": "ipv4"}, {"format": "ipv6"}],
        "description": "The end user's address: the start counts against that address's "
        "signup limit (`VERIFYD_SIGNUPS_PER_IP_PER_HOUR`; past it 20429).",
    },
    "RiskCheck": {
        "type": "string",
        "enum": ["enable"],
        "description": "`enable` only: `disable` is refused (60200), verifyd's SMS-pumping "
        "defences cannot be turned off per request.",
    },
    "Tags": _text(
        4096,
        "A JSON object of at most 10 string pairs (keys 1–128 characters, values at most "
        "128): checked, then not kept.",
    ),
    # POST /v2/Services/{sid}/VerificationCheck
    "Code": _text(10, "The code, 4–10 characters; anything but the right digits is wrong."),
    "VerificationSid": _sid("VE", "The verification to check (instead of `To`)."),
    # POST /v2/Services/{sid}/Verifications/{sid}
    "Status": {
        "type": "string",
        "enum": ["canceled", "approved"],
        "description": "`canceled` ends a pending verification; `approved` approves it "
        "without a code (counted as an approval in the stats).",
    },
}


def field(name: str) -> dict[str, Any]:
    """One parameter's schema (a bare string if the table does not know it)."""
    return dict(FIELDS.get(name, {"type": "string"}))


def body(params: tuple[str, ...], required: tuple[str, ...] = ()) -> dict[str, Any]:
    """An ``openapi_extra`` whose ``requestBody`` is the form of ``params``."""
    schema: dict[str, Any] = {
        "type": "object",
        "properties": {p: field(p) for p in params},
        "additionalProperties": False,
    }
    if required:
        schema["required"] = list(required)
    form = {"application/x-www-form-urlencoded": {"schema": schema}}
    return {"requestBody": {"required": True, "content": form}}


def query(params: tuple[str, ...]) -> dict[str, Any]:
    """An ``openapi_extra`` whose ``parameters`` are the query parameters ``params``."""
    return {
        "parameters": [
            {"name": p, "in": "query", "required": False, "schema": field(p)} for p in params
        ]
    }
