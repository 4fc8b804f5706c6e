"""A real SMTP server on 127.0.0.1 (aiosmtpd) that records what it accepts.

It speaks plain SMTP, STARTTLS (required before MAIL) or implicit TLS with a
certificate from a throwaway ``trustme`` CA, optionally demands AUTH (checking the
password itself), and answers a scripted reply (a 451, a 550) at MAIL, RCPT or DATA
when the test asks. Every accepted message is kept whole, raw and parsed with the
standard library's email parser, with what the session looked like (TLS, login).
"""

from __future__ import annotations

import asyncio
import email.policy
import secrets
import ssl
import threading
from dataclasses import dataclass
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, cast

import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

Tls = Literal["none", "starttls", "tls"]
Stage = Literal["mail", "rcpt", "data"]


class Certificates:
    """A throwaway CA and a server certificate it issued (in memory; nothing committed).

    Args:
        names: What the certificate is valid for; by default the loopback address.
    """

    def __init__(self, *names: str) -> None:
        self.ca = trustme.CA()
        self.cert = self.ca.issue_cert(*(names or ("127.0.0.1", "localhost")))

    def server_context(self) -> ssl.SSLContext:
        """A server-side context presenting the certificate."""
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.cert.configure_cert(context)
        return context

    def write_ca(self, path: Path) -> Path:
        """Write the CA certificate (PEM) to ``path``, for ``VERIFYD_SMTP_CA_FILE``."""
        self.ca.cert_pem.write_to_path(str(path))
        return path


@dataclass(frozen=True)
class Received:
    """One message the server accepted, and the session it came in."""

    mail_from: str
    rcpt_tos: list[str]
    raw: bytes
    tls: bool
    login: str | None
    helo: str | None
    mail_options: list[str]
    queue_id: str

    @property
    def message(self) -> EmailMessage:
        """The message parsed by the standard library (``email.policy.default``)."""
        parsed = BytesParser(policy=email.policy.default).parsebytes(self.raw)
        return cast(EmailMessage, parsed)


class _Controller(Controller):
    """Binds port 0 and learns the port the kernel chose (no free-port race).

    It also remembers every session, so ``stop`` can close connections a client left
    open (aiosmtpd's own stop leaves their sockets to the garbage collector).
    """

    def __init__(self, handler: Any, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self.protocols: list[SMTP] = []

    def factory(self) -> SMTP:
        session: SMTP = super().factory()
        self.protocols.append(session)
        return session

    def _trigger_server(self) -> None:
        assert self.server is not None
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()

    def close_sessions(self) -> None:
        """Close every open connection, from the server's own loop, and wait for it."""

        async def close() -> None:
            for session in self.protocols:
                if session.transport is not None:
                    session.transport.close()
            await asyncio.sleep(0)  # let connection_lost run

        asyncio.run_coroutine_threadsafe(close(), self.loop).result(5)


class SmtpServer:
    """An SMTP server on a free loopback port; use as a context manager.

    Args:
        tls: ``none``, ``starttls`` (offered and required before MAIL) or ``tls``.
        certificates: The certificate for TLS; a fresh one by default.
        credentials: ``(username, password)``: AUTH is then required (after TLS).
        smtputf8: Whether the server offers SMTPUTF8.
    """

    def __init__(
        self,
        tls: Tls = "none",
        *,
        certificates: Certificates | None = None,
        credentials: tuple[str, str] | None = None,
        smtputf8: bool = True,
    ) -> None:
        self.certificates = certificates or Certificates()
        self.credentials = credentials
        self.messages: list[Received] = []
        #: ``(login, accepted)`` for every AUTH attempt.
        self.logins: list[tuple[str, bool]] = []
        #: Sessions that reached EHLO (one per connection the client opened).
        self.sessions = 0
        self._replies: dict[str, list[str]] = {"mail": [], "rcpt": [], "data": []}
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        kwargs: dict[str, Any] = {
            "hostname": "127.0.0.1",
            "port": 0,
            "server_hostname": "smtp.loopback.test",  # else aiosmtpd asks DNS for its FQDN
            "enable_SMTPUTF8": smtputf8,
        }
        if tls == "tls":
            kwargs["ssl_context"] = self.certificates.server_context()
        elif tls == "starttls":
            kwargs["tls_context"] = self.certificates.server_context()
            kwargs["require_starttls"] = True
        if credentials is not None:
            # AUTH is offered only inside TLS; aiosmtpd counts only STARTTLS as TLS, so
            # under implicit TLS its check is off. MAIL enforces the login (530) instead.
            kwargs["authenticator"] = self._authenticate
            kwargs["auth_require_tls"] = tls != "tls"
        self._controller = _Controller(self, **kwargs)

    @property
    def port(self) -> int:
        """The port it listens on (after ``start``)."""
        port: int = self._controller.port
        return port

    def answer(self, stage: Stage, reply: str, times: int = 1) -> None:
        """Answer the next ``times`` MAIL / RCPT / DATA commands with ``reply``."""
        with self._lock:
            self._replies[stage].extend([reply] * times)

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Received]:
        """Block until at least ``count`` messages were accepted; returns them all.

        Raises:
            AssertionError: fewer arrived within ``timeout`` seconds.
        """
        with self._arrived:
            arrived = self._arrived.wait_for(lambda: len(self.messages) >= count, timeout)
            assert arrived, f"{len(self.messages)} of {count} emails arrived in {timeout} s"
            return list(self.messages)

    def drop_connections(self) -> None:
        """Close every client connection, as a relay does with idle sessions."""
        self._controller.close_sessions()

    def _scripted(self, stage: Stage) -> str | None:
        with self._lock:
            queue = self._replies[stage]
            return queue.pop(0) if queue else None

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        assert self.credentials is not None
        ok = False
        login = ""
        if isinstance(data, LoginPassword):
            login = data.login.decode()
            ok = (login, data.password.decode()) == self.credentials
        with self._lock:
            self.logins.append((login, ok))
        # handled=False: aiosmtpd itself answers a failure (535), as a relay does.
        return AuthResult(success=ok, handled=False, auth_data=login if ok else None)

    # aiosmtpd handler hooks ------------------------------------------------------

    async def handle_EHLO(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        hostname: str,
        responses: list[str],
    ) -> list[str]:
        session.host_name = hostname
        with self._lock:
            self.sessions += 1
        return responses

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if self.credentials is not None and not session.authenticated:
            return "530 5.7.0 Authentication required"
        reply = self._scripted("mail")
        if reply is not None:
            return reply
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        reply = self._scripted("rcpt")
        if reply is not None:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        reply = self._scripted("data")
        if reply is not None:
            return reply
        transport = server.transport
        queue_id = f"Q{secrets.token_hex(5).upper()}"
        received = Received(
            mail_from=str(envelope.mail_from),
            rcpt_tos=list(envelope.rcpt_tos),
            raw=bytes(envelope.original_content or b""),
            tls=transport is not None and transport.get_extra_info("ssl_object") is not None,
            login=session.auth_data if session.authenticated else None,
            helo=session.host_name,
            mail_options=list(envelope.mail_options),
            queue_id=queue_id,
        )
        with self._arrived:
            self.messages.append(received)
            self._arrived.notify_all()
        return f"250 2.0.0 Ok: queued as {queue_id}"

    def start(self) -> SmtpServer:
        """Start serving in aiosmtpd's background thread."""
        self._controller.start()
        return self

    def stop(self) -> None:
        """Stop serving and release the port."""
        self._controller.close_sessions()
        self._controller.stop()

    def __enter__(self) -> SmtpServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
