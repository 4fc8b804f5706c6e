"""The committed ``openapi.yaml`` is the app's document, and it holds every documented v1 path.

Its ``/v2`` part is held to the Twilio-compatible surface itself: Twilio's error body and
HTTP Basic on every operation, forms listing exactly what the flows read, and resource
schemas compared field for field with what the live API answers.
"""

from __future__ import annotations

import difflib
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient

from support.api import sandbox_messages
from support.verify import check, create_service, start, twilio_error, verify_key
from verifyd import openapi
from verifyd.api import twilio
from verifyd.settings import Settings
from verifyd.verify import checks, services, starts
from verifyd.verify import schemas as vs

COMMITTED = Path(__file__).resolve().parents[1] / "openapi.yaml"

#: The v1 paths and methods docs/api.md documents (later admin paths join when they land).
DOCUMENTED_OPERATIONS = {
    "/v1/policy": {"get"},
    "/v1/accounts": {"post"},
    "/v1/accounts/{account_id}": {"get"},
    "/v1/verifications/{verification_id}": {"get"},
    "/v1/verifications/{verification_id}/check": {"post"},
    "/v1/verifications/{verification_id}/resend": {"post"},
    "/v1/email/verify": {"get", "head", "post"},
    "/v1/sandbox/messages": {"get"},
    "/v1/admin/policy": {"get", "put"},
    "/v1/admin/policy/history": {"get"},
    "/healthz": {"get"},
    "/readyz": {"get"},
}

HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


@pytest.fixture(scope="module")
def rendered() -> str:
    """The document exactly as ``make openapi`` writes it."""
    return openapi.render()


def test_committed_openapi_matches_the_app(rendered: str) -> None:
    """A route, body or docstring change without regenerating ``openapi.yaml`` fails here."""
    committed = COMMITTED.read_text(encoding="utf-8")
    if committed != rendered:
        diff = "".join(
            list(
                difflib.unified_diff(
                    committed.splitlines(True),
                    rendered.splitlines(True),
                    "openapi.yaml (committed)",
                    "openapi.yaml (from the app)",
                )
            )[:60]
        )
        pytest.fail(
            "openapi.yaml has drifted from the app: run `make openapi` and commit it\n" + diff
        )


def test_document_has_every_design_operation(rendered: str) -> None:
    doc = yaml.safe_load(rendered)
    documented = {path: set(item) & HTTP_METHODS for path, item in doc["paths"].items()}
    missing = {
        path: sorted(methods - documented.get(path, set()))
        for path, methods in DOCUMENTED_OPERATIONS.items()
        if methods - documented.get(path, set())
    }
    assert not missing, f"documented operations missing from the OpenAPI document: {missing}"


def test_document_ignores_the_callers_environment(
    rendered: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """``make openapi`` gives the same bytes whatever ``VERIFYD_*`` the shell has set."""
    monkeypatch.setenv("VERIFYD_SANDBOX", "0")
    monkeypatch.setenv("VERIFYD_ENV", "production")
    monkeypatch.setenv("VERIFYD_DATABASE_URL", f"sqlite:///{tmp_path}/never.db")
    assert openapi.render() == rendered
    assert list(tmp_path.iterdir()) == []  # building the document opened no database


def test_module_prints_the_document(rendered: str, tmp_path: Path) -> None:
    """``python -m verifyd.openapi`` (the Makefile's recipe) prints the same document."""
    proc = subprocess.run(
        [sys.executable, "-m", "verifyd.openapi"],
        capture_output=True,
        text=True,
        encoding="utf-8",
        cwd=tmp_path,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == rendered
    assert list(tmp_path.iterdir()) == []  # nothing written where it ran


def test_operation_ids_are_unique(rendered: str) -> None:
    """OpenAPI requires unique operationIds; client generators and schemathesis rely on it."""
    doc = yaml.safe_load(rendered)
    ids = Counter(
        op["operationId"]
        for item in doc["paths"].values()
        for method, op in item.items()
        if method in HTTP_METHODS
    )
    assert [i for i, n in ids.items() if n > 1] == []


# ---------------------------------------------------------------- the Twilio-compatible /v2


def _v2_operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, op)
        for path, item in doc["paths"].items()
        if path.startswith("/v2/")
        for method, op in item.items()
        if method in HTTP_METHODS
    ]


def test_v2_errors_are_twilio_bodies_and_basic_auth(rendered: str) -> None:
    doc = yaml.safe_load(rendered)
    operations = _v2_operations(doc)
    assert len(operations) == 9, [f"{m} {p}" for p, m, _ in operations]
    scheme = doc["components"]["securitySchemes"][twilio.BASIC]
    assert (scheme["type"], scheme["scheme"]) == ("http", "basic")
    error = doc["components"]["schemas"]["TwilioError"]
    assert set(error["properties"]) == {"code", "message", "more_info", "status"}
    assert {error["properties"][k]["type"] for k in ("code", "status")} == {"integer"}
    assert {error["properties"][k]["type"] for k in ("message", "more_info")} == {"string"}
    for path, method, op in operations:
        where = f"{method.upper()} {path}"
        assert op["security"] == [{twilio.BASIC: []}], where
        errors = {s: a for s, a in op["responses"].items() if int(s) >= 400}
        # Every /v2 call can be refused its credentials, or meet a database outage.
        assert {"401", "403", "503"} <= set(errors), where
        for status, answer in errors.items():
            assert answer["content"] == {
                "application/json": {"schema": {"$ref": "#/components/schemas/TwilioError"}}
            }, f"{where} {status}"
    # Outside /v2 nothing changed: every error is still problem+json.
    v1 = doc["paths"]["/v1/accounts"]["post"]["responses"]
    assert all("application/problem+json" in a["content"] for s, a in v1.items() if int(s) >= 400)


