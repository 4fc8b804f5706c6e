"""Enumeration through follow-up reads: 200 new and 200 taken numbers, read for read.

The attack: sign up with numbers, some of which belong to active accounts, and watch
every read that follows (the verification right away and once the dispatcher ran, the
account, a resend after the cooldown, a wrong check) for any difference. Everything goes
over HTTP to a live server whose SMS leave through the ``webhook`` provider to a real
gateway on loopback (not the sandbox, which delivers inside the signup's transaction).
The dispatcher runs as a separate worker, as ``verifyd worker`` does, so the test
decides when it runs and counts its statements apart from the API's.

Besides the answers, the database statements each request (and the worker's handling of
each message) executes are recorded on the engines (SQLAlchemy's ``before_cursor_execute``
on PostgreSQL; SQLite's own trace callback there, since the hot statements bypass
SQLAlchemy's events) and compared pair by pair, statement for statement, with their
literals masked: a different count would be a different time.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from sqlalchemy import event
from sqlalchemy.engine import Engine

from support.gateway import Answer, Gateway, Request
from support.liveserver import LiveServer
from verifyd.app import create_app
from verifyd.runtime import Runtime, build_runtime
from verifyd.settings import Settings

#: Identities per group (owned by an active account, or new).
N = 200
WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"enumeration-test-webhook-secret!").decode()
COOLDOWN = 1
#: Answer fields that differ between any two signups, whoever owns the number.
VARYING = {"id", "to", "phone", "created_at", "expires_at", "resend_available_at"}
#: Headers that vary with the clock or with the length of a masked value.
VARYING_HEADERS = {"date", "content-length", "x-request-id", "location"}
CODE = re.compile(r"\b(\d{4})\b")


def phones() -> tuple[list[str], list[str]]:
    """Taken and new real-looking UK mobiles, alternating in one block (+44 7911 12xxxx).

    Drawn from the same prefixes, so the velocity signals see both groups alike.
    """
    numbers = [f"+44 7911 12{i:04d}" for i in range(2 * N)]
    return numbers[0::2], numbers[1::2]


def e164(phone: str) -> str:
    return phone.replace(" ", "")


class Inbox:
    """The gateway's handler: accepts every message, keeps the codes by destination."""

    def __init__(self) -> None:
        self.codes: dict[str, list[str]] = {}
        self.lock = threading.Lock()

    def __call__(self, request: Request) -> Answer:
        document = json.loads(request.body)
        match = CODE.search(document["body"])
        assert match is not None, document["body"]
        with self.lock:
            self.codes.setdefault(document["to"], []).append(match.group(1))
            sid = f"gw-{sum(map(len, self.codes.values()))}"
        return Answer(202, json.dumps({"id": sid}).encode())


#: Probes a process runs at most once a second, whoever signs up (recent refusals in
#: ``signals.py``, active breakers in ``flows/pumping.py``): which request pays for them
#: depends on the clock alone, so they are left out of the pairs.
CLOCKED = re.compile(
    r"^SELECT signup_blocks\.id\s+FROM signup_blocks\s+WHERE signup_blocks\.at >"
    r"|^SELECT sms_breakers\.id\b.*\bWHERE sms_breakers\.lifted_at IS (?:NULL|\?)",
    re.DOTALL,
)
#: Literals in SQLite's expanded statements (PostgreSQL's arrive with placeholders).
LITERAL = re.compile(r"'(?:[^']|'')*'|\b\d+(?:\.\d+)?\b|\bNULL\b")


class Statements:
    """Records the statements executed on some engines (every thread, every connection).

    On PostgreSQL every statement passes SQLAlchemy's ``before_cursor_execute``. On
    SQLite the hot statements run on the driver's cursor directly (``prepared.py``),
    past SQLAlchemy's events, so there the driver's own trace callback records, which
    sees every statement SQLite runs (``BEGIN``, savepoints and ``COMMIT`` included).
    Each is kept as its shape: the SQL with its literals replaced by ``?``.
    """

    def __init__(self, *engines: Engine) -> None:
        self.engines = list(dict.fromkeys(engines))
        self.executed: list[str] = []
        self.lock = threading.Lock()
        for engine in self.engines:
            if engine.dialect.name == "sqlite":
                event.listen(engine, "checkout", self._trace)
            else:
                event.listen(engine, "before_cursor_execute", self._executed)

    def _record(self, sql: str) -> None:
        if sql.startswith("--"):  # a trigger's program, not a statement of its own
            return
        with self.lock:
            self.executed.append(LITERAL.sub("?", sql))

    def _executed(self, _conn: Any, _cursor: Any, sql: str, *_: Any) -> None:
        self._record(sql)

    def _trace(self, dbapi_connection: Any, *_: Any) -> None:
        dbapi_connection.set_trace_callback(self._record)

    @contextmanager
    def counting(self, into: list[tuple[str, ...]]) -> Iterator[None]:
        """Append to ``into`` the shapes of the statements run inside the block."""
        before = len(self.executed)
        yield
        into.append(tuple(s for s in self.executed[before:] if not CLOCKED.match(s)))

    def close(self) -> None:
        for engine in self.engines:
            if engine.dialect.name == "sqlite":
                event.remove(engine, "checkout", self._trace)
            else:
                event.remove(engine, "before_cursor_execute", self._executed)


