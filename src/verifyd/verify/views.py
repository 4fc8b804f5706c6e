"""How ``/v2`` resources are written: Twilio's field names, URLs and second-precision dates."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

#: verifyd's verification states as Twilio names them.
STATUS = {
    "pending": "pending",
    "approved": "approved",
    "canceled": "canceled",
    "expired": "expired",
    "locked": "max_attempts_reached",
}
#: The service fields verifyd keeps as given and answers back (``options``), with defaults.
ECHOED: dict[str, Any] = {
    "lookup_enabled": False,
    "psd2_enabled": False,
    "skip_sms_to_landlines": False,
    "dtmf_input_required": False,
    "tts_name": None,
    "do_not_share_warning_enabled": False,
    "custom_code_enabled": False,
    "default_template_sid": None,
    "verify_event_subscription_enabled": False,
}


def service_defaults() -> dict[str, dict[str, Any]]:
    """The nested objects of a service (``push``, ``totp``…) before any is set."""
    return {
        "push": {"include_date": False, "apn_credential_sid": None, "fcm_credential_sid": None},
        "totp": {"issuer": None, "time_step": 30, "code_length": 6, "skew": 1},
        "whatsapp": {"msg_service_sid": None, "from": None},
        "passkeys": {
            "relying_party_id": None,
            "relying_party_name": None,
            "relying_party_origins": None,
            "authenticator_attachment": None,
            "discoverable_credentials": None,
            "user_verification": None,
        },
    }


class Row:
    """Attribute access over a dict, so a row just written renders like one read."""

    def __init__(self, values: dict[str, Any]) -> None:
        self.__dict__.update(values)


def date(at: datetime | None) -> str | None:
    """``2015-07-30T20:00:00Z``: the one spelling the SDK parses (``%Y-%m-%dT%H:%M:%SZ``)."""
    if at is None:
        return None
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Urls:
    """Absolute URLs of ``/v2`` resources, from the configured public base URL.

    Args:
        base: ``VERIFYD_PUBLIC_BASE_URL`` (never the request's ``Host``).
    """

    def __init__(self, base: str) -> None:
        self.base = base.rstrip("/") + "/v2"

    def services(self, query: dict[str, Any] | None = None) -> str:
        return f"{self.base}/Services" + (f"?{urlencode(query)}" if query else "")

    def service(self, sid: str) -> str:
        return f"{self.base}/Services/{sid}"

    def verification(self, service_sid: str, sid: str) -> str:
        return f"{self.base}/Services/{service_sid}/Verifications/{sid}"


def service(row: Any, urls: Urls) -> dict[str, Any]:
    """A service as ``GET /v2/Services/{sid}`` answers it."""
    url = urls.service(row.sid)
    options = row.options or {}
    return {
        "sid": row.sid,
        "account_sid": row.account_sid,
        "friendly_name": row.friendly_name,
        "code_length": row.code_length,
        **{name: options.get(name, default) for name, default in ECHOED.items()},
        **{name: options.get(name, default) for name, default in service_defaults().items()},
        "date_created": date(row.created_at),
        "date_updated": date(row.updated_at),
        "url": url,
        "links": {
            "verification_checks": f"{url}/VerificationCheck",
            "verifications": f"{url}/Verifications",
            "rate_limits": f"{url}/RateLimits",
            "messaging_configurations": f"{url}/MessagingConfigurations",
            "entities": f"{url}/Entities",
            "webhooks": f"{url}/Webhooks",
            "access_tokens": f"{url}/AccessTokens",
        },
    }


def _common(row: Any, account_sid: str, status: str) -> dict[str, Any]:
    return {
        "sid": row.sid,
        "service_sid": row.service_sid,
        "account_sid": account_sid,
        "to": row.to,
        "channel": row.channel,
        "status": status,
        "valid": status == "approved",
        "amount": None,
        "payee": None,
        "date_created": date(row.created_at),
        "date_updated": date(row.updated_at),
    }


def verification(row: Any, account_sid: str, status: str, urls: Urls) -> dict[str, Any]:
    """A verification: Twilio's 15 fields (``status`` already in Twilio's words)."""
    return {
        **_common(row, account_sid, status),
        "lookup": row.lookup or {},
        "send_code_attempts": list(row.send_attempts or []),
        "sna": None,
        "url": urls.verification(row.service_sid, row.sid),
    }


def check(row: Any, account_sid: str, status: str) -> dict[str, Any]:
    """A verification check's answer: Twilio's 12 fields."""
    return {**_common(row, account_sid, status), "sna_attempts_error_codes": []}


def page(
    key: str,
    items: list[dict[str, Any]],
    urls: Urls,
    size: int,
    number: int,
    next_token: str | None,
) -> dict[str, Any]:
    """A list page the Twilio way: ``meta`` with absolute URLs, the items under ``key``."""
    first = urls.services({"PageSize": size, "Page": 0})
    current = urls.services({"PageSize": size, "Page": number})
    following = (
        urls.services({"PageSize": size, "Page": number + 1, "PageToken": next_token})
        if next_token is not None
        else None
    )
    return {
        "meta": {
            "key": key,
            "page": number,
            "page_size": size,
            "first_page_url": first,
            "previous_page_url": None,
            "next_page_url": following,
            "url": current,
        },
        key: items,
    }
