"""Guessing attacks over HTTP: the bound holds in any 24 hours; the owner waits at most the cap.

The service runs on a fake clock (``support.clock``) so a simulated day takes seconds;
destinations are real numbers (sandbox ones keep their fixed, looser windows). Codes
are 10 digits here so that no attacker guess can be right by chance.
"""

from __future__ import annotations

import itertools
import random
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from support.api import runtime
from support.clock import FakeClock
from support.lastbyte import build_request, fire_synchronised
from support.liveserver import LiveServer
from support.outbox import Flaky, Start, message_rows, wait
from verifyd.app import create_app
from verifyd.settings import Settings
from verifyd.slidinglimit import Bounds

OWNER = "+44 7911 123456"
WRONG = "0000000000"  # a 10-digit code; the real one is random
MIDNIGHT = datetime(2030, 1, 2, tzinfo=UTC)
_addresses = itertools.count(1)


def address() -> dict[str, str]:
    """A fresh client address each call (the app trusts the test client as a proxy)."""
    n = next(_addresses)
    return {"X-Forwarded-For": f"198.51.{n // 250 % 250}.{n % 250 + 1}"}


def evaluated(r: httpx.Response) -> bool:
    """Whether the check compared the code (right or wrong) rather than refusing it."""
    return r.status_code == 200 or (
        r.status_code == 422 and r.json().get("code") == "code_incorrect"
    )


class Attacker:
    """Signs up the victim's number from ever new addresses and guesses its codes."""

    def __init__(self, client: TestClient) -> None:
        self.client = client

    def signup(self, phone: str = OWNER) -> httpx.Response:
        return self.client.post("/v1/accounts", json={"phone": phone}, headers=address())

    def verification(self, clock: FakeClock, phone: str = OWNER) -> str:
        """A fresh verification of ``phone``, waiting out the send limit as told."""
        while (r := self.signup(phone)).status_code == 429:
            clock.advance(int(r.headers["retry-after"]))
        assert r.status_code == 201, r.text
        ver_id: str = r.json()["verifications"][0]["id"]
        return ver_id

    def guess(self, ver_id: str, code: str = WRONG) -> httpx.Response:
        path = f"/v1/verifications/{ver_id}/check"
        return self.client.post(path, json={"code": code}, headers=address())


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Callable[[TestClient], FakeClock]:
    """Put a started app on a fake clock that reads 2030-01-01 12:00 UTC."""

    def install(_client: TestClient) -> FakeClock:
        return FakeClock(datetime(2030, 1, 1, 12, tzinfo=UTC)).install(monkeypatch)

    return install


@pytest.fixture
def app(start: Start, flaky: type[Flaky]) -> TestClient:
    flaky.down = False  # the gateway delivers: the owner's codes are in flaky.sent
    # A trusted proxy's peer: each X-Forwarded-For is an address of its own.
    return start(sms_code_length=10, trusted_proxies=["192.0.2.1"], peer="192.0.2.1")


def code_of(client: TestClient, flaky: type[Flaky], ver_id: str) -> str:
    """The code of the verification's newest message, once the gateway has it."""

    def delivered() -> str | None:
        newest = message_rows(client, ver_id)[-1].id
        return next((m.code for m in flaky.sent if m.id == newest), None)

    code: str = wait("the owner's code", delivered)
    return code


def most_in_any_window(times: list[datetime], seconds: int) -> int:
    span = timedelta(seconds=seconds)
    return max((sum(1 for t in times if a <= t < a + span) for a in times), default=0)


