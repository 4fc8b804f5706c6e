"""Two ``verifyd serve`` processes on one PostgreSQL: one dashboard session, one policy."""

from __future__ import annotations

import re
import time
from pathlib import Path

import httpx
import pytest

from test_cli import cli_env
from test_cli_serve import Server, serving
from verifyd.adminkeys import AdminKeys
from verifyd.db import Database

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.parametrize("database_url", ["postgresql"], indirect=True),
]

CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def _csrf(html: str) -> str:
    found = CSRF.search(html)
    assert found, html
    return found.group(1)


def _log_in(client: httpx.Client, key: str) -> None:
    form = client.get("/admin/login")
    r = client.post("/admin/login", data={"key": key, "csrf": _csrf(form.text)})
    assert r.status_code == 303 and r.headers["location"] == "/admin", r.text


def _client(server: Server) -> httpx.Client:
    return httpx.Client(base_url=server.base_url, timeout=10)


def test_a_change_through_one_process_is_in_force_in_the_other_within_5_s(
    database_url: str, tmp_path: Path
) -> None:
    db = Database(database_url)
    key, _ = AdminKeys(db).create("operator", "cli:test")
    db.dispose()
    env = cli_env(database_url)  # the policy cache keeps its default (1 s)
    with serving(env, tmp_path) as a, serving(env, tmp_path) as b, _client(a) as on_a:
        with _client(b) as on_b:
            before = on_b.get("/v1/policy").json()
            assert before["mode"] == "phone"

            _log_in(on_a, key)
            # The session lives in the database: B accepts A's cookie.
            on_b.cookies.set("verifyd_admin", on_a.cookies["verifyd_admin"], path="/admin")
            page = on_b.get("/admin")
            assert page.status_code == 200 and "key:operator" in page.text

            csrf = _csrf(on_a.get("/admin/policy").text)
            form = {"csrf": csrf, "mode": "email", "experiment": "", "prefer": "email"}
            assert on_a.post("/admin/policy", data=form).status_code == 200  # the preview
            done = on_a.post("/admin/policy", data={**form, "confirm": "yes"})
            assert done.status_code == 303, done.text
            changed = time.monotonic()
            while on_b.get("/v1/policy").json()["mode"] != "email":
                assert time.monotonic() - changed < 5, "B still serves the old policy after 5 s"
                time.sleep(0.05)
            took = time.monotonic() - changed
            signup = on_b.post("/v1/accounts", json={"email": "replica@example.test"})
            assert signup.status_code == 201, signup.text
            assert signup.json()["account"]["policy_version"] == before["policy_version"] + 1
            assert f'version <span id="current-version">{before["policy_version"] + 1}' in (
                on_b.get("/admin").text
            )

            # Logging out on B ends the session on A too.
            logout = on_b.post("/admin/logout", data={"csrf": _csrf(on_b.get("/admin").text)})
            assert logout.status_code == 303
            assert on_a.get("/admin").status_code == 303
    assert took < 5
    for server in (a, b):
        assert "Traceback" not in server.output()