def test_v2_forms_are_the_flows_parameters_each_typed_and_described(rendered: str) -> None:
    """The documented forms list exactly what the flows read (their ``PARAMS``)."""
    doc = yaml.safe_load(rendered)
    forms = {
        ("post", "/v2/Services"): (services.PARAMS, ["FriendlyName"]),
        ("post", "/v2/Services/{service_sid}"): (services.PARAMS, None),
        ("post", "/v2/Services/{service_sid}/Verifications"): (starts.PARAMS, ["To", "Channel"]),
        ("post", "/v2/Services/{service_sid}/Verifications/{sid}"): (("Status",), ["Status"]),
        ("post", "/v2/Services/{service_sid}/VerificationCheck"): (checks.PARAMS, ["Code"]),
    }
    for (method, path), (params, required) in forms.items():
        body = doc["paths"][path][method]["requestBody"]["content"]
        schema = body["application/x-www-form-urlencoded"]["schema"]
        assert list(schema["properties"]) == list(params), path
        assert schema.get("required") == required, path
        for name, prop in schema["properties"].items():
            assert prop.get("description") and prop.get("type"), f"{path} {name}: {prop}"
    channel = doc["paths"]["/v2/Services/{service_sid}/Verifications"]["post"]
    props = channel["requestBody"]["content"]["application/x-www-form-urlencoded"]["schema"]
    assert props["properties"]["Channel"]["enum"] == list(starts.TWILIO_CHANNELS)
    assert props["properties"]["RiskCheck"]["enum"] == ["enable"]
    listing = doc["paths"]["/v2/Services"]["get"]["parameters"]
    assert [(p["name"], p["schema"]["type"]) for p in listing] == [
        ("PageSize", "integer"),
        ("Page", "integer"),
        ("PageToken", "string"),
    ]


@dataclass
class V2:
    """A live app, a verify-scoped key's ``Authorization`` header, and a service."""

    client: TestClient
    auth: dict[str, str]
    service: dict[str, Any]


@pytest.fixture
def v2(make_settings: Callable[..., Settings], make_client: Callable[[Settings], TestClient]) -> V2:
    client = make_client(make_settings())
    auth = verify_key(client)
    return V2(client, auth, create_service(client, auth, CodeLength="4"))


def _properties(doc: dict[str, Any], name: str) -> set[str]:
    return set(doc["components"]["schemas"][name]["properties"])


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_v2_schemas_are_what_the_api_answers(rendered: str, v2: V2) -> None:
    """Field for field: the documented resources against live answers of the app."""
    doc = yaml.safe_load(rendered)
    client, auth, va = v2.client, v2.auth, v2.service["sid"]
    started = start(client, auth, va, "+12025550142")
    assert started.status_code == 201, started.text
    verification = started.json()
    # Twilio's verification resource has exactly 15 fields; the document says so too.
    assert len(verification) == 15
    assert _properties(doc, "Verification") == set(verification)
    code = sandbox_messages(client, "+12025550142")[0]["code"]
    wrong = check(client, auth, va, To="+12025550142", Code=str((int(code) + 1) % 10**4).zfill(4))
    right = check(client, auth, va, VerificationSid=verification["sid"], Code=code)
    assert (wrong.json()["status"], right.json()["status"]) == ("pending", "approved")
    assert len(right.json()) == 12
    assert _properties(doc, "VerificationCheck") == set(right.json())
    assert _properties(doc, "Service") == set(v2.service)
    page = client.get("/v2/Services", params={"PageSize": 1}, headers=auth)
    assert page.status_code == 200, page.text
    assert _properties(doc, "ServicePage") == set(page.json())
    assert _properties(doc, "PageMeta") == set(page.json()["meta"])
    refused = client.get("/v2/Services/VA" + "0" * 32, headers=auth)
    assert refused.status_code == 404
    assert _properties(doc, "TwilioError") == set(refused.json())
    # The models themselves accept the answers (types, patterns, dates, no extra field).
    vs.Verification.model_validate(verification)
    vs.VerificationCheck.model_validate(wrong.json())
    vs.VerificationCheck.model_validate(right.json())
    vs.Service.model_validate(v2.service)
    vs.ServicePage.model_validate(page.json())
    vs.TwilioError.model_validate(refused.json())


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_v2_integer_bounds_are_the_servers(rendered: str, v2: V2) -> None:
    """Each integer a service form documents is refused one past either bound (60200)."""
    doc = yaml.safe_load(rendered)
    form = doc["paths"]["/v2/Services"]["post"]["requestBody"]["content"]
    properties = form["application/x-www-form-urlencoded"]["schema"]["properties"]
    integers = {k: p for k, p in properties.items() if p["type"] == "integer"}
    assert {"CodeLength", "Totp.TimeStep", "Totp.CodeLength", "Totp.Skew"} <= set(integers)
    for name, prop in integers.items():
        for value, ok in (
            (prop["minimum"], True),
            (prop["maximum"], True),
            (prop["minimum"] - 1, False),
            (prop["maximum"] + 1, False),
        ):
            r = v2.client.post(
                "/v2/Services", data={"FriendlyName": "Bounds", name: str(value)}, headers=v2.auth
            )
            if ok:
                assert r.status_code == 201, (name, value, r.text)
            else:
                assert twilio_error(r, 400, 60200)["message"].startswith(
                    f"Invalid parameter: {name}"
                ), (name, value)
