"""Locust users for verifyd: SMS and email flows, wrong guesses, resends, stats, Twilio's API.

Every destination is a sandbox destination, so a run never reaches a phone or a mailbox:
phone numbers ``+9992`` followed by 11 digits (no country's code: the server must be told
they are sandbox numbers, below) and email addresses at ``example.test`` (a built-in
sandbox domain). Each is fresh (a random token per Locust process, then a counter), so
every signup sends a code; ``--processes N`` works as it is.

1. Start a server for the load test, on a database of its own::

       VERIFYD_DATABASE_URL=sqlite:///var/loadtest.db \\
       VERIFYD_SANDBOX=1 VERIFYD_SANDBOX_FIXED_CODE=1234 \\
       VERIFYD_SANDBOX_PATTERNS='^\\+9992\\d{11}$' \\
       VERIFYD_SANDBOX_LIMIT_MULTIPLIER=1000000 \\
       VERIFYD_POLICY_MODE=either VERIFYD_SMS_RESEND_COOLDOWN_SECONDS=0 \\
       VERIFYD_ACCESS_LOG=false \\
       .venv/bin/verifyd serve

   ``VERIFYD_SANDBOX_PATTERNS`` makes this file's numbers sandbox numbers.
   ``VERIFYD_SANDBOX_LIMIT_MULTIPLIER``: every request comes from one address, and the
   per-address limits (60 signups an hour, 120 checks a minute) are that many times looser
   for sandbox destinations; the default 1000 would refuse signups after 60,000 in an hour.
   ``VERIFYD_POLICY_MODE=either`` lets one policy take both flows (a phone alone is
   verified by SMS, an email alone by a link); it is the first policy version's mode, so
   on a database that has a policy already, give this file an admin key instead and it
   switches the policy to ``either`` when the run starts (it says so). The fixed code is
   optional (a run without it reads every code from the sandbox inbox), and so is the
   cooldown: with the default 30 s, the mix's resends are refused ``429 rate_limited``,
   which counts as the answer expected. ``VERIFYD_ACCESS_LOG=false`` as in the benchmark.

2. An admin key, for the stats reads (and the policy switch)::

       KEY=$(VERIFYD_DATABASE_URL=sqlite:///var/loadtest.db \\
             .venv/bin/verifyd admin-key create --name loadtest)

3. A verify-scoped credential, for the Twilio-shaped users (what an application on the
   ``twilio`` SDK is given). The command prints two lines, ``TWILIO_ACCOUNT_SID=AC…`` and
   ``TWILIO_AUTH_TOKEN=…``, the names the SDK reads; ``set -a`` exports them to Locust::

       set -a
       eval "$(VERIFYD_DATABASE_URL=sqlite:///var/loadtest.db \\
               .venv/bin/verifyd admin-key create --name loadtest-verify --scope verify)"
       set +a

4. Run it headless (``pip install -e '.[loadtest]'`` installs Locust)::

       VERIFYD_LOADTEST_FIXED_CODE=1234 VERIFYD_LOADTEST_ADMIN_KEY=$KEY \\
       .venv/bin/locust -f loadtest/locustfile.py --headless -u 50 -r 10 -t 60s \\
           --host http://127.0.0.1:8000 --only-summary

   Locust exits 1 if any request failed. Leave out ``--headless`` for its web UI. Name
   classes after the options to run only them (``… --only-summary TwilioVerifyUser``).

This file reads (none is a verifyd setting; the server never sees them):

- ``VERIFYD_LOADTEST_FIXED_CODE``: the server's ``VERIFYD_SANDBOX_FIXED_CODE``. With it the
  SMS flow checks that code without reading the inbox; without it, it reads the code from
  ``GET /v1/sandbox/messages`` as an app's test suite would. The mix always reads the inbox.
  The sandbox sends the fixed code only for codes of its length: the Twilio users create
  their service with that ``CodeLength``, and read the inbox for a service of another.
- ``TWILIO_ACCOUNT_SID`` and ``TWILIO_AUTH_TOKEN``: a verify-scoped credential (step 3).
  Without both there are no Twilio-shaped users.
- ``VERIFYD_LOADTEST_SERVICE_SID``: a Verify service (``VA…``) of that credential for the
  Twilio users to use; without it, each Locust process creates one when it starts.
- ``VERIFYD_LOADTEST_ADMIN_KEY``: an admin key. Without it there are no stats reads and
  the policy is left as it is.
- ``VERIFYD_LOADTEST_WAIT_SECONDS`` (default 1): each user's mean pause between two flows,
  drawn evenly from 0 to twice it; 0 drives the server as hard as Locust can.

The users, each flow one task, every request named by its route so the table groups them:

- ``SmsFlowUser`` (weight 6): ``POST /v1/accounts`` with a phone, the code, ``POST
  /v1/verifications/{id}/check``; the answer must be ``approved`` and the account active.
- ``EmailFlowUser`` (weight 3): ``POST /v1/accounts`` with an email, the link from the
  inbox, ``GET /v1/email/verify`` (the confirm page a browser or a mail scanner opens;
  it consumes nothing), then ``POST /v1/email/verify`` with the token (the button).
- ``MixUser`` (weight 2): a wrong guess (``422 code_incorrect``), a resend (``202``, or
  ``429 rate_limited`` within the cooldown), the right code; and now and then every
  attempt spent on wrong codes, after which a check and a resend get
  ``409 verification_closed``. Those refusals are what the contract promises, so they
  count as successes; any other answer is a failure.
- ``TwilioVerifyUser`` (weight 2, with a verify-scoped credential only): an application
  on Twilio Verify's API (``/v2``, form bodies, HTTP Basic). The first user of a process
  creates the service (``POST /v2/Services``; or reads the given one, ``GET
  /v2/Services/{sid}``) and the others wait for it. Then ``POST
  /v2/Services/{sid}/Verifications`` (``To``, ``Channel=sms``: ``201``, ``pending``), the
  code, ``POST /v2/Services/{sid}/VerificationCheck`` (``To``, ``Code``: ``200``,
  ``approved``, ``valid`` true); and one time in four a wrong code first, which Twilio
  answers ``200`` ``pending`` with ``valid`` false, then the right one by
  ``VerificationSid``.
- ``StatsReader`` (one user, with an admin key only): ``GET /v1/admin/stats`` every few
  seconds, as an operator's dashboard would.

One Locust process drives about 4,000 requests (1,500 flows) a second per core with this
file (README, "Load testing"); ``--processes N`` uses N cores. To find the service's own
ceiling, use the benchmark (``make bench``, wrk).
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import secrets
import threading
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, quote, urlencode, urlsplit

from locust import FastHttpUser, between, events, task
from locust.env import Environment
from locust.exception import StopUser
from locust.runners import WorkerRunner

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
            valid=_approved,
        )


def _approved(body: dict[str, Any]) -> str | None:
    """Whether a check or a confirmation approved it and activated the account."""
    account = body.get("account") or {}
    if body.get("status") == "approved" and account.get("status") == "active":
        return None
    return "not approved with an active account"


def _wrong(code: str) -> str:
    """A code of the same length that is surely wrong: the last digit changed."""
    return code[:-1] + str((int(code[-1]) + 1) % 10)


class SmsFlowUser(VerifydUser):
    """Signup with a phone, the code, the check: the flow most users go through."""

    weight = 6

    @task
    def sms_flow(self) -> None:
        phone = fresh.phone()
        verification = self.signup(phone=phone)
        code = verification and (FIXED_CODE or self.inbox(phone, "code"))
        if verification and code:
            self.check(verification["id"], code)


class EmailFlowUser(VerifydUser):
    """Signup with an email, the link, its confirm page, the button."""

    weight = 3

    @task
    def email_flow(self) -> None:
        email = fresh.email()
        link = self.signup(email=email) and self.inbox(email, "link")
        if not link:
            return
        token = parse_qs(urlsplit(link).query).get("token", [""])[0]
        page = f"/v1/email/verify?token={quote(token)}"
        if self.call("GET", page, name="/v1/email/verify") is None:
            return
        self.call(
            "POST",
            "/v1/email/verify",
            name="/v1/email/verify",
            json_body={"token": token},
            valid=_approved,
        )


class MixUser(VerifydUser):
    """The users who mistype and ask again; the refusals they get are the contract's."""

    weight = 2

    def _started(self) -> tuple[str, str, str, int] | None:
        """A signup and its code, read from the inbox: phone, verification, code, attempts."""
        phone = fresh.phone()
        verification = self.signup(phone=phone)
        code = verification and self.inbox(phone, "code")
        if not verification or not code:
            return None
        return phone, verification["id"], code, int(verification.get("attempts_left") or 1)

    def resend(self, verification_id: str, ok: list[int | tuple[int, str]]) -> Answer | None:
        return self.call(
            "POST",
            f"/v1/verifications/{verification_id}/resend",
            name="/v1/verifications/{id}/resend",
            ok=ok,
        )

    @task(3)
    def wrong_guess_then_resend(self) -> None:
        started = self._started()
        if started is None:
            return
        phone, vid, code, _ = started
        if self.check(vid, _wrong(code), ok=[(422, "code_incorrect")]) is None:
            return
        # 429: within the policy's resend cooldown (30 s unless the server says otherwise).
        resent = self.resend(vid, ok=[202, (429, "rate_limited")])
        if resent is not None and resent.status == 202:
            code = self.inbox(phone, "code") or ""  # the resend replaced the code
        if resent is not None and code:
            self.check(vid, code)

    @task(1)
    def every_attempt_wrong(self) -> None:
        started = self._started()
        if started is None:
            return
        _, vid, code, attempts = started
        for _ in range(attempts):
            if self.check(vid, _wrong(code), ok=[(422, "code_incorrect")]) is None:
                return
        # Locked: the right code is refused now, and a resend does not revive it.
        if self.check(vid, code, ok=[(409, "verification_closed")]) is not None:
            self.resend(vid, ok=[(409, "verification_closed")])


