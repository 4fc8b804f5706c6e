"""The Twilio-shaped Locust user: an application on the ``twilio`` SDK, against ``/v2``.

Imported by ``locustfile.py`` (see its docstring for how to run it).
"""

from __future__ import annotations

import os
import threading
from typing import Any

from locust import task
from locust.exception import StopUser
from verifyd_users import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    FIXED_CODE,
    SERVICE_SID,
    Answer,
    Valid,
    VerifydUser,
    fresh,
    wrong,
)


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
        if self.verification_check({"To": to, "Code": wrong(code)}, approved=False):
            self.verification_check(
                {"VerificationSid": verification["sid"], "Code": code}, approved=True
            )
