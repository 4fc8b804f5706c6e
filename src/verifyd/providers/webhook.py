"""The ``webhook`` provider: a JSON POST, signed the Standard Webhooks way, to a gateway.

The request, its payload and what each answer means are documented in ``docs/webhooks.md``;
change them together.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import urlsplit

import httpx
from standardwebhooks import Webhook

from verifyd import __version__
from verifyd.providers.base import DeliveryError, MessageKind, OutgoingMessage, Provider
from verifyd.providers.http import retry_after

if TYPE_CHECKING:
    from verifyd.settings import Settings

#: The payload's ``version``: bumped only for a change a receiver could trip on.
PAYLOAD_VERSION = 1
SECRET_PREFIX = "whsec_"
USER_AGENT = f"verifyd/{__version__} (webhook provider)"
#: The longest provider id kept (``messages.provider_message_id`` is 64 characters).
MAX_PROVIDER_ID = 64
#: How much of a 2xx answer is read looking for ``{"id": …}``; a larger answer has no id.
MAX_ANSWER_BYTES = 16 * 1024
#: 4xx answers that mean "later", not "never".
RETRYABLE_4XX = frozenset({408, 429})


class WebhookProvider(Provider):
    """POSTs each message as JSON to ``VERIFYD_WEBHOOK_URL`` for the operator's own gateway.

    Every request carries Standard Webhooks headers: ``webhook-id`` is the outbox message
    id (the same on every retry, so the receiver can deduplicate), ``webhook-timestamp``
    the attempt's Unix time, ``webhook-signature`` ``v1,`` and the base64 HMAC-SHA256 of
    ``id.timestamp.body`` under ``VERIFYD_WEBHOOK_SECRET``.

    Args:
        settings: The running settings.
    """

    name = "webhook"
    kinds: ClassVar[frozenset[MessageKind]] = frozenset({"sms", "email"})

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self._client: httpx.AsyncClient | None = None
        self._signer: Webhook | None = None

    @classmethod
    def check_settings(cls, settings: Settings) -> list[str]:
        """Every problem of the URL, the secret and the timeout at once.

        An ``http://`` URL is allowed (internal relays are common); in production
        ``floors.py`` warns about it, since the body carries live codes and links. Problems
        never quote the
        URL (it may hold credentials) or the secret.
        """
        problems = []
        if not settings.webhook_url:
            problems.append("VERIFYD_WEBHOOK_URL is not set")
        else:
            problems += _url_problems(settings.webhook_url)
        secret = settings.webhook_secret.get_secret_value() if settings.webhook_secret else ""
        if not secret.strip():
            problems.append("VERIFYD_WEBHOOK_SECRET is not set (whsec_ and base64)")
        elif _secret_key(secret) is None:
            problems.append(
                "VERIFYD_WEBHOOK_SECRET must be whsec_ followed by non-empty standard base64"
            )
        if settings.webhook_timeout_seconds >= settings.delivery_lease_seconds:
            # A call outliving its lease lets another worker send the message again.
            problems.append(
                "VERIFYD_WEBHOOK_TIMEOUT_SECONDS must be shorter than "
                "VERIFYD_DELIVERY_LEASE_SECONDS"
            )
        return problems

    async def send(self, message: OutgoingMessage) -> str | None:
        """POST the message; the gateway's ``{"id": …}`` answer is its provider id.

        Raises:
            DeliveryError: a 4xx other than 408/429 or a 3xx (permanent, ``http_<status>``);
                408, 429, 5xx, a timeout or a connection failure (retryable), with the
                answer's ``Retry-After`` when it gave one.
        """
        client, signer = self._open()
        text = payload(message)
        timestamp = int(time.time())
        headers = {
            "webhook-id": message.id,
            "webhook-timestamp": str(timestamp),
            # The library signs the UTF-8 of ``text``: the very bytes sent below.
            "webhook-signature": signer.sign(
                message.id, datetime.fromtimestamp(timestamp, UTC), text
            ),
            "Content-Type": "application/json",
        }
        timeout = self.settings.webhook_timeout_seconds
        try:
            # httpx's timeout bounds each read; this bounds the whole exchange, so a
            # gateway trickling bytes cannot hold the message past its lease.
            async with asyncio.timeout(timeout):
                return await self._post(client, text.encode(), headers)
        except (TimeoutError, httpx.TimeoutException) as exc:
            raise DeliveryError(f"webhook timed out after {timeout:g} s", code="timeout") from exc
        except httpx.UnsupportedProtocol as exc:
            raise DeliveryError(
                "webhook URL scheme unsupported", retryable=False, code="bad_url"
            ) from exc
        except httpx.ConnectError as exc:
            raise DeliveryError("webhook connection failed", code="connect_error") from exc
        except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError) as exc:
            raise DeliveryError(
                f"webhook connection lost before an answer ({type(exc).__name__})",
                code="connection_lost",
            ) from exc
        except httpx.TransportError as exc:
            raise DeliveryError(
                f"webhook transport error ({type(exc).__name__})", code="transport_error"
            ) from exc

    async def _post(
        self, client: httpx.AsyncClient, body: bytes, headers: dict[str, str]
    ) -> str | None:
        url = self.settings.webhook_url or ""
        async with client.stream("POST", url, content=body, headers=headers) as answer:
            status = answer.status_code
            if 200 <= status < 300:
                return _provider_id(await _read_capped(answer))
            retryable = status in RETRYABLE_4XX or status >= 500
            # Only the status: an answer's body may echo the request (the code in it).
            raise DeliveryError(
                f"webhook answered {status}",
                retryable=retryable,
                code=f"http_{status}",
                retry_after=retry_after(answer.headers.get("Retry-After")) if retryable else None,
            )

    def _open(self) -> tuple[httpx.AsyncClient, Webhook]:
        if self._client is None or self._signer is None:
            problems = self.check_settings(self.settings)
            secret = self.settings.webhook_secret
            key = _secret_key(secret.get_secret_value()) if secret and not problems else None
            if key is None:
                raise DeliveryError(
                    "webhook provider misconfigured: " + "; ".join(problems),
                    retryable=False,
                    code="misconfigured",
                )
            self._signer = Webhook(key)
            self._client = httpx.AsyncClient(
                timeout=httpx.Timeout(self.settings.webhook_timeout_seconds),
                follow_redirects=False,  # a redirect is a misconfigured URL, not a delivery
                headers={"User-Agent": USER_AGENT},
            )
        return self._client, self._signer

    async def aclose(self) -> None:
        """Close the HTTP client, if a send opened one."""
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()


def payload(message: OutgoingMessage) -> str:
    """The request body: compact JSON in UTF-8 (``docs/webhooks.md`` lists every field).

    The code or token is not a field of its own: the text carries it, one copy fewer.
    """
    document: dict[str, Any] = {
        "type": f"message.{message.kind}",
        "version": PAYLOAD_VERSION,
        "id": message.id,
        "kind": message.kind,
        "to": message.to,
        "locale": message.locale,
        "purpose": message.purpose,
    }
    if message.subject is not None:
        document["subject"] = message.subject
    document["body"] = message.body
    if message.html is not None:
        document["html"] = message.html
    document["created_at"] = _timestamp(message.created_at)
    return json.dumps(document, ensure_ascii=False, separators=(",", ":"))


def _timestamp(moment: datetime) -> str:
    if moment.tzinfo is None:  # stored UTC without its zone
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _secret_key(secret: str) -> bytes | None:
    """The key of a ``whsec_<base64>`` secret, or ``None`` when it is not one.

    Decoded strictly: ``standardwebhooks`` alone skips characters outside the alphabet
    (a URL-safe ``-`` or ``_``), which would sign with a key the receiver does not hold.
    """
    secret = secret.strip()
    if not secret.startswith(SECRET_PREFIX):
        return None
    encoded = secret[len(SECRET_PREFIX) :]
    encoded += "=" * (-len(encoded) % 4)  # the library accepts unpadded secrets too
    try:
        key = base64.b64decode(encoded, validate=True)
    except binascii.Error:
        return None
    return key or None


def _url_problems(url: str) -> list[str]:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a port out of range
        httpx.URL(url)
    except (ValueError, httpx.InvalidURL):
        return ["VERIFYD_WEBHOOK_URL is not a valid URL"]
    if any(c.isspace() for c in url) or parts.scheme not in ("http", "https"):
        return ["VERIFYD_WEBHOOK_URL must be an http:// or https:// URL"]
    if not parts.hostname:
        return ["VERIFYD_WEBHOOK_URL has no host"]
    return []


async def _read_capped(answer: httpx.Response) -> bytes | None:
    """The answer's body, or ``None`` past ``MAX_ANSWER_BYTES`` (never read whole)."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in answer.aiter_bytes():
        size += len(chunk)
        if size > MAX_ANSWER_BYTES:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _provider_id(body: bytes | None) -> str | None:
    """``id`` of a ``{"id": "…"}`` answer: a printable string of at most 64 characters."""
    if not body:
        return None
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):  # not JSON (or absurdly nested): no id, still sent
        return None
    ident = document.get("id") if isinstance(document, dict) else None
    if isinstance(ident, str) and 0 < len(ident) <= MAX_PROVIDER_ID and ident.isprintable():
        return ident
    return None