class _Service:
    """The Verify service this process's Twilio users share: created once, or the one given.

    Created by the first user that starts (the others wait for it), in the process that
    uses it: with ``--processes N`` each process has its own.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()  # gevent's, once Locust has patched the library
        self._pid = -1
        self.sid: str | None = None
        self.code_length = 0

    def ensure(self, user: TwilioVerifyUser) -> bool:
        """Whether the service is known (made or read now if need be)."""
        with self._lock:
            if self._pid != os.getpid():
                self._pid, self.sid = os.getpid(), None
            if self.sid is None:
                found = user.read_service(SERVICE_SID) if SERVICE_SID else user.create_service()
                if found is not None:
                    self.sid, self.code_length = found["sid"], int(found["code_length"])
            return self.sid is not None


service = _Service()


def _twilio(status: str, valid: bool) -> Valid:
    """Checks a verification or a check's answer: Twilio's ``status`` and ``valid``."""

    def check(body: dict[str, Any]) -> str | None:
        got = (body.get("status"), body.get("valid"))
        return None if got == (status, valid) else f"status/valid {got}, not {(status, valid)}"

    return check


class TwilioVerifyUser(VerifydUser):
    """An application on the official ``twilio`` SDK, pointed at verifyd's ``/v2``.

    Form bodies, HTTP Basic with a verify-scoped credential (``TWILIO_ACCOUNT_SID`` and
    ``TWILIO_AUTH_TOKEN``), Twilio's answers; runs only when both are given.
    """

    abstract = ACCOUNT_SID is None or AUTH_TOKEN is None
    weight = 2

    def on_start(self) -> None:
        if not service.ensure(self):
            raise StopUser()  # its request failed, and says why

    @property
    def _auth(self) -> tuple[str, str]:
        assert ACCOUNT_SID is not None and AUTH_TOKEN is not None
        return ACCOUNT_SID, AUTH_TOKEN

    def create_service(self) -> dict[str, Any] | None:
        """``POST /v2/Services``; the fixed code's length, so the sandbox sends that code."""
        form = {"FriendlyName": "verifyd load test"}
        if FIXED_CODE:
            form["CodeLength"] = str(len(FIXED_CODE))
        answer = self.call(
            "POST", "/v2/Services", name="/v2/Services", ok=[201], form=form, auth=self._auth
        )
        return None if answer is None else answer.body

    def read_service(self, sid: str) -> dict[str, Any] | None:
        """``GET /v2/Services/{sid}``: a service the credential has, to reuse."""
        answer = self.call("GET", f"/v2/Services/{sid}", name="/v2/Services/{sid}", auth=self._auth)
        return None if answer is None else answer.body

    def start_sms(self, to: str) -> dict[str, Any] | None:
        """``POST …/Verifications`` by SMS: a new verification, pending."""
        answer = self.call(
            "POST",
            f"/v2/Services/{service.sid}/Verifications",
            name="/v2/Services/{sid}/Verifications",
            ok=[201],
            form={"To": to, "Channel": "sms"},
            auth=self._auth,
            valid=_twilio("pending", False),
        )
        return None if answer is None else answer.body

    def code_for(self, to: str) -> str | None:
        """The code sent to ``to``: the fixed one when the service's length fits it."""
        if FIXED_CODE and len(FIXED_CODE) == service.code_length:
            return FIXED_CODE
        return self.inbox(to, "code")

    def verification_check(self, form: dict[str, str], approved: bool) -> Answer | None:
        """``POST …/VerificationCheck``: 200, approved for the right code, else pending."""
        return self.call(
            "POST",
            f"/v2/Services/{service.sid}/VerificationCheck",
            name="/v2/Services/{sid}/VerificationCheck",
            form=form,
            auth=self._auth,
            valid=_twilio("approved", True) if approved else _twilio("pending", False),
        )

    @task(3)
    def verify(self) -> None:
        to = fresh.phone()
        code = self.start_sms(to) and self.code_for(to)
        if code:
            self.verification_check({"To": to, "Code": code}, approved=True)

    @task(1)
    def wrong_code_first(self) -> None:
        to = fresh.phone()
        verification = self.start_sms(to)
        code = verification and self.inbox(to, "code")
        if not verification or not code:
            return
        if self.verification_check({"To": to, "Code": _wrong(code)}, approved=False):
            self.verification_check(
                {"VerificationSid": verification["sid"], "Code": code}, approved=True
            )


