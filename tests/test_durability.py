"""What a client was told is stored: a 201 or an approval survives a SIGKILL of the server
that sent it, taken while other requests are still in flight."""

from __future__ import annotations

import http.client
import json
import os
import signal
import threading
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from test_cli import cli_env
from test_cli_serve import serving

WORKERS = 16
#: Kill the server once this many flows were approved (and more are on their way).
KILL_AFTER = 150


class Flows:
    """Clients that sign up and check codes back to back, remembering every answer."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.lock = threading.Lock()
        self.created: dict[str, str] = {}  # account id -> verification id, on each 201
        self.approved: set[str] = set()  # verification ids, on each 200 to a check
        self.refused: list[str] = []  # answers that were neither (must stay empty)
        self.broken = 0  # requests the kill cut off
        self.enough = threading.Event()
        self.stop = threading.Event()

    def worker(self, index: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        n = 0
        try:
            while not self.stop.is_set():
                n += 1
                phone = f"+99{index:04d}{n:06d}"  # every flow its own number
                status, body = self._post(conn, "/v1/accounts", {"phone": phone})
                if status != 201:
                    self.refused.append(f"signup {status} {body}")
                    return
                vid = body["verifications"][0]["id"]
                with self.lock:
                    self.created[body["account"]["id"]] = vid
                check = f"/v1/verifications/{vid}/check"
                status, answer = self._post(conn, check, {"code": "1234"})
                if status != 200:
                    self.refused.append(f"check {status} {answer}")
                    return
                with self.lock:
                    self.approved.add(vid)
                    if len(self.approved) >= KILL_AFTER:
                        self.enough.set()
        except (OSError, http.client.HTTPException):
            with self.lock:
                self.broken += 1
        finally:
            conn.close()

    @staticmethod
    def _post(conn: http.client.HTTPConnection, path: str, payload: dict) -> tuple[int, dict]:
        conn.request("POST", path, json.dumps(payload), {"Content-Type": "application/json"})
        response = conn.getresponse()
        return response.status, json.loads(response.read())  # the whole answer, or an error


@pytest.mark.timeout(180)
def test_every_answer_a_client_got_survives_a_sigkill(database_url: str, tmp_path: Path) -> None:
    env = cli_env(database_url)
    env.update(
        VERIFYD_SANDBOX="1",
        VERIFYD_SANDBOX_FIXED_CODE="1234",
        VERIFYD_SANDBOX_PATTERNS=r"^\+99\d{10}$",
    )
    with serving(env, tmp_path) as server:
        flows = Flows(int(server.base_url.rsplit(":", 1)[1]))
        threads = [threading.Thread(target=flows.worker, args=(i,)) for i in range(WORKERS)]
        for t in threads:
            t.start()
        reached = flows.enough.wait(timeout=120)
        # No goodbye: the process and its writer thread die mid-batch.
        os.killpg(server.proc.pid, signal.SIGKILL)
        server.proc.wait(timeout=10)
        flows.stop.set()
        for t in threads:
            t.join(timeout=30)
    assert reached, f"only {len(flows.approved)} approvals: {flows.refused[:3]}"
    assert flows.refused == []
    assert flows.broken > 0, "the kill cut no request off: nothing was in flight"

    engine = create_engine(database_url)  # a fresh process's view: SQLite replays its WAL
    try:
        with engine.connect() as conn:
            accounts = dict(conn.execute(text("SELECT id, status FROM accounts")).all())
            verifications = dict(conn.execute(text("SELECT id, status FROM verifications")).all())
    finally:
        engine.dispose()
    lost = [a for a in flows.created if a not in accounts]
    assert lost == [], f"{len(lost)} of {len(flows.created)} answered signups are gone"
    assert {verifications[v] for v in flows.approved} == {"approved"}
    approved_accounts = [a for a, v in flows.created.items() if v in flows.approved]
    assert {accounts[a] for a in approved_accounts} == {"active"}
