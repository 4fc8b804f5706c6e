"""Abuse through the Twilio-compatible surface: the same defences as a signup's.

Parallel guesses and parallel starts go over real HTTP with last-byte synchronisation,
as an attacker's would; the pumping budgets and breakers hold /v2 sends as they hold
signups, answering Twilio's codes (20429, 60410).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, text

from support.lastbyte import build_request, fire_synchronised, fire_synchronised_at
from support.liveserver import LiveServer
from support.rollup import live_and_rebuilt
from support.verify import check, create_service, start, twilio_error, verify_key
from verifyd.app import create_app
from verifyd.models import Verification, VerifyVerification, table_of
from verifyd.settings import Settings
from verifyd.verify_models import STATS_VERSION

A = "+447911120{:03d}"  # real-looking mobiles, prefix +447911120 (region GG)
E164 = "+12025550142"

_vv = table_of(VerifyVerification).c
_v = table_of(Verification).c


def test_pumping_budgets_and_breakers_hold_v2_sends(start: Callable[..., TestClient]) -> None:
    client = start(
        sms_budget_per_prefix_per_hour=3, sms_breaker_min_sends=2, sms_breaker_country_min_sends=2
    )
    auth = verify_key(client)
    va = create_service(client, auth)["sid"]
    for i in range(3):
        r = client.post(
            f"/v2/Services/{va}/Verifications", data={"To": A.format(i), "Channel": "sms"},
            headers=auth,
        )  # fmt: skip
        assert r.status_code == 201, r.text
    r = client.post(
        f"/v2/Services/{va}/Verifications", data={"To": A.format(3), "Channel": "sms"}, headers=auth
    )
    twilio_error(r, 429, 20429)
    assert int(r.headers["retry-after"]) >= 1
    # Three codes, none verified: the refusal tripped the prefix's breaker.
    r = client.post(
        f"/v2/Services/{va}/Verifications", data={"To": A.format(4), "Channel": "sms"}, headers=auth
    )
    body = twilio_error(r, 403, 60410)
    assert "pumping" in body["message"]
    rt: Any = client.app.state.runtime  # type: ignore[attr-defined]
    with rt.db.read() as conn:
        live, _ = live_and_rebuilt(conn)
        started = conn.execute(select(func.count()).select_from(table_of(VerifyVerification)))
        assert started.scalar_one() == 3  # refused starts left nothing behind
    key = "VA" + va[-14:]
    assert live[STATS_VERSION, key, "blocked.sms_budget_prefix"] == 1
    assert live[STATS_VERSION, key, "blocked.sms_destination_suspended"] == 1


def _live(settings: Settings) -> tuple[LiveServer, httpx.Client]:
    server = LiveServer(create_app(settings))
    server.start()
    return server, httpx.Client(base_url=server.base_url, timeout=20)


def test_parallel_wrong_checks_cannot_pass_the_cap(make_settings: Callable[..., Settings]) -> None:
    server, http = _live(make_settings(guess_budget_per_day=1_000_000))
    try:
        auth = verify_key(server.app.state.runtime)
        va = create_service(http, auth)["sid"]
        sid = start(http, auth, va, E164).json()["sid"]
        code = http.get("/v1/sandbox/messages", params={"to": E164}).json()["messages"][0]["code"]
        wrong = str((int(code) + 1) % 10 ** len(code)).zfill(len(code))
        host = f"{server.host}:{server.port}"
        raw = build_request(
            "POST", f"/v2/Services/{va}/VerificationCheck", host=host, headers=auth,
            form_body={"VerificationSid": sid, "Code": wrong},
        )  # fmt: skip
        answers = fire_synchronised(server.host, server.port, [raw] * 30, timeout=25)
        seen = Counter((a.status, a.json().get("status") if a.status == 200 else a.json()["code"])
                       for a in answers)  # fmt: skip
        assert seen == {(200, "pending"): 5, (429, 60202): 25}, seen
        with server.app.state.runtime.db.read() as conn:
            row = conn.execute(select(_v.attempts, _v.status).where(_v.id == sid)).one()
        assert (row.attempts, row.status) == (5, "locked")
        twilio_error(check(http, auth, va, VerificationSid=sid, Code=code), 429, 60202)
    finally:
        http.close()
        server.stop()


def test_parallel_starts_to_one_number_make_one_verification(
    make_settings: Callable[..., Settings],
) -> None:
    server, http = _live(make_settings())
    try:
        auth = verify_key(server.app.state.runtime)
        va = create_service(http, auth)["sid"]
        host = f"{server.host}:{server.port}"
        raw = build_request(
            "POST", f"/v2/Services/{va}/Verifications", host=host, headers=auth,
            form_body={"To": E164, "Channel": "sms"},
        )  # fmt: skip
        answers = fire_synchronised(server.host, server.port, [raw] * 12, timeout=25)
        created = {a.json()["sid"] for a in answers if a.status == 201}
        refused = Counter(a.json()["code"] for a in answers if a.status != 201)
        assert len(created) == 1, answers
        assert set(refused) <= {60212, 60203}, refused
        assert all(a.status in (201, 429) for a in answers)
        with server.app.state.runtime.db.read() as conn:
            rows = conn.execute(select(_vv.sid, _vv.send_attempts).where(_vv.to == E164)).all()
        assert len(rows) == 1 and len(rows[0].send_attempts) <= 5
        assert len(rows[0].send_attempts) == sum(a.status == 201 for a in answers)
    finally:
        http.close()
        server.stop()


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_parallel_starts_across_two_replicas_make_one_verification(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings()
    servers = [LiveServer(create_app(settings)) for _ in range(2)]
    for server in servers:
        server.start()
    try:
        rt = servers[0].app.state.runtime
        auth = verify_key(rt)
        with httpx.Client(base_url=servers[0].base_url) as http:
            va = create_service(http, auth)["sid"]
        targets = []
        for i in range(16):
            server = servers[i % 2]
            raw = build_request(
                "POST", f"/v2/Services/{va}/Verifications", host=f"{server.host}:{server.port}",
                headers=auth, form_body={"To": E164, "Channel": "sms"},
            )  # fmt: skip
            targets.append((server.host, server.port, raw))
        answers = fire_synchronised_at(targets, timeout=25)
        assert all(a.status in (201, 429) for a in answers), [a.text for a in answers]
        assert {a.json()["code"] for a in answers if a.status == 429} <= {60212, 60203}
        assert len({a.json()["sid"] for a in answers if a.status == 201}) == 1
        with rt.db.read() as conn:
            rows = conn.execute(select(_vv.sid, _vv.send_attempts).where(_vv.to == E164)).all()
        assert len(rows) == 1
        assert len(rows[0].send_attempts) == sum(a.status == 201 for a in answers)
    finally:
        for server in servers:
            server.stop()


def test_a_second_start_while_the_first_is_in_flight_gets_60212(
    make_settings: Callable[..., Settings],
) -> None:
    # Another transaction holds the writer, so the first start waits for it inside the
    # flow for as long as the test likes: the second one is then in flight beside it.
    server, http = _live(make_settings())
    try:
        rt = server.app.state.runtime
        auth = verify_key(rt)
        va = create_service(http, auth)["sid"]
        first: list[Any] = []
        writing, release = threading.Event(), threading.Event()

        def hold_the_writer() -> None:
            with rt.db.write() as conn:  # SQLite: the one writer is ours
                if conn.dialect.name == "postgresql":  # there: the table a start reads
                    conn.execute(text("LOCK TABLE verify_verifications IN ACCESS EXCLUSIVE MODE"))
                writing.set()
                release.wait(10)

        holder = threading.Thread(target=hold_the_writer)
        holder.start()
        assert writing.wait(10)
        waiting = threading.Thread(target=lambda: first.append(start(http, auth, va, E164)))
        waiting.start()
        time.sleep(0.5)  # the first start is now waiting for the database
        try:
            second = start(http, auth, va, E164)
        finally:
            release.set()
        holder.join(10)
        waiting.join(15)
        body = twilio_error(second, 429, 60212)
        assert "concurrent" in body["message"]
        assert first[0].status_code == 201, first[0].text
        # Once the first has answered, a start again is an ordinary re-send.
        again = start(http, auth, va, E164)
        assert again.status_code == 201 and again.json()["sid"] == first[0].json()["sid"]
    finally:
        http.close()
        server.stop()
