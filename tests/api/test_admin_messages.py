"""Dead letters: ``GET /v1/admin/messages`` and ``POST /v1/admin/messages/redrive``."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select, update

from support.api import admin_headers, runtime, signup
from support.outbox import REAL_PHONES, Flaky, Start, check, delivery, message_row, wait
from verifyd.models import AuditEvent, Verification, table_of, utcnow

_verifications = table_of(Verification)


def _dead(client: TestClient, phones: list[str]) -> list[str]:
    """Sign up each phone and wait until its message is dead; the verification ids."""
    ids = [signup(client, phone=p)["verifications"][0]["id"] for p in phones]
    for vid in ids:
        wait("dead", lambda v=vid: delivery(client, v) == "failed")
    return ids


def test_dead_letters_are_listed_newest_first_masked_and_paged(
    start: Start, flaky: type[Flaky]
) -> None:
    flaky.fatal = True
    client = start()
    auth = admin_headers(client)
    ids = _dead(client, REAL_PHONES)

    r = client.get("/v1/admin/messages", headers=auth, params={"limit": 2})
    assert r.status_code == 200, r.text
    page = r.json()
    assert [m["verification_id"] for m in page["messages"]] == [ids[2], ids[1]]
    first = page["messages"][0]
    assert first["status"] == "dead" and first["provider"] == "flaky"
    assert first["to"] == "+1 415-555-••73", "destinations are masked"
    assert "21211" in first["last_error"] and first["attempts"] == 1
    assert page["next_cursor"] == page["messages"][-1]["id"]

    rest = client.get(
        "/v1/admin/messages", headers=auth, params={"limit": 2, "cursor": page["next_cursor"]}
    ).json()
    assert [m["verification_id"] for m in rest["messages"]] == [ids[0]]
    assert rest["next_cursor"] is None
    everything = client.get("/v1/admin/messages", headers=auth, params={"status": "all"}).json()
    assert len(everything["messages"]) == 3
    assert client.get("/v1/admin/messages", headers=auth, params={"status": "sent"}).json() == {
        "messages": [],
        "next_cursor": None,
    }


def test_bad_queries_and_bodies_are_problems(client: TestClient) -> None:
    auth = admin_headers(client)
    assert client.get("/v1/admin/messages").status_code == 401
    for params, field in (({"status": "lost"}, "status"), ({"limit": 0}, "limit")):
        r = client.get("/v1/admin/messages", headers=auth, params=params)
        assert r.status_code == 422, r.text
        assert r.headers["content-type"] == "application/problem+json"
        assert r.json()["errors"][0]["field"] == field
    for body in ({}, {"ids": ["msg_x"], "all": True}, {"ids": []}, {"all": "yes"}):
        r = client.post("/v1/admin/messages/redrive", headers=auth, json=body)
        assert r.status_code == 422, (body, r.text)
        assert r.json()["code"] == "invalid_request"
    assert client.post("/v1/admin/messages/redrive", json={"all": True}).status_code == 401


def test_a_redriven_message_is_delivered_and_its_code_checks(
    start: Start, flaky: type[Flaky]
) -> None:
    flaky.fatal = True
    client = start()
    auth = admin_headers(client, "ops-alice")
    (vid,) = _dead(client, REAL_PHONES[:1])
    dead = message_row(client, vid)

    flaky.fatal = flaky.down = False  # the gateway was fixed
    r = client.post("/v1/admin/messages/redrive", headers=auth, json={"ids": [dead.id, "msg_no"]})
    assert r.status_code == 200, r.text
    assert r.json() == {"redriven": [dead.id], "skipped": [{"id": "msg_no", "reason": "not_found"}]}
    wait("delivery", lambda: delivery(client, vid) == "sent")
    (message,) = flaky.sent
    check(client, vid, message.code or "")

    again = client.post("/v1/admin/messages/redrive", headers=auth, json={"ids": [dead.id]})
    assert again.json()["skipped"] == [{"id": dead.id, "reason": "not_dead"}]
    with runtime(client).db.read() as conn:
        (event,) = conn.execute(
            select(table_of(AuditEvent)).where(table_of(AuditEvent).c.action == "messages.redrive")
        ).all()[:1]
    assert event.actor == "key:ops-alice" and event.after["redriven"] == [dead.id]


def test_redrive_all_requeues_every_dead_message(start: Start, flaky: type[Flaky]) -> None:
    flaky.fatal = True
    client = start()
    ids = _dead(client, REAL_PHONES)
    flaky.fatal = flaky.down = False
    r = client.post("/v1/admin/messages/redrive", headers=admin_headers(client), json={"all": True})
    assert r.status_code == 200 and len(r.json()["redriven"]) == 3
    for vid in ids:
        wait("delivery", lambda v=vid: delivery(client, v) == "sent")
    assert len(flaky.sent) == 3


def _expire(client: TestClient, verification_id: str) -> None:
    with runtime(client).db.write() as conn:
        conn.execute(
            update(_verifications)
            .where(_verifications.c.id == verification_id)
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )


def test_redrive_of_an_expired_verification_reissues_nothing_and_says_so(
    start: Start, flaky: type[Flaky]
) -> None:
    flaky.fatal = True
    client = start()
    (vid,) = _dead(client, REAL_PHONES[:1])
    dead: Any = message_row(client, vid)
    _expire(client, vid)
    flaky.fatal = flaky.down = False
    r = client.post("/v1/admin/messages/redrive", headers=admin_headers(client), json={"all": True})
    assert r.json() == {
        "redriven": [],
        "skipped": [{"id": dead.id, "reason": "verification_expired"}],
    }
    assert message_row(client, vid).status == "dead" and flaky.sent == []
    assert delivery(client, vid) == "failed"
