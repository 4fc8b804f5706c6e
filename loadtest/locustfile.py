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

import json
import urllib.request
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

from locust import between, events, task
from locust.env import Environment
from locust.runners import WorkerRunner

# Locust runs every user class the locustfile's namespace holds, imported ones too.
from verifyd_twilio_users import TwilioVerifyUser  # noqa: F401
from verifyd_users import (
    ADMIN_KEY,
    FIXED_CODE,
    Answer,
    VerifydUser,
    approved,
    fresh,
    log,
    wrong,
)


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
            valid=approved,
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
        if self.check(vid, wrong(code), ok=[(422, "code_incorrect")]) is None:
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
            if self.check(vid, wrong(code), ok=[(422, "code_incorrect")]) is None:
                return
        # Locked: the right code is refused now, and a resend does not revive it.
        if self.check(vid, code, ok=[(409, "verification_closed")]) is not None:
            self.resend(vid, ok=[(409, "verification_closed")])


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
