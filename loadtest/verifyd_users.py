"""What every verifyd Locust user shares: the run's settings, fresh destinations, calls.

``locustfile.py`` (the ``-f`` target and the manual) imports it; Locust puts that file's
folder on ``sys.path``.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode

from locust import FastHttpUser, between

FIXED_CODE = os.environ.get("VERIFYD_LOADTEST_FIXED_CODE") or None
ADMIN_KEY = os.environ.get("VERIFYD_LOADTEST_ADMIN_KEY") or None
WAIT_SECONDS = float(os.environ.get("VERIFYD_LOADTEST_WAIT_SECONDS") or 1)
#: A verify-scoped credential, under the names the ``twilio`` SDK reads.
ACCOUNT_SID = os.environ.get("TWILIO_ACCOUNT_SID") or None
AUTH_TOKEN = os.environ.get("TWILIO_AUTH_TOKEN") or None
SERVICE_SID = os.environ.get("VERIFYD_LOADTEST_SERVICE_SID") or None

#: The sandbox pattern the server needs: ``VERIFYD_SANDBOX_PATTERNS='^\+9992\d{11}$'``.
#: (bench/ uses +9990 and +9991, so a database both touched never mixes their numbers.)
PHONE_PREFIX = "+9992"
EMAIL_DOMAIN = "example.test"

log = logging.getLogger("verifyd.loadtest")


class _Fresh:
    """Destinations no other flow used: a random token per process, then a counter.

    The token is drawn in the process that uses it (``--processes`` forks after this
    module is imported, and a token drawn at import would be every worker's), 5 digits
    of the number and 48 bits of the address; the counter takes the number's last 6.
    """

    def __init__(self) -> None:
        self._pid = -1
        self._token = ""
        self._email_token = ""
        self._count = itertools.count()

    def _renew(self) -> None:
        self._pid = os.getpid()
        self._token = f"{secrets.randbelow(10**5):05d}"
        self._email_token = secrets.token_hex(6)
        self._count = itertools.count()

    def _next(self) -> int:
        if self._pid != os.getpid():
            self._renew()
        n = next(self._count)
        if n >= 10**6:
            self._renew()
            n = next(self._count)
        return n

    def phone(self) -> str:
        n = self._next()
        return f"{PHONE_PREFIX}{self._token}{n:06d}"

    def email(self) -> str:
        n = self._next()
        return f"lt-{self._email_token}-{n}@{EMAIL_DOMAIN}"


fresh = _Fresh()


@dataclass
class Answer:
    """What a request got: its status, its JSON body ({} if none), its error code."""

    status: int
    body: dict[str, Any] = field(default_factory=dict)

    @property
    def code(self) -> str | None:
        """The problem's code (``code_incorrect``), or Twilio's as text (``60202``)."""
        code = self.body.get("code")
        if isinstance(code, bool) or not isinstance(code, str | int):
            return None
        return str(code)


def _body(text: str | None) -> dict[str, Any]:
    try:
        body = json.loads(text or "")
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


#: Checks a 2xx answer's body: ``None`` when it is right, else what is wrong with it.
Valid = Callable[[dict[str, Any]], str | None]


class VerifydUser(FastHttpUser):
    """What every user here shares: the pause between flows and one way to call verifyd."""

    abstract = True
    wait_time = between(0, 2 * WAIT_SECONDS)

    def call(
        self,
        method: str,
        path: str,
        *,
        name: str,
        ok: Iterable[int | tuple[int, str]] = (200,),
        json_body: dict[str, Any] | None = None,
        form: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        valid: Valid | None = None,
    ) -> Answer | None:
        """Send one request; it succeeds if its answer is one of ``ok`` (and ``valid``).

        Args:
            method: The HTTP method.
            path: The path and query.
            name: The route, the row of Locust's table.
            ok: The answers expected: a status, or a ``(status, problem code)`` pair for
                a refusal the contract promises.
            json_body: A JSON body to send.
            form: A form to send (``application/x-www-form-urlencoded``), as ``/v2`` takes.
            headers: Extra request headers.
            auth: HTTP Basic credentials.
            valid: Checks the body of a 2xx answer.

        Returns:
            The answer, or ``None`` when it was not expected (counted as a failure).
        """
        expected = set(ok)
        data = None
        if form is not None:
            data = urlencode(form)
            headers = {**(headers or {}), "content-type": "application/x-www-form-urlencoded"}
        with self.client.request(
            method,
            path,
            name=name,
            json=json_body,
            data=data,
            headers=headers,
            auth=auth,
            catch_response=True,
        ) as resp:
            status = resp.status_code or 0
            content_type = (resp.headers or {}).get("content-type", "")
            body = _body(resp.text if resp.content else "") if "json" in content_type else {}
            answer = Answer(status, body)
            # Failures are grouped by message: no ids, codes or tokens in one.
            if status not in expected and (status, answer.code) not in expected:
                got = f"{status} {answer.code}" if answer.code else str(status or resp.error)
                resp.failure(f"answered {got}")
                return None
            wrong = valid(body) if valid is not None and status < 300 else None
            if wrong is not None:
                resp.failure(wrong)
                return None
            resp.success()
            return answer

    def signup(self, **identity: str) -> dict[str, Any] | None:
        """``POST /v1/accounts`` for one identity: its one verification, or ``None``."""
        channel = "sms" if "phone" in identity else "email"

        def one_verification(body: dict[str, Any]) -> str | None:
            found = [v.get("channel") for v in body.get("verifications") or []]
            if found == [channel]:
                return None
            return f"verifies {found}, not [{channel!r}] (is the policy 'either'?)"

        answer = self.call(
            "POST",
            "/v1/accounts",
            name="/v1/accounts",
            ok=[201],
            json_body=identity,
            valid=one_verification,
        )
        if answer is None:
            return None
        verification: dict[str, Any] = answer.body["verifications"][0]
        return verification

    def inbox(self, to: str, field: str) -> str | None:
        """``field`` (``code`` or ``link``) of the newest sandbox message to ``to``."""

        def has_it(body: dict[str, Any]) -> str | None:
            messages = body.get("messages") or [{}]
            return None if messages[0].get(field) else f"no message with a {field}"

        answer = self.call(
            "GET",
            f"/v1/sandbox/messages?to={quote(to, safe='@')}",
            name="/v1/sandbox/messages",
            valid=has_it,
        )
        return None if answer is None else str(answer.body["messages"][0][field])

    def check(
        self, verification_id: str, code: str, ok: Iterable[int | tuple[int, str]] = (200,)
    ) -> Answer | None:
        """``POST /v1/verifications/{id}/check``; a 200 must have approved it."""
        return self.call(
            "POST",
            f"/v1/verifications/{verification_id}/check",
            name="/v1/verifications/{id}/check",
            ok=ok,
            json_body={"code": code},
            valid=approved,
        )


def approved(body: dict[str, Any]) -> str | None:
    """Whether a check or a confirmation approved it and activated the account."""
    account = body.get("account") or {}
    if body.get("status") == "approved" and account.get("status") == "active":
        return None
    return "not approved with an active account"


def wrong(code: str) -> str:
    """A code of the same length that is surely wrong: the last digit changed."""
    return code[:-1] + str((int(code[-1]) + 1) % 10)
