"""Two ``verifyd serve`` processes and one ``verifyd worker`` on one PostgreSQL are one service.

The policy, the rate limits, the guess budget and attempt counts, idempotency keys, the
SMS-pumping breakers and the outbox live in the database; each flow here runs through both
APIs (A and B, neither delivering: ``VERIFYD_DISPATCHER=off``) and checks the result is the
one a single server would give. Real-looking UK mobiles (+44 7911 1xx xxx, valid ``MOBILE``
numbers, not sandbox) go through the ``webhook`` provider to a loopback gateway, so the
worker delivers them; every test takes its own number prefixes and its own client address
(``X-Forwarded-For`` from the trusted loopback), so the module's processes serve them all.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import os
import re
import signal
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from support.gateway import Gateway
from support.lastbyte import build_request, fire_synchronised_at
from support.outbox import wait
from support.postgres import PostgresServer
from test_cli import cli_env, start
from test_cli_serve import Server, serving
from test_worker import Accepting
from verifyd.adminkeys import AdminKeys
from verifyd.db import Database

pytestmark = pytest.mark.postgres

WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"replicas-test-webhook-secret-32b").decode()
#: Small limits, so each is reached in a handful of requests.
SIGNUPS_PER_IP = 4
SENDS_PER_DESTINATION = 3
PREFIX_BUDGET = 4
MAX_CHECKS = 5  # VERIFYD_SMS_MAX_CHECKS' default: the policy's sms.max_checks
GUESS_BUDGET = 10  # VERIFYD_GUESS_BUDGET_PER_DAY's default
CODE = re.compile(r"code is (\d{4,10})\b")

_prefixes = itertools.count(120)  # +447911120…: a number prefix of its own per call
_addresses = itertools.count(1)


def prefix() -> str:
    """A fresh number prefix (E.164 without its last three digits), valid mobiles all."""
    number = next(_prefixes)
    assert number < 300, "+44 7911 1xx/2xx only: the module ran out of prefixes"
    return f"+447911{number:03d}"


def address() -> str:
    """A fresh client address (TEST-NET-2), so no test shares another's per-IP counts."""
    n = next(_addresses)
    return f"198.51.{n // 250}.{n % 250 + 1}"


@dataclass
class Api:
    """One replica's HTTP API, as a named client."""

    name: str
    server: Server
    http: httpx.Client

    @property
    def port(self) -> int:
        return urlsplit(self.server.base_url).port or 80

    def signup(self, ip: str, **body: Any) -> httpx.Response:
        return self.http.post("/v1/accounts", json=body, headers={"X-Forwarded-For": ip})

    def check(self, ip: str, verification: str, code: str) -> httpx.Response:
        return self.http.post(
            f"/v1/verifications/{verification}/check",
            json={"code": code},
            headers={"X-Forwarded-For": ip},
        )


@dataclass
class Cluster:
    a: Api
    b: Api
    worker: subprocess.Popen[str]
    gateway: Gateway
    accepted: Accepting
    admin: dict[str, str]

    def code(self, to: str, nth: int = 1) -> str:
        """The code in the ``nth`` SMS the gateway received for ``to`` (E.164)."""

        def sent() -> list[str]:
            bodies = [json.loads(r.body) for r in self.gateway.requests]
            return [b["body"] for b in bodies if b["kind"] == "sms" and b["to"] == to]

        texts = wait(f"SMS number {nth} to {to}", lambda: len(sent()) >= nth and sent())
        found = CODE.search(texts[nth - 1])
        assert found, texts[nth - 1]
        return found.group(1)


