"""The ``smtp`` provider: email through any SMTP relay (plain, STARTTLS or implicit TLS)."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import re
import smtplib
import ssl
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import format_datetime, formataddr, getaddresses
from typing import TYPE_CHECKING, ClassVar
from urllib.parse import urlsplit

from email_validator import EmailNotValidError, validate_email

from verifyd.providers.base import DeliveryError, MessageKind, OutgoingMessage, Provider
from verifyd.providers.smtp_errors import failure, hidden_values
from verifyd.settings import ConfigurationError

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer

    from verifyd.settings import Settings

#: The port each ``VERIFYD_SMTP_TLS`` mode uses when ``VERIFYD_SMTP_PORT`` is unset.
DEFAULT_PORTS = {"none": 25, "starttls": 587, "tls": 465}
#: A kept connection idle for longer is not trusted: relays drop idle sessions (often
#: after 60-300 s) and a NAT may drop them silently, which only a timeout would reveal.
REUSE_IDLE_SECONDS = 30.0
_LANGUAGE_TAG = re.compile(r"^[A-Za-z]{2,8}(-[A-Za-z0-9]{1,8})*$")
#: How relays name their queue id in the DATA reply (Postfix, SendGrid; Exim).
_QUEUE_ID = re.compile(r"queued as ([\w.-]{1,64})|\bid=([\w.-]{1,64})", re.IGNORECASE)


@dataclass(frozen=True)
class Sender:
    """``VERIFYD_SMTP_FROM`` parsed: the ``From`` header, envelope address, Message-ID domain."""

    header: str
    address: str
    domain: str


def parse_sender(value: str) -> Sender:
    """Parse ``noreply@example.com`` or ``Example <noreply@example.com>``.

    Raises:
        ValueError: not exactly one valid address, a line break, or a non-ASCII address
            (the envelope sender must work on relays without SMTPUTF8).
    """
    if "\r" in value or "\n" in value:
        raise ValueError("contains a line break")
    parsed = getaddresses([value])
    if len(parsed) != 1 or not parsed[0][1]:
        raise ValueError("is not one address or 'Name <address>'")
    name, address = parsed[0]
    try:
        checked = validate_email(
            address, check_deliverability=False, allow_smtputf8=False, globally_deliverable=False
        )
    except EmailNotValidError as exc:
        raise ValueError(f"is not a valid address ({exc})") from None
    # formataddr quotes the display name and encodes a non-ASCII one (RFC 5322 / 2047).
    header = formataddr((name, checked.normalized))
    return Sender(header, checked.normalized, checked.ascii_domain)


def _recipient(to: str) -> str:
    """The address for RCPT TO and ``To``: ASCII (punycode domain) when it can be."""
    try:
        checked = validate_email(to, check_deliverability=False, globally_deliverable=False)
    except EmailNotValidError:
        raise DeliveryError("the recipient address is not valid", retryable=False) from None
    # A non-ASCII local part cannot be made ASCII: it needs the relay's SMTPUTF8.
    return checked.ascii_email or checked.normalized


class _Plain(smtplib.SMTP):
    """Keeps the DATA reply, which names the relay's queue id (``sendmail`` drops it)."""

    data_reply = b""

    def data(self, msg: ReadableBuffer | str) -> tuple[int, bytes]:
        code, reply = super().data(msg)
        self.data_reply = reply
        return code, reply


class _Implicit(smtplib.SMTP_SSL, _Plain):
    """Implicit TLS (port 465), keeping the DATA reply like ``_Plain``."""


