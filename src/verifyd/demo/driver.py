"""Drives each person of the population through the public API, as a frontend and a phone would.

A person reads ``GET /v1/policy?subject=…`` (an exposure, and the arm), maybe submits
``POST /v1/accounts``, waits, reads the code or link from the sandbox inbox (standing in
for the phone or the mailbox), and checks the code or opens the link's page and confirms
it. Refusals (422, 429) are answers a real frontend gets: counted, and the person goes
home. A 5xx or a transport error is a failure of the service: the run stops.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from verifyd.demo import DemoFailure
from verifyd.demo.population import Person, Plan
from verifyd.demo.progress import Progress

#: Longest real wait for a resend's cooldown; past it the person uses the first code.
MAX_RESEND_WAIT = 35.0


@dataclass
class Tally:
    """What the demo saw happen (its own count; the service's figures are the stats').

    Attributes:
        exposed: People shown the form, per arm.
        left_form: People who never submitted it, per arm.
        signed_up: Signups accepted (201), per arm.
        refused: Signups refused, per (arm, problem code).
        verified: Verifications approved, per arm.
        missed: Checks and confirmations that did not approve, per (arm, problem code).
        accounts: ``(person index, account id, bot)`` of every signup accepted.
        other_version: Policy reads answered under another version than the demo's.
    """

    exposed: Counter[str] = field(default_factory=Counter)
    left_form: Counter[str] = field(default_factory=Counter)
    signed_up: Counter[str] = field(default_factory=Counter)
    refused: Counter[tuple[str, str]] = field(default_factory=Counter)
    verified: Counter[str] = field(default_factory=Counter)
    missed: Counter[tuple[str, str]] = field(default_factory=Counter)
    accounts: list[tuple[int, str, bool]] = field(default_factory=list)
    other_version: int = 0


class Api:
    """The private server over real HTTP.

    Args:
        client: An ``httpx.AsyncClient`` whose base URL is the private server.
        concurrency: Requests in flight at once; the rest wait here.
    """

    def __init__(self, client: httpx.AsyncClient, concurrency: int) -> None:
        self._client = client
        # Waiting here, not in httpcore's pool: its pool rescans every queued request
        # on each change (quadratic: hundreds queued took more CPU than the server).
        self._slots = asyncio.Semaphore(concurrency)

    async def call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One request; any answer below 500 is returned to the caller to judge.

        Raises:
            DemoFailure: a transport error or a 5xx answer.
        """
        try:
            async with self._slots:
                r = await self._client.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise DemoFailure(f"{method} {path}: {type(exc).__name__}: {exc}") from exc
        if r.status_code >= 500:
            raise DemoFailure(f"{method} {path} answered {r.status_code}: {r.text[:300]}")
        return r

    async def expect(self, status: int, method: str, path: str, **kwargs: Any) -> Any:
        """A request that must answer ``status``; its JSON body.

        Raises:
            DemoFailure: any other answer.
        """
        r = await self.call(method, path, **kwargs)
        if r.status_code != status:
            raise DemoFailure(f"{method} {path} answered {r.status_code}: {r.text[:300]}")
        return r.json()


def problem_code(r: httpx.Response) -> str:
    """The problem+json ``code`` of an error answer, else its status."""
    try:
        code = r.json().get("code")
    except ValueError:
        code = None
    return str(code or r.status_code)