def test_a_simulated_day_of_maximal_resends_and_guesses_stays_within_the_bound(
    app: TestClient, clock: Callable[[TestClient], FakeClock]
) -> None:
    """From many addresses and accounts, two numbers, 30 h: never N + K in any 24 h."""
    fake, attacker = clock(app), Attacker(app)
    bound = Bounds.of(runtime(app).settings).guesses.bound
    rng = random.Random(10)
    victims = [OWNER, "+44 7911 124456"]  # different prefixes: only this limit is in play
    current: dict[str, str | None] = dict.fromkeys(victims)
    guesses: dict[str, list[datetime]] = {v: [] for v in victims}
    seen: Counter[tuple[int, str]] = Counter()
    end = fake.now + timedelta(hours=30)
    while fake.now < end:
        # bursts of seconds around the attacker's own deadlines, and pauses of minutes
        fake.advance(rng.choice([1, 5, 30, 90, 240, rng.randint(1, 900)]))
        for victim in victims:
            for _ in range(3):  # every guess the service lets through
                ver = current[victim]
                if ver is None:
                    r = attacker.signup(victim)
                    seen[(r.status_code, r.json().get("code", "created"))] += 1
                    if r.status_code != 201:
                        break
                    ver = current[victim] = r.json()["verifications"][0]["id"]
                r = attacker.guess(ver)
                seen[(r.status_code, r.json().get("code", "approved"))] += 1
                if evaluated(r):
                    guesses[victim].append(fake.now)
                    if r.json().get("attempts_left", 1) == 0:
                        current[victim] = None
                elif r.status_code == 409 or r.status_code == 410:
                    resend = app.post(f"/v1/verifications/{ver}/resend", headers=address())
                    seen[(resend.status_code, "resend")] += 1
                    if resend.status_code != 202:
                        current[victim] = None
                else:
                    assert r.status_code == 429, r.text
                    assert int(r.headers["retry-after"]) <= 4 * 3600
                    break
    assert set(seen) <= {
        (201, "created"),
        (422, "code_incorrect"),
        (429, "too_many_attempts"),
        (429, "rate_limited"),
        (410, "code_expired"),
        (409, "verification_closed"),
        (202, "resend"),
        (409, "resend"),
        (429, "resend"),
    }, seen
    for victim, times in guesses.items():
        # every 24-hour interval, not only calendar days: the attacker reaches the bound
        # (the simulation is maximal) and never passes it
        assert most_in_any_window(times, 86400) == bound == 20, victim
        assert len(times) > bound  # 30 hours: more than a day's worth, spread out