@pytest.fixture(scope="module")
def cluster(
    pg_server: PostgresServer, pg_template: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    """A, B and the worker on one fresh database, for the whole module."""
    cwd = tmp_path_factory.mktemp("replicas")
    name = f"r_{uuid.uuid4().hex[:12]}"
    url = pg_server.create_database(name, template=pg_template)
    db = Database(url)
    key, _ = AdminKeys(db).create("operator", "cli:test")
    db.dispose()
    accepted = Accepting()
    with Gateway(accepted) as gateway:
        env = cli_env(url)  # the policy cache and the breakers' re-read keep their 1 s
        env.update(
            VERIFYD_SMS_PROVIDER="webhook",
            VERIFYD_EMAIL_PROVIDER="webhook",
            VERIFYD_WEBHOOK_URL=gateway.url + "/deliver",
            VERIFYD_WEBHOOK_SECRET=WEBHOOK_SECRET,
            VERIFYD_DISPATCH_INTERVAL_SECONDS="0.05",
            VERIFYD_TRUSTED_PROXIES="127.0.0.1",
            VERIFYD_SIGNUPS_PER_IP_PER_HOUR=str(SIGNUPS_PER_IP),
            VERIFYD_SENDS_PER_DESTINATION_PER_HOUR=str(SENDS_PER_DESTINATION),
            VERIFYD_SMS_BUDGET_PER_PREFIX_PER_HOUR=str(PREFIX_BUDGET),
            VERIFYD_SMS_BREAKER_MIN_SENDS="1",
        )
        api_env = {**env, "VERIFYD_DISPATCHER": "off"}
        worker = start(["worker"], env, cwd, stdout=subprocess.DEVNULL, new_session=True)
        try:
            with (
                serving(api_env, cwd) as a,
                serving(api_env, cwd) as b,
                httpx.Client(base_url=a.base_url, timeout=30) as on_a,
                httpx.Client(base_url=b.base_url, timeout=30) as on_b,
            ):
                assert worker.stderr is not None
                assert worker.stderr.readline().startswith("verifyd worker development")
                yield Cluster(
                    Api("A", a, on_a),
                    Api("B", b, on_b),
                    worker,
                    gateway,
                    accepted,
                    {"Authorization": f"Bearer {key}"},
                )
            for server in (a, b):
                assert "Traceback" not in server.output()
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(worker.pid, signal.SIGTERM)
            _, err = worker.communicate(timeout=30)
            assert "Traceback" not in err, err
    pg_server.drop_database(name)


def _problem(r: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    body: dict[str, Any] = r.json()
    assert body["code"] == code, body
    return body


def _modes(*apis: Api) -> set[str]:
    return {api.http.get("/v1/policy").json()["mode"] for api in apis}


def test_a_policy_changed_through_a_is_in_force_on_b_within_5_s(cluster: Cluster) -> None:
    a, b = cluster.a, cluster.b
    before = a.http.get("/v1/admin/policy", headers=cluster.admin).json()
    assert before["mode"] == "phone"
    assert b.signup(address(), email="early@example.test").status_code == 422
    try:
        put = {"mode": "either", "prefer": "email"}
        r = a.http.put("/v1/admin/policy", headers=cluster.admin, json=put)
        assert r.status_code == 200, r.text
        changed, version = time.monotonic(), r.json()["version"]
        while b.http.get("/v1/policy").json()["mode"] != "either":
            assert time.monotonic() - changed < 5, "B still serves the old policy after 5 s"
            time.sleep(0.05)
        took = time.monotonic() - changed
        signup = b.signup(address(), email="replica@example.test")
        assert signup.status_code == 201, signup.text
        assert signup.json()["account"]["policy_version"] == version
        history = b.http.get("/v1/admin/policy/history", headers=cluster.admin).json()
        assert "key:operator" in json.dumps(history)
        # One subject shown the form by both replicas, twice each, is one exposure.
        for api in (a, b, a, b):
            assert api.http.get("/v1/policy", params={"subject": "device-1"}).status_code == 200
        stats = a.http.get("/v1/admin/stats", headers=cluster.admin).json()
        [arms] = [v["arms"] for v in stats["versions"] if v["policy_version"] == version]
        assert sum(arm["exposures"] for arm in arms) == 1, arms
    finally:  # the other tests sign up phones under the first policy's terms
        restore = {"mode": "phone", "prefer": before["prefer"]}
        r = a.http.put("/v1/admin/policy", headers=cluster.admin, json=restore)
        assert r.status_code == 200, r.text
        wait("A and B back on the first policy's mode", lambda: _modes(a, b) == {"phone"})
    print(f"policy change seen by B after {took:.2f} s")
    assert took < 5


def test_signups_from_one_address_are_counted_across_both_apis(cluster: Cluster) -> None:
    ip, numbers = address(), prefix()
    apis = itertools.cycle((cluster.a, cluster.b))
    answers = [next(apis).signup(ip, phone=f"{numbers}{i:03d}") for i in range(SIGNUPS_PER_IP + 2)]
    assert [r.status_code for r in answers] == [201] * SIGNUPS_PER_IP + [429, 429]
    for refused in answers[SIGNUPS_PER_IP:]:
        _problem(refused, 429, "rate_limited")
        assert int(refused.headers["retry-after"]) > 0
    # Another address is not held back by this one's count, on either API.
    assert cluster.b.signup(address(), phone=f"{prefix()}900").status_code == 201


def test_sends_to_one_number_are_counted_across_both_apis(cluster: Cluster) -> None:
    phone = f"{prefix()}042"
    apis = itertools.cycle((cluster.a, cluster.b))
    answers = [next(apis).signup(address(), phone=phone) for _ in range(SENDS_PER_DESTINATION + 2)]
    assert [r.status_code for r in answers] == [201] * SENDS_PER_DESTINATION + [429, 429]
    for refused in answers[SENDS_PER_DESTINATION:]:
        _problem(refused, 429, "rate_limited")
        assert int(refused.headers["retry-after"]) > 0


def test_a_resend_through_b_keeps_the_cooldown_and_the_attempts_of_a_s_code(
    cluster: Cluster,
) -> None:
    a, b = cluster.a, cluster.b
    ip, phone = address(), "+1 202 555 0161"  # sandbox: its code is readable
    r = a.signup(ip, phone=phone)
    assert r.status_code == 201, r.text
    vid = r.json()["verifications"][0]["id"]
    code = b.http.get("/v1/sandbox/messages", params={"to": phone}).json()["messages"][0]["code"]
    wrong = str((int(code) + 1) % 10 ** len(code)).zfill(len(code))
    assert _problem(a.check(ip, vid, wrong), 422, "code_incorrect")["attempts_left"] == 4
    resend = b.http.post(f"/v1/verifications/{vid}/resend", headers={"X-Forwarded-For": ip})
    _problem(resend, 429, "rate_limited")
    assert 0 < int(resend.headers["retry-after"]) <= 30  # A's signup started the cooldown
    assert _problem(b.check(ip, vid, wrong), 422, "code_incorrect")["attempts_left"] == 3
    approved = a.check(ip, vid, code)
    assert approved.status_code == 200, approved.text
    assert b.http.get(f"/v1/accounts/{r.json()['account']['id']}").json()["status"] == "active"


def test_50_parallel_wrong_guesses_over_both_apis_are_evaluated_at_most_5_times(
    cluster: Cluster,
) -> None:
    a, b = cluster.a, cluster.b
    phone = f"{prefix()}007"
    r = a.signup(address(), phone=phone)
    assert r.status_code == 201, r.text
    first = r.json()["verifications"][0]
    assert first["attempts_left"] == MAX_CHECKS
    code = cluster.code(phone)
    wrong = str((int(code) + 1) % 10 ** len(code)).zfill(len(code))
    ip = address()  # one attacker, as the per-IP check limit sees it
    targets = []
    for i in range(50):
        api = (a, b)[i % 2]
        raw = build_request(
            "POST",
            f"/v1/verifications/{first['id']}/check",
            host=f"127.0.0.1:{api.port}",
            json_body={"code": wrong},
            headers={"X-Forwarded-For": ip},
        )
        targets.append(("127.0.0.1", api.port, raw))
    responses = fire_synchronised_at(targets, timeout=30)
    by_status = Counter(r.status for r in responses)
    per_api = {api.name: Counter(r.status for r in responses[i::2]) for i, api in enumerate((a, b))}
    print(f"50 parallel wrong guesses over A and B: {dict(by_status)}, by API {per_api}")
    assert by_status == {422: MAX_CHECKS, 409: 50 - MAX_CHECKS}, by_status
    incorrect = [r.json() for r in responses if r.status == 422]
    assert {b["code"] for b in incorrect} == {"code_incorrect"}
    assert sorted(b["attempts_left"] for b in incorrect) == list(range(MAX_CHECKS))
    closed = [r.json() for r in responses if r.status == 409]
    assert {(c["code"], c["verification_status"]) for c in closed} == {
        ("verification_closed", "locked")
    }
    _problem(b.check(ip, first["id"], code), 409, "verification_closed")  # the right code, late
    assert b.http.get(f"/v1/verifications/{first['id']}").json()["status"] == "locked"

    # The destination's guess budget (10 a day, a sliding log) spans both APIs: a second
    # code for the number gets the other 5 guesses, alternating, and then no more.
    r = b.signup(address(), phone=phone)
    assert r.status_code == 201, r.text
    second = r.json()["verifications"][0]["id"]
    code = cluster.code(phone, 2)
    wrong = str((int(code) + 1) % 10 ** len(code)).zfill(len(code))
    lefts = [
        _problem((a, b)[i % 2].check(ip, second, wrong), 422, "code_incorrect")["attempts_left"]
        for i in range(GUESS_BUDGET - MAX_CHECKS)
    ]
    assert lefts == [4, 3, 2, 1, 0]
    r = a.signup(address(), phone=phone)
    assert r.status_code == 201, r.text
    third = r.json()["verifications"][0]["id"]
    for api in (a, b):
        refused = api.check(ip, third, cluster.code(phone, 3))
        _problem(refused, 429, "too_many_attempts")
        assert int(refused.headers["retry-after"]) > 0
    # Refused guesses were never evaluated: the third code still has every attempt.
    assert b.http.get(f"/v1/verifications/{third}").json()["attempts_left"] == MAX_CHECKS


def test_an_idempotency_key_sent_to_a_then_b_replays_a_s_answer(cluster: Cluster) -> None:
    a, b = cluster.a, cluster.b
    ip, key = address(), f"replicas-{uuid.uuid4().hex}"
    body = {"phone": "+1 202 555 0171"}  # sandbox: delivered at once, readable
    headers = {"Idempotency-Key": key, "X-Forwarded-For": ip}
    first = a.http.post("/v1/accounts", json=body, headers=headers)
    assert first.status_code == 201, first.text
    again = b.http.post("/v1/accounts", json=body, headers=headers)
    assert again.status_code == 201, again.text
    assert again.json() == first.json()
    assert again.headers["location"] == first.headers["location"]
    inbox = b.http.get("/v1/sandbox/messages", params={"to": "+12025550171"}).json()
    assert len(inbox["messages"]) == 1, "the replay sent no second code"
    other = b.http.post("/v1/accounts", json={"phone": "+1 202 555 0172"}, headers=headers)
    _problem(other, 422, "idempotency_key_reused")
    # The key is the client's: from another address it is a key of its own.
    elsewhere = a.http.post(
        "/v1/accounts", json=body, headers={**headers, "X-Forwarded-For": address()}
    )
    assert elsewhere.status_code == 201, elsewhere.text
    assert elsewhere.json()["account"]["id"] != first.json()["account"]["id"]


def test_a_breaker_tripped_through_a_holds_the_prefix_on_b_within_a_second(
    cluster: Cluster,
) -> None:
    a, b = cluster.a, cluster.b
    numbers = prefix()
    for i in range(PREFIX_BUDGET):
        assert a.signup(address(), phone=f"{numbers}{i:03d}").status_code == 201
    # The budget runs out with nothing verified: the prefix's breaker trips.
    _problem(a.signup(address(), phone=f"{numbers}100"), 429, "rate_limited")
    tripped = time.monotonic()
    while (r := b.signup(address(), phone=f"{numbers}101")).status_code != 403:
        _problem(r, 429, "rate_limited")  # the budget, until B's look at the breakers is fresh
        assert time.monotonic() - tripped < 3, "B does not see A's breaker after 3 s"
        time.sleep(0.05)
    took = time.monotonic() - tripped
    _problem(r, 403, "sms_destination_suspended")
    _problem(a.signup(address(), phone=f"{numbers}102"), 403, "sms_destination_suspended")
    held = b.http.get("/v1/admin/breakers", headers=cluster.admin).json()
    assert [(h["scope"], h["key"]) for h in held["breakers"]] == [("prefix", numbers)]
    # Another prefix is not held.
    assert b.signup(address(), phone=f"{prefix()}000").status_code == 201
    # Lifted through B, A lets the prefix through to its budget (spent this hour) again.
    lift = b.http.delete(f"/v1/admin/breakers/{held['breakers'][0]['id']}", headers=cluster.admin)
    assert lift.status_code == 204, lift.text
    lifted = time.monotonic()
    while (r := a.signup(address(), phone=f"{numbers}103")).status_code != 429:
        _problem(r, 403, "sms_destination_suspended")
        assert time.monotonic() - lifted < 3, "A still holds the prefix 3 s after the lift"
        time.sleep(0.05)
    _problem(r, 429, "rate_limited")
    print(f"breaker tripped on A held on B after {took:.2f} s; lift on B seen by A after "
          f"{time.monotonic() - lifted:.2f} s")  # fmt: skip
    assert took < 2, "B re-reads the breakers once a second"  # 1 s, and a loaded machine


def test_the_one_worker_delivers_what_both_apis_queued_each_once(cluster: Cluster) -> None:
    a, b = cluster.a, cluster.b
    queued: dict[str, str] = {}  # verification id -> number
    prefixes = [prefix() for _ in range(5)]
    for n in range(20):
        phone = f"{prefixes[n % 5]}{n:03d}"  # four to a prefix: its budget
        r = (a, b)[n % 2].signup(address(), phone=phone)
        assert r.status_code == 201, r.text
        queued[r.json()["verifications"][0]["id"]] = phone

    def delivered() -> bool:
        return all(
            (a, b)[i % 2].http.get(f"/v1/verifications/{vid}").json()["delivery"] == "sent"
            for i, vid in enumerate(queued)
        )

    wait("every verification reads sent", delivered, timeout=30)
    bodies = [json.loads(r.body) for r in cluster.gateway.requests]
    to = Counter(body["to"] for body in bodies)
    assert all(to[phone] == 1 for phone in queued.values()), to
    # Every message of the module, from every test, reached the gateway once.
    assert cluster.accepted.accepted, "nothing was delivered"
    twice = {mid: n for mid, n in cluster.accepted.accepted.items() if n != 1}
    assert twice == {}, twice
    assert len({body["id"] for body in bodies}) == len(bodies)
    assert cluster.worker.poll() is None
    print(f"the worker delivered {len(cluster.accepted.accepted)} messages, each once")
