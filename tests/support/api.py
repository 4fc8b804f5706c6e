"""Small steps of the flows, shared by the API tests."""

from __future__ import annotations

import itertools
from typing import Any

import httpx
from fastapi.testclient import TestClient

from verifyd.policystore import from_request
from verifyd.runtime import Runtime
from verifyd.slidinglimit import Bounds


def runtime(client: TestClient) -> Runtime:
    """The runtime behind a test client's app."""
    rt: Runtime = client.app.state.runtime  # type: ignore[attr-defined]
    return rt


def set_policy(client: TestClient, mode: str, **body: Any) -> dict[str, Any]:
    """Switch the policy the way the CLI does (actor ``test``); returns the document."""
    rt = runtime(client)
    policy, _ = rt.policies.change(from_request(rt.settings, {"mode": mode, **body}), "cli:test")
    return policy.document(Bounds.of(rt.settings))


def admin_headers(client: TestClient, name: str = "ops") -> dict[str, str]:
    """A fresh admin key as an ``Authorization`` header."""
    key, _ = runtime(client).admin_keys.create(name, "cli:test")
    return {"Authorization": f"Bearer {key}"}


def sandbox_messages(client: TestClient, to: str) -> list[dict[str, Any]]:
    """What the sandbox delivered to ``to``, newest first."""
    r = client.get("/v1/sandbox/messages", params={"to": to})
    assert r.status_code == 200, r.text
    messages: list[dict[str, Any]] = r.json()["messages"]
    return messages


def latest_code(client: TestClient, to: str) -> str:
    """The newest code the sandbox delivered to a phone."""
    code: str = sandbox_messages(client, to)[0]["code"]
    return code


def latest_token(client: TestClient, to: str) -> str:
    """The token of the newest link the sandbox delivered to an email address."""
    link: str = sandbox_messages(client, to)[0]["link"]
    return link.split("token=", 1)[1]


def wrong(code: str) -> str:
    """Another code of the same length."""
    return str((int(code) + 1) % 10 ** len(code)).zfill(len(code))


def assert_problem(r: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """The answer is a problem+json of this status and code; returns its body."""
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = r.json()
    assert body["code"] == code
    return body


def signup(client: TestClient, **body: Any) -> dict[str, Any]:
    """``POST /v1/accounts``, asserting 201."""
    r = client.post("/v1/accounts", json=body)
    assert r.status_code == 201, r.text
    result: dict[str, Any] = r.json()
    return result


_stats_keys = itertools.count()


def stats(client: TestClient, **params: Any) -> dict[str, Any]:
    """``GET /v1/admin/stats`` with a fresh admin key, asserting 200."""
    headers = admin_headers(client, f"stats-{next(_stats_keys)}")
    r = client.get("/v1/admin/stats", params=params, headers=headers)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def stats_arm(answer: dict[str, Any], version: int, arm: str) -> dict[str, Any]:
    """One arm's figures in a stats answer."""
    for v in answer["versions"]:
        if v["policy_version"] == version:
            for a in v["arms"]:
                if a["arm"] == arm:
                    found: dict[str, Any] = a
                    return found
    raise AssertionError(f"no arm {arm} in version {version}: {answer}")
