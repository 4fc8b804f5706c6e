"""The committed ``openapi.yaml`` is the app's document, and it holds every documented v1 path."""

from __future__ import annotations

import difflib
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import yaml

from verifyd import openapi

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
