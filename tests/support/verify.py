"""Steps of the Twilio-compatible surface over plain HTTP, shared by the /v2 tests."""

from __future__ import annotations

import base64
from typing import Any

import httpx
from fastapi.testclient import TestClient

from support.api import runtime
from verifyd.runtime import Runtime


def verify_key(client: TestClient | Runtime, name: str = "app") -> dict[str, str]:
    """A fresh verify-scoped key as an HTTP Basic ``Authorization`` header."""
    rt = client if isinstance(client, Runtime) else runtime(client)
    credential, _ = rt.admin_keys.create(name, "cli:test", "verify")
    return basic(*credential.split(":", 1))


def basic(user: str, password: str) -> dict[str, str]:
    """An ``Authorization: Basic`` header."""
    encoded = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {encoded}"}


def create_service(client: httpx.Client, auth: dict[str, str], **form: Any) -> dict[str, Any]:
    """``POST /v2/Services``, asserting 201."""
    r = client.post("/v2/Services", data={"FriendlyName": "Acme", **form}, headers=auth)
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body


def start(
    client: httpx.Client,
    auth: dict[str, str],
    service: str,
    to: str,
    channel: str = "sms",
    **form: Any,
) -> Any:
    """``POST …/Verifications`` (the response, whatever its status)."""
    return client.post(
        f"/v2/Services/{service}/Verifications",
        data={"To": to, "Channel": channel, **form},
        headers=auth,
    )


def check(client: httpx.Client, auth: dict[str, str], service: str, **form: Any) -> Any:
    """``POST …/VerificationCheck`` (the response, whatever its status)."""
    return client.post(f"/v2/Services/{service}/VerificationCheck", data=form, headers=auth)


def twilio_error(response: Any, status: int, code: int) -> dict[str, Any]:
    """Assert Twilio's error body (and no problem+json member) with this status and code."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = response.json()
    assert set(body) == {"code", "message", "more_info", "status"}, body
    assert (body["status"], body["code"]) == (status, code), body
    assert body["more_info"] == f"https://www.twilio.com/docs/errors/{code}"
    return body