def engines(rt: Runtime) -> list[Engine]:
    return [rt.db.writer, rt.db.reader]


class Worker:
    """The dispatcher of a separate runtime, on an event loop of its own thread."""

    def __init__(self, settings: Settings) -> None:
        self.rt = build_runtime(settings)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def _run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=30)

    def drain(self) -> int:
        """Handle every message due now; returns how many."""
        handled = 0
        while done := self._run(self.rt.dispatcher.run_once()):
            handled += done
        return handled

    def close(self) -> None:
        for provider in self.rt.providers.values():
            self._run(provider.aclose())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()
        self.rt.db.dispose()


def masked(value: Any) -> Any:
    """A JSON answer with what varies between any two signups replaced by its name."""
    if isinstance(value, dict):
        return {
            k: f"<{k}>" if k in VARYING and v is not None else masked(v) for k, v in value.items()
        }
    if isinstance(value, list):
        return [masked(v) for v in value]
    return value


def seen(r: httpx.Response) -> str:
    """All a caller sees of an answer, masked, as one comparable string."""
    headers = sorted(
        (k, v if k in ("content-type", "retry-after", "cache-control") else "")
        for k, v in r.headers.items()
        if k not in VARYING_HEADERS
    )
    return json.dumps([r.status_code, headers, masked(r.json())], sort_keys=True)


@dataclass
class Group:
    """What one group saw and cost, per step, in signup order."""

    reads: dict[str, list[str]] = field(default_factory=dict)
    statements: dict[str, list[tuple[str, ...]]] = field(default_factory=dict)

    def read(self, step: str, r: httpx.Response) -> httpx.Response:
        self.reads.setdefault(step, []).append(seen(r))
        return r

    def cost(self, step: str) -> list[tuple[str, ...]]:
        return self.statements.setdefault(step, [])


@dataclass
class Signed:
    group: str
    phone: str
    account: str
    verification: str


@pytest.fixture
def attack(make_settings: Callable[..., Settings]) -> Iterator[Callable[[], None]]:
    """The attack's setting: an API, a worker and a gateway, each counted apart."""
    inbox = Inbox()
    with Gateway(inbox) as gateway:
        settings = make_settings(
            sandbox=False,
            dispatcher="off",  # the worker below delivers, when the test says
            sms_provider="webhook",
            webhook_url=gateway.url + "/deliver",
            webhook_secret=WEBHOOK_SECRET,
            sms_resend_cooldown_seconds=COOLDOWN,
            signups_per_ip_per_hour=100_000,
            checks_per_ip_per_minute=100_000,
            sends_per_destination_per_hour=100,
            # The velocity signals are about the request, not the owner, but they flip
            # with their windows, and a flip between the two signups of a pair would
            # change one's counters and not the other's: kept out of the way here.
            velocity_ip_signups=100_000,
            velocity_prefix_signups=100_000,
            # 600 sends to one prefix, only the owners' verified: the pumping budgets and
            # breaker would hold the prefix (their own tests are test_pumping*.py).
            sms_budget_per_prefix_per_hour=100_000,
            sms_budget_per_country_per_hour=100_000,
            sms_budget_per_day=100_000,
            sms_breaker_min_sends=100_000,
            sms_breaker_country_min_sends=100_000,
        )
        app = create_app(settings)
        worker = Worker(settings)
        try:
            with (
                LiveServer(app) as server,
                httpx.Client(base_url=server.base_url, timeout=20) as http,
            ):
                api = Statements(*engines(app.state.runtime))
                dispatch = Statements(*engines(worker.rt))
                try:
                    yield lambda: run_attack(http, worker, inbox, api, dispatch)
                finally:
                    api.close()
                    dispatch.close()
        finally:
            worker.close()


