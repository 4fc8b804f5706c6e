"""A loopback Twilio Messages API that checks each request the way Twilio does.

Built on :class:`support.gateway.Gateway`. Every request is checked for what Twilio
requires of ``POST /2010-04-01/Accounts/{AccountSid}/Messages.json`` (method, path,
Basic auth, form encoding in UTF-8, ``To``, ``Body``, a sender: ``From`` and/or
``MessagingServiceSid``, a valid ``StatusCallback``) and refused with Twilio's error
body when it falls short; each refusal is also kept in ``refusals``, so a test can
assert that verifyd never sent Twilio anything it would refuse. A valid request gets
what the test scripted (a 400 with Twilio's error, a 429 with ``Retry-After``, a 5xx,
a hang past the client's timeout, a dropped connection) or, by default, Twilio's 201
with a message resource. ``callback`` builds the status callback Twilio would then
post, signed with the official SDK.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import threading
from collections import deque
from dataclasses import dataclass
from email.utils import format_datetime
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from twilio.request_validator import RequestValidator

from support.gateway import Answer, Gateway, Request
from verifyd.models import utcnow

ACCOUNT_SID = "AC" + "5ef8732a3c49700934481addd5ce1659"
AUTH_TOKEN = "0123456789abcdef0123456789abcdef"
SERVICE_SID = "MG" + "9752274e9e519418a7406176694466fa"
FROM = "+15005550006"

_SID = re.compile(r"^[A-Z]{2}[0-9a-f]{32}$")
_E164 = re.compile(r"^\+[1-9][0-9]{1,14}$")
_PATH = re.compile(r"^/2010-04-01/Accounts/([^/]+)/Messages\.json$")
_SERVICE = re.compile(r"^MG[0-9a-fA-F]{32}$")
#: Twilio's limit on ``Body`` (longer bodies are refused, not truncated).
MAX_BODY = 1600


@dataclass(frozen=True)
class Hang:
    """Answer nothing until the test (or the gateway's shutdown) releases the request."""


HANG = Hang()
DROP = Answer(drop=True)


def error(status: int, code: int, message: str, headers: dict[str, str] | None = None) -> Answer:
    """Twilio's error answer: ``{"code", "message", "more_info", "status"}``."""
    body = {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }
    return Answer(status, json.dumps(body).encode(), headers or {})


def rate_limited(retry_after: str) -> Answer:
    """Twilio's 429 (20429) with a ``Retry-After`` (seconds or an HTTP-date)."""
    return error(429, 20429, "Too Many Requests", {"Retry-After": retry_after})


@dataclass(frozen=True)
class Sent:
    """A message the gateway accepted, as Twilio stored it."""

    sid: str
    to: str
    body: str
    from_: str | None
    messaging_service_sid: str | None
    status_callback: str | None
    idempotency_key: str | None


class TwilioGateway:
    """The Messages API of one account; use as a context manager.

    Args:
        account_sid: The account the path and Basic auth must name.
        auth_token: The account's auth token (Basic auth password, callback signing key).
        messaging_service_sid: The account's Messaging Service, if it has one.
    """

    def __init__(
        self,
        account_sid: str = ACCOUNT_SID,
        auth_token: str = AUTH_TOKEN,
        *,
        messaging_service_sid: str | None = SERVICE_SID,
    ) -> None:
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.messaging_service_sid = messaging_service_sid
        self.sent: list[Sent] = []
        self.refusals: list[str] = []
        self._script: deque[Answer | Hang] = deque()
        self._lock = threading.Lock()
        self._release = threading.Event()
        #: Bumped by ``reset``: a request released after it belongs to an earlier test.
        self._epoch = 0
        self._server = Gateway(self._handle)

    @property
    def url(self) -> str:
        """The API root, what ``VERIFYD_TWILIO_BASE_URL`` names."""
        return self._server.url

    @property
    def requests(self) -> list[Request]:
        """Every request that arrived, refused or not."""
        return list(self._server.requests)

    def script(self, *answers: Answer | Hang) -> None:
        """Answer the next valid requests with these, in order; then 201 again."""
        with self._lock:
            self._script.extend(answers)

    def reset(self) -> None:
        """Forget every request, message, refusal and scripted answer (one server, many tests)."""
        with self._lock:
            self.sent.clear()
            self.refusals.clear()
            self._script.clear()
            self._server.requests.clear()
            self._epoch += 1
        self._release.clear()

    def release(self) -> None:
        """Let every hanging request go (each then answers 201)."""
        self._release.set()

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Request]:
        """Block until ``count`` requests arrived; returns them all."""
        return self._server.wait_for(count, timeout)

    def callback(
        self, message: Sent, status: str, *, error_code: str | None = None
    ) -> tuple[str, dict[str, str], dict[str, str]]:
        """The status callback Twilio posts for ``message``: URL, form and headers.

        The form holds what Twilio sends for an SMS status change; the signature is
        the SDK's (``RequestValidator.compute_signature``) over the ``StatusCallback``
        the message was created with.
        """
        assert message.status_callback, "the message carried no StatusCallback"
        params = {
            "AccountSid": self.account_sid,
            "ApiVersion": "2010-04-01",
            "From": message.from_ or FROM,
            "MessageSid": message.sid,
            "MessageStatus": status,
            "SmsSid": message.sid,
            "SmsStatus": status,
            "To": message.to,
        }
        if message.messaging_service_sid:
            params["MessagingServiceSid"] = message.messaging_service_sid
        if error_code is not None:
            params["ErrorCode"] = error_code
        if status in ("delivered", "undelivered"):
            params["RawDlrDoneDate"] = utcnow().strftime("%y%m%d%H%M")
        signature = RequestValidator(self.auth_token).compute_signature(
            message.status_callback, params
        )
        return message.status_callback, params, {"X-Twilio-Signature": signature}

    # -- what Twilio checks -------------------------------------------------------------

    def _handle(self, request: Request) -> Answer:
        refused = self._check(request)
        if refused is not None:
            reason, answer = refused
            with self._lock:
                self.refusals.append(reason)
            return answer
        fields = dict(self._fields(request))
        with self._lock:
            scripted = self._script.popleft() if self._script else None
            epoch = self._epoch
        if isinstance(scripted, Hang):
            self._release.wait(60)
        elif scripted is not None:
            return scripted
        return self._created(request, fields, epoch)

    def _check(self, request: Request) -> tuple[str, Answer] | None:
        if request.method != "POST":
            return "method", error(405, 20004, "Method not allowed")
        match = _PATH.match(request.path)
        if match is None or match.group(1) != self.account_sid:
            return f"path {request.path}", error(404, 20404, "The requested resource was not found")
        if request.header("authorization") != self._basic():
            return "auth", error(
                401, 20003, "Authenticate", {"WWW-Authenticate": 'Basic realm="Twilio API"'}
            )
        content_type = (request.header("content-type") or "").split(";", 1)[0].strip().lower()
        if content_type != "application/x-www-form-urlencoded":
            return f"content-type {content_type!r}", error(400, 20001, "Unsupported content type")
        try:
            fields = self._fields(request)
        except ValueError as exc:
            return f"encoding: {exc}", error(400, 20001, "The body is not a UTF-8 form")
        names = [name for name, _ in fields]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            return f"repeated {repeated}", error(400, 20001, f"Repeated parameter {repeated[0]}")
        form = dict(fields)
        to, body = form.get("To", ""), form.get("Body", "")
        sender, service = form.get("From"), form.get("MessagingServiceSid")
        if not to:
            return "no To", error(400, 21604, "A 'To' phone number is required.")
        if not _E164.match(to):
            return f"To {to!r}", error(400, 21211, f"Invalid 'To' Phone Number: {to}")
        if not body:
            return "no Body", error(400, 21602, "Message body is required.")
        if len(body) > MAX_BODY:
            return "Body too long", error(
                400, 21617, "The concatenated message body exceeds the 1600 character limit."
            )
        if not sender and not service:
            return "no sender", error(
                400,
                21603,
                "A 'From' or 'MessagingServiceSid' parameter is required to send a message.",
            )
        if service is not None:
            if not _SERVICE.match(service):
                return f"service {service!r}", error(
                    400, 21705, "The Messaging Service is invalid."
                )
            if service != self.messaging_service_sid:
                return f"service {service!r}", error(
                    400, 21701, "The Messaging Service does not exist."
                )
        callback = form.get("StatusCallback")
        if callback is not None:
            parts = urlsplit(callback)
            if parts.scheme not in ("http", "https") or not parts.hostname or "_" in parts.hostname:
                return f"StatusCallback {callback!r}", error(
                    400, 21609, "Invalid StatusCallback URL."
                )
        return None

    def _basic(self) -> str:
        pair = f"{self.account_sid}:{self.auth_token}".encode()
        return "Basic " + base64.b64encode(pair).decode("ascii")

    @staticmethod
    def _fields(request: Request) -> list[tuple[str, str]]:
        # A form body is ASCII; anything beyond it travels percent-encoded as UTF-8.
        text = request.body.decode("ascii")
        return parse_qsl(text, keep_blank_values=True, encoding="utf-8", errors="strict")

    def _created(self, request: Request, form: dict[str, str], epoch: int) -> Answer:
        sid = "SM" + secrets.token_hex(16)
        service = form.get("MessagingServiceSid")
        message = Sent(
            sid=sid,
            to=form["To"],
            body=form["Body"],
            from_=form.get("From"),
            messaging_service_sid=service,
            status_callback=form.get("StatusCallback"),
            idempotency_key=request.header("idempotency-key"),
        )
        with self._lock:
            if epoch == self._epoch:
                self.sent.append(message)
        now = format_datetime(utcnow(), usegmt=False)
        uri = f"/2010-04-01/Accounts/{self.account_sid}/Messages/{sid}"
        resource: dict[str, Any] = {
            "account_sid": self.account_sid,
            "api_version": "2010-04-01",
            "body": message.body,
            "date_created": now,
            "date_sent": None,
            "date_updated": now,
            "direction": "outbound-api",
            "error_code": None,
            "error_message": None,
            "from": message.from_,
            "messaging_service_sid": service,
            "num_media": "0",
            "num_segments": "1",
            "price": None,
            "price_unit": "USD",
            "sid": sid,
            # Through a Messaging Service without a sender, Twilio first answers
            # ``accepted`` while it picks one from the pool.
            "status": "accepted" if service and not message.from_ else "queued",
            "subresource_uris": {"media": f"{uri}/Media.json"},
            "to": message.to,
            "uri": f"{uri}.json",
        }
        return Answer(201, json.dumps(resource).encode())

    def __enter__(self) -> TwilioGateway:
        self._server.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._release.set()
        self._server.stop()


def valid_sid(value: object, prefix: str) -> bool:
    """Whether ``value`` is a Twilio SID with this two-letter prefix."""
    return isinstance(value, str) and value.startswith(prefix) and bool(_SID.match(value))