class SmtpProvider(Provider):
    """Sends email through the relay ``VERIFYD_SMTP_*`` names; certificates are verified.

    One connection is kept and reused (checked with ``NOOP`` first) so a burst of
    signups does not pay a TLS handshake and a login per message; any failure closes
    it. The ``Message-ID`` is derived from the outbox id, so a redelivery after a crash
    carries the same one: SMTP has no idempotency key, and it is what mailbox
    providers de-duplicate on.
    """

    name = "smtp"
    kinds: ClassVar[frozenset[MessageKind]] = frozenset({"email"})

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        problems = self.check_settings(settings)
        if problems:
            raise ConfigurationError("smtp: " + "; ".join(problems))
        assert settings.smtp_host is not None and settings.smtp_from is not None
        self.host = settings.smtp_host.strip()
        self.port = settings.smtp_port or DEFAULT_PORTS[settings.smtp_tls]
        self.sender = parse_sender(settings.smtp_from)
        self.local_hostname = _helo_name(settings.public_base_url)
        self._lock = threading.Lock()
        self._context: ssl.SSLContext | None = None
        self._smtp: _Plain | None = None
        self._last_used = 0.0
        #: What the session was doing when it failed, for the error text.
        self._step = "connect"

    @classmethod
    def check_settings(cls, settings: Settings) -> list[str]:
        """Host and sender required and valid; username and password come together."""
        problems = []
        if not (settings.smtp_host or "").strip():
            problems.append("VERIFYD_SMTP_HOST is required")
        if not settings.smtp_from:
            problems.append("VERIFYD_SMTP_FROM is required")
        else:
            try:
                parse_sender(settings.smtp_from)
            except ValueError as exc:
                problems.append(f"VERIFYD_SMTP_FROM {exc}")
        password = settings.smtp_password.get_secret_value() if settings.smtp_password else ""
        if settings.smtp_username and not password:
            problems.append("VERIFYD_SMTP_USERNAME is set without VERIFYD_SMTP_PASSWORD")
        if password and not settings.smtp_username:
            problems.append("VERIFYD_SMTP_PASSWORD is set without VERIFYD_SMTP_USERNAME")
        if settings.smtp_username and settings.smtp_tls == "none":
            problems.append("VERIFYD_SMTP_TLS=none would send the password unencrypted")
        if settings.smtp_ca_file is not None:
            try:
                ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(
                    cafile=settings.smtp_ca_file
                )
            except (OSError, ssl.SSLError) as exc:  # missing, unreadable, or no PEM in it
                problems.append(f"VERIFYD_SMTP_CA_FILE {settings.smtp_ca_file}: {exc}")
        return problems

    def build(self, message: OutgoingMessage, to: str | None = None) -> EmailMessage:
        """The MIME message: text, plus an HTML alternative when the message has one.

        Raises:
            ValueError: a part cannot be encoded.
        """
        email = EmailMessage(policy=SMTP_POLICY)
        email["From"] = self.sender.header
        email["To"] = to or message.to
        # A template's stray line break must not end the header (or start another).
        email["Subject"] = " ".join((message.subject or self.settings.app_name).split())
        email["Date"] = format_datetime(datetime.now(UTC))
        email["Message-ID"] = f"<{message.id}@{self.sender.domain}>"
        # RFC 3834: no vacation responder or list should answer a verification email.
        email["Auto-Submitted"] = "auto-generated"
        email.set_content(message.body)
        if message.html is not None:
            email.add_alternative(message.html, subtype="html")
        # After the parts: setting content moves or drops the Content-* headers before it.
        if _LANGUAGE_TAG.match(message.locale):
            email["Content-Language"] = message.locale
        return email

    async def send(self, message: OutgoingMessage) -> str | None:
        """Send one email.

        Returns:
            The relay's queue id when its reply names one (``queued as …``), else ``None``.

        Raises:
            DeliveryError: a 5xx reply or a refused login (permanent, with the reply
                code); a 4xx reply, a timeout, a refused connection or a TLS failure
                (retryable).
        """
        to = _recipient(message.to)
        try:
            email = self.build(message, to)
        except ValueError:
            raise DeliveryError("the message cannot be encoded as email", retryable=False) from None
        hidden = hidden_values(self.settings, message, to)
        return await asyncio.to_thread(self._send, email, to, hidden)

    def _send(self, email: EmailMessage, to: str, hidden: list[tuple[str, str]]) -> str | None:
        with self._lock:
            self._step = "connect"
            try:
                smtp = self._session() or self._open()
                self._step = "send"
                smtp.send_message(email, from_addr=self.sender.address, to_addrs=[to])
            except Exception as exc:
                self._drop()
                raise failure(
                    exc,
                    self._step,
                    f"{self.host}:{self.port}",
                    self.settings.smtp_timeout_seconds,
                    hidden,
                ) from None
            self._last_used = time.monotonic()
            reply = smtp.data_reply.decode("utf-8", "replace")
        found = _QUEUE_ID.search(reply)
        return (found.group(1) or found.group(2)) if found else None

    def _session(self) -> _Plain | None:
        """The kept connection if it is recent and still answers ``NOOP``."""
        smtp = self._smtp
        if smtp is None:
            return None
        if time.monotonic() - self._last_used < REUSE_IDLE_SECONDS:
            try:
                if smtp.noop()[0] == 250:
                    return smtp
            except (smtplib.SMTPException, OSError):
                pass
        self._drop()
        return None

    def _open(self) -> _Plain:
        """Connect, secure and log in; the session is kept for the next message."""
        settings, timeout = self.settings, self.settings.smtp_timeout_seconds
        smtp: _Plain
        if settings.smtp_tls == "tls":
            context = self._tls_context()
            smtp = _Implicit(
                self.host, self.port, self.local_hostname, timeout=timeout, context=context
            )
        else:
            smtp = _Plain(self.host, self.port, self.local_hostname, timeout=timeout)
        self._smtp = smtp
        smtp.ehlo()
        if settings.smtp_tls == "starttls":
            self._step = "starttls"
            # Never fall back to plain text: a missing STARTTLS may be an attacker's doing.
            smtp.starttls(context=self._tls_context())
            smtp.ehlo()
        if settings.smtp_username:
            self._step = "auth"
            password = settings.smtp_password.get_secret_value() if settings.smtp_password else ""
            smtp.login(settings.smtp_username, password)
        return smtp

    def _tls_context(self) -> ssl.SSLContext:
        """The system's CAs plus ``VERIFYD_SMTP_CA_FILE``; the host name is checked."""
        if self._context is None:
            context = ssl.create_default_context()
            if self.settings.smtp_ca_file is not None:
                context.load_verify_locations(cafile=self.settings.smtp_ca_file)
            self._context = context
        return self._context

    def _drop(self, polite: bool = False) -> None:
        """Close the kept connection, after a ``QUIT`` if ``polite``."""
        smtp, self._smtp = self._smtp, None
        if smtp is not None and polite:
            with contextlib.suppress(smtplib.SMTPException, OSError):
                smtp.quit()
        if smtp is not None:
            smtp.close()

    def _quit(self) -> None:
        with self._lock:  # after a send in flight ends
            self._drop(polite=True)

    async def aclose(self) -> None:
        """Say ``QUIT`` on the kept connection, if any."""
        await asyncio.to_thread(self._quit)


def _helo_name(public_base_url: str) -> str:
    """The EHLO name: the service's public host (``socket.getfqdn`` may wait on DNS)."""
    host = urlsplit(public_base_url).hostname or "localhost"
    with contextlib.suppress(ValueError):
        ip = ipaddress.ip_address(host)
        return f"[{ip}]" if ip.version == 4 else f"[IPv6:{ip}]"
    with contextlib.suppress(UnicodeError):
        return host.encode("idna").decode("ascii")
    return "localhost"