def test_the_23_59_and_00_00_attack_gets_no_second_budget(
    make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Over a real socket: 10 wrong checks at 23:59:30, 10 more at 00:00:15."""
    settings = make_settings(sms_code_length=10, trusted_proxies=["127.0.0.1"])
    with LiveServer(create_app(settings)) as server:
        fake = FakeClock(MIDNIGHT - timedelta(seconds=30)).install(monkeypatch)
        with httpx.Client(base_url=server.base_url, timeout=20) as http:

            def burst() -> list[httpx.Response]:
                answers = []
                for _ in range(2):  # two fresh verifications: 5 checks each
                    r = http.post("/v1/accounts", json={"phone": OWNER}, headers=address())
                    assert r.status_code == 201, r.text
                    ver = r.json()["verifications"][0]["id"]
                    path = f"/v1/verifications/{ver}/check"
                    answers += [
                        http.post(path, json={"code": WRONG}, headers=address()) for _ in range(5)
                    ]
                return answers

            before = burst()
            fake.advance(45)
            after = burst()
    assert [r.status_code for r in before] == [422] * 10
    assert {(r.status_code, r.json()["code"]) for r in after} == {(429, "too_many_attempts")}
    # not "come back at midnight": the first backoff step, less the 45 s gone
    assert {r.headers["retry-after"] for r in after} == {"255"}


def test_after_the_attacker_spends_everything_the_owner_waits_at_most_the_cap(
    app: TestClient, clock: Callable[[TestClient], FakeClock], flaky: type[Flaky]
) -> None:
    fake, attacker = clock(app), Attacker(app)
    limit = Bounds.of(runtime(app).settings).guesses
    spent, waits, ver = 0, [], attacker.verification(fake)
    while spent < limit.bound:  # greedy: every slot as it opens
        r = attacker.guess(ver)
        if evaluated(r):
            spent += 1
        elif r.status_code in (409, 410):  # out of checks, or expired while waiting
            ver = attacker.verification(fake)
        else:
            assert (r.status_code, r.json()["code"]) == (429, "too_many_attempts")
            waits.append(int(r.headers["retry-after"]))
            fake.advance(waits[-1])
    assert spent == 20 and max(waits) <= limit.longest_wait == 14400

    # the owner signs up right after the attacker's 20th guess
    r = app.post("/v1/accounts", json={"phone": OWNER}, headers=address())
    assert r.status_code == 201, r.text
    ver = r.json()["verifications"][0]["id"]
    code = code_of(app, flaky, ver)
    r = app.post(f"/v1/verifications/{ver}/check", json={"code": code})
    assert (r.status_code, r.json()["code"]) == (429, "too_many_attempts")
    lockout = int(r.headers["retry-after"])
    assert 0 < lockout <= limit.longest_wait
    # the code's 10 minutes run out meanwhile: the owner asks for a new one
    fake.advance(lockout - 1)
    assert app.post(f"/v1/verifications/{ver}/resend").status_code == 202
    code = code_of(app, flaky, ver)
    r = app.post(f"/v1/verifications/{ver}/check", json={"code": code})
    assert r.status_code == 429 and r.headers["retry-after"] == "1"  # exact to the second
    fake.advance(1)
    r = app.post(f"/v1/verifications/{ver}/check", json={"code": code})
    assert r.status_code == 200, r.text
    assert r.json()["account"]["status"] == "active"


def test_five_attacker_signups_cannot_keep_the_owner_out_past_the_send_cap(
    app: TestClient, clock: Callable[[TestClient], FakeClock], flaky: type[Flaky]
) -> None:
    fake, attacker = clock(app), Attacker(app)
    sends = Bounds.of(runtime(app).settings).sends
    for _ in range(5):
        assert attacker.signup().status_code == 201
    r = app.post("/v1/accounts", json={"phone": OWNER}, headers=address())
    assert (r.status_code, r.json()["code"]) == (429, "rate_limited")
    assert int(r.headers["retry-after"]) == 60  # not the rest of the hour

    # an attacker who then takes every send slot as it opens for two hours
    waits = []
    while len(waits) < 30:
        r = attacker.signup()
        if r.status_code == 429:
            waits.append(int(r.headers["retry-after"]))
            fake.advance(waits[-1])
    assert max(waits) <= sends.longest_wait == 900
    assert attacker.signup().status_code == 201  # the slot that just opened

    # the owner, right after the attacker's latest send, waits at most the cap
    r = app.post("/v1/accounts", json={"phone": OWNER}, headers=address())
    assert r.status_code == 429
    wait_s = int(r.headers["retry-after"])
    assert 0 < wait_s <= 900
    fake.advance(wait_s)
    r = app.post("/v1/accounts", json={"phone": OWNER}, headers=address())
    assert r.status_code == 201, r.text
    ver = r.json()["verifications"][0]["id"]
    code = code_of(app, flaky, ver)
    assert app.post(f"/v1/verifications/{ver}/check", json={"code": code}).status_code == 200


@contextmanager
def live(settings: Settings) -> Iterator[tuple[LiveServer, httpx.Client]]:
    with LiveServer(create_app(settings)) as server:
        with httpx.Client(base_url=server.base_url, timeout=20) as http:
            yield server, http


def test_parallel_guesses_at_one_number_never_pass_the_bound(
    make_settings: Callable[..., Settings],
) -> None:
    """60 wrong checks on 12 verifications of one number, last-byte synchronised."""
    settings = make_settings(
        sms_code_length=10,
        sends_per_destination_per_hour=100,
        signups_per_ip_per_hour=1000,
        checks_per_ip_per_minute=1000,
        trusted_proxies=["127.0.0.1"],
    )
    with live(settings) as (server, http):
        ids = []
        for _ in range(12):
            r = http.post("/v1/accounts", json={"phone": OWNER})
            assert r.status_code == 201, r.text
            ids.append(r.json()["verifications"][0]["id"])
        host, body = f"{server.host}:{server.port}", {"code": WRONG}
        raw = [
            # each from its own address: one address's counter row would serialise them
            build_request(
                "POST",
                f"/v1/verifications/{v}/check",
                host=host,
                json_body=body,
                headers=address(),
            )
            for v in ids
            for _ in range(5)
        ]
        responses = fire_synchronised(server.host, server.port, raw, timeout=25)
    codes: Counter[tuple[int, Any]] = Counter((r.status, r.json()["code"]) for r in responses)
    # all at one instant: the 10 free guesses, and not one more
    assert codes == {(422, "code_incorrect"): 10, (429, "too_many_attempts"): 50}, codes
