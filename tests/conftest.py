"""Fixtures: a migrated database per test (SQLite and PostgreSQL), settings, the app."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from support.outbox import Flaky, Start
from support.postgres import PostgresServer
from verifyd import migrate
from verifyd.app import create_app
from verifyd.db import Database
from verifyd.registry import Registry
from verifyd.settings import Settings

TEST_SECRET = "test-secret-key-that-is-long-enough-0123456789"

BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
]


@pytest.fixture(autouse=True)
def _hermetic_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No VERIFYD_* variable of the shell leaks into a test."""
    for name in list(os.environ):
        if name.startswith("VERIFYD_"):
            monkeypatch.delenv(name)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    """One throwaway PostgreSQL server for the session (fails, not skips, without it)."""
    if not PostgresServer.available():
        if os.environ.get("VERIFYD_TEST_SKIP_PG") == "1":
            pytest.skip("PostgreSQL binaries not installed and VERIFYD_TEST_SKIP_PG=1")
        pytest.fail(
            "PostgreSQL server binaries not found: apt-get install postgresql "
            "(or set VERIFYD_TEST_SKIP_PG=1 to skip the PostgreSQL half knowingly)"
        )
    server = PostgresServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def pg_template(pg_server: PostgresServer) -> str:
    """A database migrated once; each test clones it (milliseconds)."""
    url = pg_server.create_database("verifyd_template")
    db = Database(url)
    migrate.upgrade(db)
    db.dispose()
    return "verifyd_template"


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file migrated once; each test copies it."""
    path = tmp_path_factory.mktemp("template") / "verifyd.db"
    db = Database(f"sqlite:///{path}")
    migrate.upgrade(db)
    db.dispose()  # the last connection to close checkpoints the WAL into the file
    assert not path.with_name("verifyd.db-wal").exists()
    return path


def _database_url(request: pytest.FixtureRequest, backend: str, tmp_path: Path) -> Iterator[str]:
    if backend == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        path = tmp_path / "verifyd.db"
        shutil.copyfile(template, path)
        yield f"sqlite:///{path}"
        return
    server: PostgresServer = request.getfixturevalue("pg_server")
    template_name: str = request.getfixturevalue("pg_template")
    name = f"t_{uuid.uuid4().hex[:12]}"
    url = server.create_database(name, template=template_name)
    yield url
    server.drop_database(name)


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A freshly migrated database of each backend, one per test."""
    yield from _database_url(request, request.param, tmp_path)


@pytest.fixture
def make_settings(database_url: str) -> Callable[..., Settings]:
    """Build test settings on this test's database; keyword arguments override."""

    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "database_url": database_url,
            "secret_key": TEST_SECRET,
            "sandbox": True,
            "public_base_url": "http://testserver",
            "redirect_allowlist": ["https://app.example.com/welcome"],
            "dispatch_interval_seconds": 0.05,
            "policy_cache_seconds": 0,
        }
        values.update(overrides)
        return Settings(**values)

    return make


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    """Default test settings: sandbox on, policy cache off, fast outbox polling."""
    return make_settings()


@pytest.fixture
def make_client() -> Iterator[Callable[[Settings], TestClient]]:
    """Start apps (lifespan included) for given settings; all closed at teardown."""
    clients: list[TestClient] = []

    def make(settings: Settings) -> TestClient:
        client = TestClient(create_app(settings), raise_server_exceptions=False)
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def client(settings: Settings, make_client: Callable[[Settings], TestClient]) -> TestClient:
    """The app on the default test settings."""
    return make_client(settings)


@pytest.fixture
def flaky() -> type[Flaky]:
    """A fresh ``Flaky`` provider class per test (its switches and inbox are class state)."""
    return type("Flaky", (Flaky,), {"sent": [], "down": True, "fatal": False})


@pytest.fixture
def backup() -> type[Flaky]:
    """A second, healthy provider ``backup``, for failover."""
    return type("Backup", (Flaky,), {"name": "backup", "sent": [], "down": False, "fatal": False})


@pytest.fixture
def start(
    make_settings: Callable[..., Settings], flaky: type[Flaky], backup: type[Flaky]
) -> Iterator[Start]:
    """Start apps whose SMS and email go through ``flaky`` (settings overridable)."""
    installed = Registry.from_entry_points()
    providers = {**installed.providers, "flaky": flaky, "backup": backup}
    registry = Registry(channels=installed.channels, providers=providers)
    clients: list[TestClient] = []

    def start_app(peer: str = "testclient", **overrides: Any) -> TestClient:
        values = {"sms_provider": "flaky", "email_provider": "flaky", **overrides}
        client = TestClient(
            create_app(make_settings(**values), registry=registry),
            raise_server_exceptions=False,
            client=(peer, 50000),  # the address requests come from
        )
        client.__enter__()
        clients.append(client)
        return client

    yield start_app
    for client in clients:
        client.__exit__(None, None, None)
