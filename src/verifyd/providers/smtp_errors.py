"""How the ``smtp`` provider reports a failure: permanent or not, and nothing secret in it.

A 5xx reply is permanent (the message moves on along its chain), a 4xx reply, a network
or TLS failure is retried. Relays quote back what they were sent, so every text is
scrubbed of the code, the link, its token, the password and the recipient first.
"""

from __future__ import annotations

import smtplib
import ssl
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlsplit

from verifyd.providers.base import DeliveryError, OutgoingMessage

if TYPE_CHECKING:
    from verifyd.settings import Settings


def hidden_values(settings: Settings, message: OutgoingMessage, to: str) -> list[tuple[str, str]]:
    """What must never reach ``last_error``, even when a relay quotes it back."""
    secrets = [message.code or "", message.link or ""]
    if message.link:
        secrets += parse_qs(urlsplit(message.link).query).get("token", [])
    if settings.smtp_password:
        secrets.append(settings.smtp_password.get_secret_value())
    found = [(s, "[redacted]") for s in secrets if len(s) >= 4]
    # Relays quote the recipient ("<a@b>: user unknown"); the outbox shows masked ones only.
    found += [(to, "<recipient>"), (message.to, "<recipient>")]
    return sorted(found, key=lambda pair: len(pair[0]), reverse=True)


def _scrub(text: str, hidden: list[tuple[str, str]]) -> str:
    for value, label in hidden:
        text = text.replace(value, label)
    return " ".join(text.split())[:200]


_REFUSED = {
    smtplib.SMTPSenderRefused: "sender refused",
    smtplib.SMTPDataError: "message refused",
    smtplib.SMTPAuthenticationError: "login refused (check VERIFYD_SMTP_USERNAME/PASSWORD)",
    smtplib.SMTPConnectError: "session refused",
    smtplib.SMTPHeloError: "EHLO refused",
}


def failure(
    exc: Exception, step: str, where: str, timeout: float, hidden: list[tuple[str, str]]
) -> DeliveryError:
    """Map what smtplib, ssl or the socket raised: a 5xx reply is permanent, a 4xx not."""
    if isinstance(exc, DeliveryError):
        return exc
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        reply: bytes | str
        (code, reply), what = next(iter(exc.recipients.values())), "recipient refused"
    elif isinstance(exc, smtplib.SMTPResponseException):
        code, reply = exc.smtp_code, exc.smtp_error
        what = _REFUSED.get(type(exc), f"{step} refused")
    else:
        return _local_failure(exc, step, where, timeout)
    text = _scrub(reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply, hidden)
    return DeliveryError(
        f"SMTP {code} {what}: {text}",
        retryable=not 500 <= code < 600,
        code=str(code) if 200 <= code < 600 else None,
    )


def _local_failure(exc: Exception, step: str, where: str, timeout: float) -> DeliveryError:
    """A failure without an SMTP reply: the network, TLS, or what the relay offers."""
    if isinstance(exc, smtplib.SMTPServerDisconnected) and isinstance(
        exc.__context__, TimeoutError
    ):
        exc = exc.__context__  # how smtplib reports a read that timed out
    if isinstance(exc, smtplib.SMTPNotSupportedError):
        # No STARTTLS may be a downgrade on the way and pass; no AUTH or SMTPUTF8 is how
        # the relay is set up: an operator must act, so the message moves on.
        return DeliveryError(f"{where}: {exc}", retryable=step == "starttls")
    if isinstance(exc, smtplib.SMTPServerDisconnected):
        return DeliveryError(f"{where} closed the connection ({step})")
    if isinstance(exc, smtplib.SMTPException):
        # During login that is "no suitable authentication method": configuration. Its
        # text is smtplib's own, never the relay's.
        return DeliveryError(f"{where}: {exc} ({step})", retryable=step != "auth")
    if isinstance(exc, ssl.SSLCertVerificationError):
        return DeliveryError(f"{where}: TLS certificate not accepted: {exc.verify_message}")
    if isinstance(exc, ssl.SSLError):
        return DeliveryError(f"{where}: TLS failed: {exc.reason or type(exc).__name__} ({step})")
    if isinstance(exc, TimeoutError):
        return DeliveryError(f"{where}: no answer within {timeout:g} s ({step})")
    if isinstance(exc, OSError):
        return DeliveryError(f"{where}: {exc.strerror or type(exc).__name__} ({step})")
    return DeliveryError(f"{where}: {type(exc).__name__} ({step})")