class Crowd:
    """Runs every person concurrently, each from its arrival time.

    Args:
        api: The private server.
        version: The demo's policy version (reads under another one are counted).
        progress: Advanced as each person finishes.
    """

    def __init__(self, api: Api, version: int, progress: Progress) -> None:
        self._api = api
        self._version = version
        self._progress = progress
        self.tally = Tally()

    async def run(self, people: list[Person]) -> Tally:
        """Every person's visit; the first failure cancels the rest.

        Raises:
            DemoFailure: the first failure seen.
        """
        start = asyncio.get_running_loop().time()
        try:
            async with asyncio.TaskGroup() as group:
                for person in people:
                    group.create_task(self._visit(person, start))
        except* DemoFailure as failures:
            raise failures.exceptions[0] from None
        return self.tally

    async def _visit(self, person: Person, start: float) -> None:
        loop = asyncio.get_running_loop()
        await asyncio.sleep(max(0.0, start + person.arrives_at - loop.time()))
        await self._person(person)
        self._progress.advance()

    async def _person(self, p: Person) -> None:
        headers = {"x-forwarded-for": p.address}
        form = await self._api.expect(
            200, "GET", "/v1/policy", params={"subject": p.subject}, headers=headers
        )
        if form["policy_version"] != self._version:
            self.tally.other_version += 1
        arm = form["arm"]
        asked = "phone" if "phone" in form["require"] else "email"  # the arm, under split
        given = {"phone": p.phone} if asked == "phone" else {"email": p.email}
        plan = p.plan(asked)
        self.tally.exposed[arm] += 1
        if not plan.submits:
            self.tally.left_form[arm] += 1
            return
        r = await self._api.call(
            "POST", "/v1/accounts", json={**given, "subject": p.subject}, headers=headers
        )
        if r.status_code != 201:
            self.tally.refused[arm, problem_code(r)] += 1
            return
        body = r.json()
        self.tally.signed_up[arm] += 1
        self.tally.accounts.append((p.index, body["account"]["id"], p.bot))
        if not (plan.verifies or plan.opens_only):
            return
        await asyncio.sleep(plan.delay)
        verification = body["verifications"][0]
        if p.resends:
            await self._resend(verification, plan, headers)
        (to,) = given.values()
        if verification["channel"] == "sms":
            answer = await self._code(to, verification["id"], plan, headers)
        else:
            answer = await self._link(to, plan, headers, browser=not p.bot)
        if answer is None:
            return
        if answer.status_code == 200:
            self.tally.verified[arm] += 1
        else:
            self.tally.missed[arm, problem_code(answer)] += 1

    async def _resend(self, verification: dict[str, Any], plan: Plan, headers: Any) -> None:
        """Ask for a new code or link once the cooldown allows (the real one: not compressed)."""
        available = datetime.fromisoformat(verification["resend_available_at"])
        wait = (available - datetime.now(UTC)).total_seconds()
        if wait > MAX_RESEND_WAIT:
            return  # a cooldown the run cannot sit out: this person uses the first code
        await asyncio.sleep(max(0.0, wait) + 0.1)
        await self._api.call(
            "POST", f"/v1/verifications/{verification['id']}/resend", headers=headers
        )
        await asyncio.sleep(plan.retype)

    async def _inbox(self, to: str, key: str) -> str | None:
        """The newest code or link sent to ``to`` (the phone in hand, the mailbox)."""
        inbox = await self._api.expect(200, "GET", "/v1/sandbox/messages", params={"to": to})
        for message in inbox["messages"]:
            if key in message:
                value: str = message[key]
                return value
        return None  # nothing was sent (an identity an active account already owns)

    async def _code(
        self, to: str, verification_id: str, plan: Plan, headers: Any
    ) -> httpx.Response | None:
        code = await self._inbox(to, "code")
        if code is None:
            return None
        path = f"/v1/verifications/{verification_id}/check"
        if plan.wrong_first:
            typo = code[:-1] + str((int(code[-1]) + 1) % 10)  # one key off
            await self._api.call("POST", path, json={"code": typo}, headers=headers)
            await asyncio.sleep(plan.retype)
        return await self._api.call("POST", path, json={"code": code}, headers=headers)

    async def _link(
        self, to: str, plan: Plan, headers: Any, *, browser: bool
    ) -> httpx.Response | None:
        link = await self._inbox(to, "link")
        if link is None:
            return None
        token = parse_qs(urlsplit(link).query).get("token", [""])[0]
        if browser:  # a person opens the page, then presses its button; a script posts
            await self._api.call(
                "GET", "/v1/email/verify", params={"token": token}, headers=headers
            )
        if plan.opens_only:
            return None
        return await self._api.call(
            "POST", "/v1/email/verify", json={"token": token}, headers=headers
        )


#: Of the bots' accounts, the share moderation finds fake; of the others, the share
#: confirmed genuine (a known customer, a verified payment).
LABEL_FAKE, LABEL_GENUINE = 0.8, 0.3
FAKE_REASON, GENUINE_REASON = "demo: found by moderation", "demo: known customer"


def labels(tally: Tally, seed: int) -> list[dict[str, str]]:
    """The ground truth the demo reports: which accounts are labelled, and how.

    The same accounts get the same labels for the same seed, whatever order the
    signups finished in.
    """
    rng = random.Random(f"labels:{seed}")
    out = []
    for _, account_id, bot in sorted(tally.accounts):
        draw = rng.random()
        if bot and draw < LABEL_FAKE:
            out.append({"account_id": account_id, "label": "fake", "reason": FAKE_REASON})
        elif not bot and draw < LABEL_GENUINE:
            out.append({"account_id": account_id, "label": "genuine", "reason": GENUINE_REASON})
    return out