class StatsReader(VerifydUser):
    """An operator's dashboard reading the comparison; runs only with an admin key."""

    abstract = ADMIN_KEY is None
    fixed_count = 1
    wait_time = between(2, 5)

    @task
    def stats(self) -> None:
        self.call(
            "GET",
            "/v1/admin/stats",
            name="/v1/admin/stats",
            headers={"authorization": f"Bearer {ADMIN_KEY}"},
            valid=lambda body: None if "versions" in body else "no versions",
        )


def _admin(host: str, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    request = urllib.request.Request(
        host.rstrip("/") + path,
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"authorization": f"Bearer {ADMIN_KEY}", "content-type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as resp:
        return json.loads(resp.read())


@events.test_start.add_listener  # type: ignore[untyped-decorator]  # locust's hook is untyped
def _policy_takes_both_flows(environment: Environment, **_: Any) -> None:
    """Switch the policy to ``either`` when it is not and an admin key is given.

    Under ``phone`` the email flow is refused (``policy_requires_email``), under
    ``email`` the SMS flows, under ``both`` and ``split`` parts of each. The other knobs
    are sent back as they are. Once per run: not on Locust's workers.
    """
    if isinstance(environment.runner, WorkerRunner) or not environment.host:
        return
    if ADMIN_KEY is None:
        log.info("no VERIFYD_LOADTEST_ADMIN_KEY: the policy is left as it is, no stats reads")
        return
    try:
        document = _admin(environment.host, "GET", "/v1/admin/policy")
        if document.get("mode") == "either":
            return
        # Split's weights and experiment do not apply to ``either``; the rest stays.
        keep = {k: document.get(k) for k in ("prefer", "sms", "email")}
        changed = _admin(environment.host, "PUT", "/v1/admin/policy", {"mode": "either", **keep})
    except (OSError, ValueError) as exc:  # urllib's errors are OSErrors
        log.warning("could not read or set the policy (%s): flows may be refused", exc)
        return
    log.warning(
        "the policy was %r: switched to 'either' (version %s) so both flows are taken",
        document.get("mode"),
        changed.get("version"),
    )