def run_attack(
    http: httpx.Client, worker: Worker, inbox: Inbox, api: Statements, dispatch: Statements
) -> None:
    taken, new = phones()

    # The owners: 200 accounts, each number verified with the code the gateway got.
    for phone in taken:
        r = http.post("/v1/accounts", json={"phone": phone})
        assert r.status_code == 201, r.text
        verification = r.json()["verifications"][0]["id"]
        assert worker.drain() == 1
        code = inbox.codes[e164(phone)][-1]
        r = http.post(f"/v1/verifications/{verification}/check", json={"code": code})
        assert r.status_code == 200 and r.json()["account"]["status"] == "active", r.text
    owners_messages = sum(map(len, inbox.codes.values()))
    assert owners_messages == N

    groups = {"new": Group(), "taken": Group()}
    signed: list[Signed] = []
    # Interleaved: new, taken, new, taken, ...
    for fresh, owned in zip(new, taken, strict=True):
        for name, phone in (("new", fresh), ("taken", owned)):
            g = groups[name]
            with api.counting(g.cost("signup")):
                r = g.read("signup", http.post("/v1/accounts", json={"phone": phone}))
            assert r.status_code == 201, r.text
            s = Signed(name, phone, r.json()["account"]["id"], r.json()["verifications"][0]["id"])
            signed.append(s)
            with api.counting(g.cost("verification.queued")):
                r = g.read("verification.queued", http.get(f"/v1/verifications/{s.verification}"))
            assert r.json()["delivery"] == "queued", r.text
            with api.counting(g.cost("account")):
                g.read("account", http.get(f"/v1/accounts/{s.account}"))
            with dispatch.counting(g.cost("dispatch")):
                assert worker.drain() == 1
            with api.counting(g.cost("verification.sent")):
                r = g.read("verification.sent", http.get(f"/v1/verifications/{s.verification}"))
            assert r.json()["delivery"] == "sent", r.text

    time.sleep(COOLDOWN + 0.1)  # every signup's cooldown is over
    for s in signed:
        g = groups[s.group]
        with api.counting(g.cost("resend")):
            r = g.read("resend", http.post(f"/v1/verifications/{s.verification}/resend"))
        assert r.status_code == 202 and r.json()["delivery"] == "queued", r.text
        with api.counting(g.cost("resend.queued")):
            g.read("resend.queued", http.get(f"/v1/verifications/{s.verification}"))
        with dispatch.counting(g.cost("resend.dispatch")):
            assert worker.drain() == 1
        with api.counting(g.cost("resend.sent")):
            r = g.read("resend.sent", http.get(f"/v1/verifications/{s.verification}"))
        assert r.json()["delivery"] == "sent", r.text
        # A wrong code: for a new number, anything but the code it was sent.
        sent = inbox.codes.get(e164(s.phone), [])
        wrong = "0001" if sent and sent[-1] == "0000" else "0000"
        with api.counting(g.cost("check.wrong")):
            r = g.read(
                "check.wrong",
                http.post(f"/v1/verifications/{s.verification}/check", json={"code": wrong}),
            )
        assert r.status_code == 422 and r.json()["code"] == "code_incorrect", r.text
        with api.counting(g.cost("account.after")):
            g.read("account.after", http.get(f"/v1/accounts/{s.account}"))

    # Nothing ever reached a taken number after its owner's own code.
    for phone in taken:
        assert len(inbox.codes[e164(phone)]) == 1, phone
    for phone in new:
        assert len(inbox.codes[e164(phone)]) == 2, phone

    new_seen, taken_seen = groups["new"], groups["taken"]
    assert set(new_seen.reads) == set(taken_seen.reads)
    for step, reads in new_seen.reads.items():
        assert len(reads) == len(taken_seen.reads[step]) == N
        assert Counter(reads) == Counter(taken_seen.reads[step]), step
    # The same statements, one for one, for the two signups of every pair.
    for step, executed in new_seen.statements.items():
        other = taken_seen.statements[step]
        for i, (mine, theirs) in enumerate(zip(executed, other, strict=True)):
            assert mine == theirs, (step, i, set(mine) ^ set(theirs), len(mine), len(theirs))
    report = {step: sorted({len(e) for e in x}) for step, x in new_seen.statements.items()}
    print("statements per request or message:", report)


def test_follow_up_reads_and_statements_match_for_new_and_taken_numbers(
    attack: Callable[[], None],
) -> None:
    attack()
