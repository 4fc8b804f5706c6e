"""The ``twilio`` provider: SMS through Twilio's Messages API (or a compatible gateway)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
from collections.abc import Iterable
from typing import Any, ClassVar, Literal
from urllib.parse import quote, urlsplit, urlunsplit

import httpx

from verifyd import __version__
from verifyd.destinations import mask
from verifyd.providers.base import DeliveryError, MessageKind, OutgoingMessage, Provider
from verifyd.providers.http import retry_after
from verifyd.settings import Settings

log = logging.getLogger("verifyd.providers.twilio")

#: Where Twilio posts a message's status callbacks (under ``VERIFYD_PUBLIC_BASE_URL``).
STATUS_PATH = "/v1/providers/twilio/status"

#: Twilio's final message statuses, as the outbox names them. ``failed`` (Twilio could not
#: send it) and ``undelivered`` (the carrier refused it) both leave the phone without the
#: code. The others (``accepted``, ``queued``, ``sending``, ``sent``, ``scheduled``, ``read``,
#: …) say nothing the outbox records.
FINAL_STATUSES: dict[str, Literal["delivered", "undelivered"]] = {
    "delivered": "delivered",
    "undelivered": "undelivered",
    "failed": "undelivered",
}

#: Longest error text kept from an answer (it lands in the outbox's ``last_error``).
MAX_ERROR_TEXT = 200


def status_callback_url(settings: Settings) -> str:
    """The ``StatusCallback`` verifyd gives Twilio, and the URL its signatures cover."""
    return f"{settings.public_base_url}{STATUS_PATH}"


def signature(token: str, url: str, params: Iterable[tuple[str, str]]) -> str:
    """Twilio's ``X-Twilio-Signature`` for a form POST to ``url``.

    Base64 of HMAC-SHA1, keyed with the auth token, over the URL followed by every
    parameter name and value concatenated, sorted by name, then by value, each pair
    once: what ``twilio.request_validator.RequestValidator.compute_signature`` does.

    Args:
        token: The account's auth token.
        url: The full URL Twilio requested (the ``StatusCallback`` it was given).
        params: The POST parameters as ``(name, value)`` pairs.
    """
    data = url + "".join(name + value for name, value in sorted(set(params)))
    mac = hmac.new(token.encode("utf-8"), data.encode("utf-8"), hashlib.sha1)
    return base64.b64encode(mac.digest()).decode("ascii")


def signature_valid(
    token: str, url: str, params: Iterable[tuple[str, str]], given: str | None
) -> bool:
    """Whether ``given`` is Twilio's signature of this request, compared in constant time.

    Like Twilio's own validators it accepts the URL with and without its default port
    (``:443``/``:80``), since Twilio has signed both spellings.
    """
    if not given:
        return False
    pairs = list(params)
    expected = given.strip().encode("ascii", "replace")
    matches = [
        hmac.compare_digest(signature(token, spelling, pairs).encode("ascii"), expected)
        for spelling in _port_spellings(url)
    ]
    return any(matches)


def _port_spellings(url: str) -> list[str]:
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:  # an IPv6 literal keeps its brackets
        host = f"[{host}]"
    default = 443 if parts.scheme == "https" else 80
    without = urlunsplit(parts._replace(netloc=host))
    with_port = urlunsplit(parts._replace(netloc=f"{host}:{parts.port or default}"))
    return [url, without, with_port]


class TwilioProvider(Provider):
    """Sends SMS with a ``POST /2010-04-01/Accounts/{AccountSid}/Messages.json``.

    A 2xx is sent (the answer's ``sid`` is kept for the delivery receipts), a 4xx is a
    permanent failure with Twilio's error code, and a 429, a 5xx, a timeout or a broken
    connection is retried, honouring ``Retry-After``. Each message asks Twilio to post
    its status changes to ``{public_base_url}/v1/providers/twilio/status``.

    Twilio's Messages API takes no idempotency key, so a request that timed out after
    Twilio accepted it is sent again on retry (delivery is at least once). The message
    id goes out as ``Idempotency-Key`` anyway, for Twilio-compatible gateways that
    deduplicate on it; Twilio ignores the header.
    """

    name = "twilio"
    kinds: ClassVar[frozenset[MessageKind]] = frozenset({"sms"})

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self._client: httpx.AsyncClient | None = None

    @classmethod
    def check_settings(cls, settings: Settings) -> list[str]:
        """Every problem of the account, the sender, the API root and the timeout at once.

        An ``http://`` API root is allowed (internal relays are common); in production
        ``floors.py`` warns about it, since each request carries the auth token and a live
        code. Problems never quote the URL (it may hold credentials) or the token.
        """
        problems = []
        if not (settings.twilio_account_sid or "").strip():
            problems.append("VERIFYD_TWILIO_ACCOUNT_SID is not set")
        token = settings.twilio_auth_token.get_secret_value() if settings.twilio_auth_token else ""
        if not token.strip():
            problems.append("VERIFYD_TWILIO_AUTH_TOKEN is not set")
        if not (settings.twilio_from or settings.twilio_messaging_service_sid):
            problems.append(
                "set VERIFYD_TWILIO_FROM or VERIFYD_TWILIO_MESSAGING_SERVICE_SID (the sender)"
            )
        problems += _base_url_problems(settings.twilio_base_url)
        if settings.twilio_timeout_seconds >= settings.delivery_lease_seconds:
            # A call outliving its lease lets another worker send the message again.
            problems.append(
                "VERIFYD_TWILIO_TIMEOUT_SECONDS must be shorter than VERIFYD_DELIVERY_LEASE_SECONDS"
            )
        return problems

    @property
    def messages_url(self) -> str:
        """``{base}/2010-04-01/Accounts/{AccountSid}/Messages.json``."""
        sid = quote(self.settings.twilio_account_sid or "", safe="")
        root = self.settings.twilio_base_url.rstrip("/")
        return f"{root}/2010-04-01/Accounts/{sid}/Messages.json"

    def _client_now(self) -> httpx.AsyncClient:
        if self._client is None:
            token = self.settings.twilio_auth_token
            self._client = httpx.AsyncClient(
                auth=httpx.BasicAuth(
                    self.settings.twilio_account_sid or "",
                    token.get_secret_value() if token else "",
                ),
                timeout=self.settings.twilio_timeout_seconds,
                # A redirect would carry the credentials and the code somewhere else.
                follow_redirects=False,
                headers={"User-Agent": f"verifyd/{__version__}", "Accept": "application/json"},
            )
        return self._client

    def form(self, message: OutgoingMessage) -> dict[str, str]:
        """The form fields of a message.

        With both a number and a Messaging Service set, both go: Twilio then sends from
        that number, which must be in the service's sender pool, and applies the
        service's features.
        """
        fields = {"To": message.to, "Body": message.body}
        if self.settings.twilio_from:
            fields["From"] = self.settings.twilio_from
        if self.settings.twilio_messaging_service_sid:
            fields["MessagingServiceSid"] = self.settings.twilio_messaging_service_sid
        fields["StatusCallback"] = status_callback_url(self.settings)
        return fields

    async def send(self, message: OutgoingMessage) -> str | None:
        """Create the Twilio message; returns its ``SM…`` SID.

        Raises:
            DeliveryError: permanent for a 3xx or a 4xx other than 408/429 (``code``
                is Twilio's error code), retryable otherwise.
        """
        client = self._client_now()
        try:
            response = await client.post(
                self.messages_url,
                data=self.form(message),
                headers={"Idempotency-Key": message.id},
            )
        except httpx.TimeoutException as exc:
            raise DeliveryError(
                f"twilio did not answer within {self.settings.twilio_timeout_seconds:g} s"
            ) from exc
        except httpx.HTTPError as exc:  # refused, reset, dropped before an answer
            raise DeliveryError(f"twilio unreachable ({type(exc).__name__})") from exc
        status = response.status_code
        body = _json(response.content)
        if 200 <= status < 300:
            sid = body.get("sid") if body is not None else None
            if isinstance(sid, str) and 0 < len(sid) <= 64:
                return sid
            # Accepted all the same: sending it again would send the code twice.
            log.warning("twilio accepted %s but its answer carried no sid", message.id)
            return None
        raise self._failure(status, body, response.headers.get("retry-after"), message)

    def _failure(
        self, status: int, body: dict[str, Any] | None, after: str | None, message: OutgoingMessage
    ) -> DeliveryError:
        code = body.get("code") if body is not None else None
        code_text = str(code)[:32] if isinstance(code, int | str) and str(code) else None
        text = f"twilio answered {status}" + (f" ({code_text})" if code_text else "")
        detail = body.get("message") if body is not None else None
        if isinstance(detail, str) and detail:
            text += ": " + self._scrub(detail[:MAX_ERROR_TEXT], message)
        if 300 <= status < 400:
            text += " (redirects are not followed: check VERIFYD_TWILIO_BASE_URL)"
        retryable = status in (408, 429) or status >= 500 or status < 300
        return DeliveryError(
            text, retryable=retryable, code=code_text, retry_after=retry_after(after)
        )

    def _scrub(self, text: str, message: OutgoingMessage) -> str:
        """The answer's text without the message's secrets or its whole destination."""
        token = self.settings.twilio_auth_token
        secrets = (
            message.body,
            message.code,
            message.link,
            token.get_secret_value() if token else None,
        )
        for secret in secrets:
            if secret:
                text = text.replace(secret, "[redacted]")
        return text.replace(message.to, mask("phone", message.to))

    async def aclose(self) -> None:
        """Close the HTTP client, if a send opened one."""
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()


def _base_url_problems(url: str) -> list[str]:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a port out of range
        httpx.URL(url)
    except (ValueError, httpx.InvalidURL):
        return ["VERIFYD_TWILIO_BASE_URL is not a valid URL"]
    if any(c.isspace() for c in url) or parts.scheme not in ("http", "https"):
        return ["VERIFYD_TWILIO_BASE_URL must be an http:// or https:// URL"]
    if not parts.hostname:
        return ["VERIFYD_TWILIO_BASE_URL has no host"]
    if parts.username is not None or parts.query or parts.fragment:
        return ["VERIFYD_TWILIO_BASE_URL must be the API root alone (no credentials or query)"]
    return []


def _json(content: bytes) -> dict[str, Any] | None:
    """The answer as a JSON object, or ``None`` for anything else (HTML, garbage)."""
    try:
        value = json.loads(content)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None
