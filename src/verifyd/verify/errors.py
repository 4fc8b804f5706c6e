"""Twilio's error answers: ``{code, message, more_info, status}`` with Twilio's codes.

The ``/v2`` flows raise :class:`TwilioError`; :func:`translate` maps the errors verifyd's
shared parts raise (a rate limit, an invalid destination, a pumping hold, an outage) to
the code Twilio answers in the same situation. The body has no ``type`` or ``title``: the
official SDK would read one that has as RFC 9457 and raise another exception class.
"""

from __future__ import annotations

from typing import Any

from verifyd.errors import RateLimited, Unavailable, VerifydError

MORE_INFO = "https://www.twilio.com/docs/errors/{code}"


class TwilioError(Exception):
    """An error the ``/v2`` surface answers in Twilio's shape.

    Args:
        code: Twilio's error code (``60200``).
        status: The HTTP status.
        message: Twilio's message (``Invalid parameter: To``), detail appended where useful.
        retry_after: Seconds, for a ``Retry-After`` header (429s, 503s).
    """

    def __init__(
        self, code: int, status: int, message: str, *, retry_after: int | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.status = status
        self.message = message
        self.retry_after = retry_after

    def body(self) -> dict[str, Any]:
        """The JSON answer."""
        return {
            "code": self.code,
            "message": self.message,
            "more_info": MORE_INFO.format(code=self.code),
            "status": self.status,
        }


def invalid(param: str, why: str | None = None) -> TwilioError:
    """60200: a parameter is missing, malformed or not supported (it is named)."""
    return TwilioError(60200, 400, f"Invalid parameter: {param}" + (f" ({why})" if why else ""))


def not_found(what: str = "The requested resource") -> TwilioError:
    """20404: no such resource (or a verification no longer pending)."""
    return TwilioError(20404, 404, f"{what} was not found")


def authenticate(status: int = 401, why: str = "Authenticate") -> TwilioError:
    """20003: missing, unknown or wrongly scoped credentials."""
    return TwilioError(20003, status, why)


def max_checks() -> TwilioError:
    """60202: every check attempt of the verification (or the destination's day) is used."""
    return TwilioError(60202, 429, "Max check attempts reached")


def max_sends(retry_after: int | None = None) -> TwilioError:
    """60203: the destination was sent all the codes it may have."""
    return TwilioError(60203, 429, "Max send attempts reached", retry_after=retry_after)


def concurrent() -> TwilioError:
    """60212: another start for the same destination is in flight."""
    return TwilioError(60212, 429, "Too many concurrent requests for phone number")


def channel_disabled(channel: str) -> TwilioError:
    """60223: the channel is not one this server delivers."""
    return TwilioError(60223, 400, f"Delivery channel disabled: '{channel}'")


def translate(error: VerifydError, *, field: str = "To") -> TwilioError:
    """The Twilio error for an error one of verifyd's shared parts raised.

    Args:
        error: The error (a destination's, a limit's, a pumping hold's, an outage).
        field: The parameter an input error concerns.
    """
    code = error.code
    retry = error.retry_after if isinstance(error, RateLimited | Unavailable) else None
    if code in ("invalid_phone", "invalid_email", "number_type_blocked"):
        return invalid(field, error.detail)
    if code == "country_not_allowed":
        return TwilioError(60605, 403, f"Verification delivery attempt blocked: {error.detail}")
    if code == "sms_destination_suspended":
        return TwilioError(
            60410, 403, "Verification delivery attempt blocked: the destination prefix is "
            "suspended after suspected SMS pumping",
        )  # fmt: skip
    if code == "too_many_attempts":
        return max_checks()
    if isinstance(error, RateLimited):
        return TwilioError(20429, 429, "Too many requests", retry_after=retry)
    if isinstance(error, Unavailable):
        return TwilioError(20503, 503, "Service unavailable: " + error.detail, retry_after=retry)
    return TwilioError(60200, 400, error.detail)
