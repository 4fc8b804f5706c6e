"""Races over real HTTP, fired by last-byte synchronisation, on SQLite and PostgreSQL.

Each request gets its own connection and is sent whole but for its last byte; then
all last bytes are released together, so the checks reach the database at once.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy import func, select

from support.lastbyte import _PAUSE as LASTBYTE_PAUSE
from support.lastbyte import RawResponse, build_request, fire_synchronised, parse_response
from support.liveserver import LiveServer
from verifyd.app import create_app
from verifyd.models import Account, Identity, Verification, table_of
from verifyd.runtime import Runtime
from verifyd.settings import Settings

PHONE = "+1 202 555 0142"
E164 = "+12025550142"

_accounts = table_of(Account)
_identities = table_of(Identity)
_verifications = table_of(Verification)


@dataclass
class Live:
    server: LiveServer
    http: httpx.Client
    rt: Runtime

    def fire(self, requests: list[tuple[str, Any]]) -> list[RawResponse]:
        """POST each ``(path, json)`` at once; every answer must arrive and parse."""
        host = f"{self.server.host}:{self.server.port}"
        raw = [build_request("POST", path, host=host, json_body=body) for path, body in requests]
        start = time.monotonic()
        responses = fire_synchronised(self.server.host, self.server.port, raw, timeout=25)
        assert time.monotonic() - start < 25
        assert len(responses) == len(requests)
        for r in responses:
            assert r.headers["content-type"].startswith(("application/json", "application/problem"))
            assert isinstance(r.json(), dict), r.text
        return responses

    def signup(self, phone: str) -> tuple[str, str, str]:
        """Sign a sandbox phone up; returns (account id, verification id, code)."""
        r = self.http.post("/v1/accounts", json={"phone": phone})
        assert r.status_code == 201, r.text
        body = r.json()
        r = self.http.get("/v1/sandbox/messages", params={"to": phone})
        code = r.json()["messages"][0]["code"]
        return body["account"]["id"], body["verifications"][0]["id"], code


@contextmanager
def live(settings: Settings) -> Iterator[Live]:
    app = create_app(settings)
    with LiveServer(app) as server, httpx.Client(base_url=server.base_url, timeout=20) as http:
        yield Live(server, http, app.state.runtime)


def race_settings(make_settings: Callable[..., Settings]) -> Settings:
    # Limits out of the way: what is under test is the attempt cap itself.
    return make_settings(
        guess_budget_per_day=1_000_000,
        checks_per_ip_per_minute=1_000_000,
        sends_per_destination_per_hour=1_000_000,
        signups_per_ip_per_hour=1_000_000,
    )


def check_path(verification_id: str) -> str:
    return f"/v1/verifications/{verification_id}/check"


def wrong(code: str) -> str:
    return str((int(code) + 1) % 10 ** len(code)).zfill(len(code))


def test_parallel_wrong_guesses_cannot_exceed_the_attempt_cap(
    make_settings: Callable[..., Settings],
) -> None:
    with live(race_settings(make_settings)) as lv:
        _, ver, code = lv.signup(PHONE)
        responses = lv.fire([(check_path(ver), {"code": wrong(code)})] * 50)

        by_status = Counter(r.status for r in responses)
        assert by_status == {422: 5, 409: 45}, by_status
        incorrect = [r.json() for r in responses if r.status == 422]
        assert {b["code"] for b in incorrect} == {"code_incorrect"}
        assert sorted(b["attempts_left"] for b in incorrect) == [0, 1, 2, 3, 4]
        closed = [r.json() for r in responses if r.status == 409]
        assert {(b["code"], b["verification_status"]) for b in closed} == {
            ("verification_closed", "locked")
        }

        with lv.rt.db.read() as conn:
            row = conn.execute(
                select(_verifications.c.attempts, _verifications.c.status).where(
                    _verifications.c.id == ver
                )
            ).one()
        assert (row.attempts, row.status) == (5, "locked")

        r = lv.http.post(check_path(ver), json={"code": code})
        assert r.status_code == 409, r.text
        assert r.json()["verification_status"] == "locked"


def test_parallel_right_codes_approve_once(make_settings: Callable[..., Settings]) -> None:
    with live(race_settings(make_settings)) as lv:
        account, ver, code = lv.signup(PHONE)
        responses = lv.fire([(check_path(ver), {"code": code})] * 20)

        by_status = Counter(r.status for r in responses)
        assert by_status == {200: 1, 409: 19}, by_status
        [ok] = [r.json() for r in responses if r.status == 200]
        assert ok["status"] == "approved" and ok["account"]["status"] == "active"
        closed = [r.json() for r in responses if r.status == 409]
        assert {(b["code"], b["verification_status"]) for b in closed} == {
            ("verification_closed", "approved")
        }

        with lv.rt.db.read() as conn:
            owners = conn.execute(
                select(_identities.c.account_id).where(
                    _identities.c.kind == "phone", _identities.c.value == E164
                )
            ).all()
            status = conn.execute(
                select(_accounts.c.status).where(_accounts.c.id == account)
            ).scalar_one()
            identities = conn.execute(select(func.count()).select_from(_identities)).scalar_one()
        assert [o.account_id for o in owners] == [account]
        assert identities == 1
        assert status == "active"


def test_parallel_accounts_for_one_phone_activate_at_most_once(
    make_settings: Callable[..., Settings],
) -> None:
    with live(race_settings(make_settings)) as lv:
        # all pending at once: none of them is a shadow of an active owner
        signups = [lv.signup(PHONE) for _ in range(10)]
        responses = lv.fire([(check_path(ver), {"code": code}) for _, ver, code in signups])

        by_status = Counter(r.status for r in responses)
        assert by_status == {200: 1, 409: 9}, by_status
        winner = next(
            acc for (acc, _, _), r in zip(signups, responses, strict=True) if r.status == 200
        )
        closed = [r.json() for r in responses if r.status == 409]
        assert {(b["code"], b["verification_status"]) for b in closed} == {
            ("verification_closed", "canceled")
        }

        with lv.rt.db.read() as conn:
            active = conn.execute(
                select(_accounts.c.id).where(
                    _accounts.c.id.in_([acc for acc, _, _ in signups]),
                    _accounts.c.status == "active",
                )
            ).all()
            owners = conn.execute(
                select(_identities.c.account_id).where(_identities.c.value == E164)
            ).all()
        assert [a.id for a in active] == [winner]
        assert [o.account_id for o in owners] == [winner]
        for acc, _, _ in signups:
            if acc != winner:
                assert lv.http.get(f"/v1/accounts/{acc}").json()["status"] == "pending"


_BURST = 50
_CAP = 5
# Between the read and the write: long next to how far apart the burst lands, so whether
# the race shows depends on the arrival spread alone, not on how the event loop schedules.
_RACE_WINDOW = 0.5


def _read_then_write_app() -> tuple[FastAPI, dict[str, Any]]:
    """An endpoint with the race the service must not have: read, await, then write."""
    state: dict[str, Any] = {"attempts": 0, "arrivals": []}
    app = FastAPI()

    @app.post("/guess")
    async def guess(request: Request) -> JSONResponse:
        # Like the check endpoint, it needs the whole body, so a request starts here only
        # once its last byte is in (a handler without a body would start on the headers).
        await request.json()
        state["arrivals"].append(time.monotonic())
        seen = state["attempts"]  # read ...
        if seen >= _CAP:
            return JSONResponse({"code": "verification_closed"}, status_code=409)
        await asyncio.sleep(_RACE_WINDOW)
        state["attempts"] = seen + 1  # ... then write what was read, plus one
        return JSONResponse({"code": "code_incorrect"}, status_code=422)

    return app, state


def _send_whole(host: str, port: int, request: bytes) -> RawResponse:
    """One request on its own connection, sent in one piece, its answer read to EOF."""
    with socket.create_connection((host, port), timeout=10) as sock:
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return parse_response(b"".join(chunks))


def test_the_harness_exposes_a_read_then_write_race() -> None:
    """Control: last-byte synchronisation lands a burst together, exposing a read-then-write.

    The endpoint reads the counter, awaits a 0.5 s window, then writes: a request that
    arrives before the first write reads a stale counter, whatever the scheduling. The same
    requests one after another stop at the cap; fired by the harness they all arrive within
    the window, so every one of them gets past the cap.
    """
    app, state = _read_then_write_app()
    with LiveServer(app) as server:
        host = f"{server.host}:{server.port}"
        raw = [build_request("POST", "/guess", host=host, json_body={"code": "0000"})] * _BURST

        one_by_one = [_send_whole(server.host, server.port, r) for r in raw]
        assert Counter(r.status for r in one_by_one) == {422: _CAP, 409: _BURST - _CAP}
        assert state["attempts"] == _CAP

        state.update(attempts=0, arrivals=[])
        fired_at = time.monotonic()
        together = fire_synchronised(server.host, server.port, raw, timeout=25)

    arrivals: list[float] = state["arrivals"]
    assert len(arrivals) == len(together) == _BURST
    # The property under test: the withheld last bytes held every request back until
    # the harness released them together ...
    held = min(arrivals) - fired_at
    assert held >= LASTBYTE_PAUSE, f"a request started {held * 1000:.0f} ms in, before the release"
    # ... so the whole burst reached the handler within the window, before any write ...
    spread = max(arrivals) - min(arrivals)
    assert spread < _RACE_WINDOW, f"the burst arrived over {spread * 1000:.0f} ms"
    # ... so every request read the counter at 0, and all but one of the writes were lost.
    assert Counter(r.status for r in together) == {422: _BURST}
    assert state["attempts"] == 1
