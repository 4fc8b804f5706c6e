"""Migrations: the schema equals the models; ``verifyd migrate`` is idempotent and safe to
run concurrently; readiness and production start-up follow the migration state."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from fastapi.testclient import TestClient
from sqlalchemy import Engine, create_engine, text

import verifyd.models  # noqa: F401 - registers every table on the metadata
from support.postgres import PostgresServer
from verifyd import migrate
from verifyd.db import Database, metadata
from verifyd.settings import Settings

VERIFYD = str(Path(sys.executable).with_name("verifyd"))
SECRET = "d2edc650ecfaad0632a8a46328c3dbc8102c27a7a714a16e70c896ac5cbaf0af"  # rand -hex 32


@pytest.fixture
def empty_database_url(
    database_url: str, request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[str]:
    """A never-migrated database of the same backend as this test's ``database_url``."""
    if database_url.startswith("sqlite"):
        yield f"sqlite:///{tmp_path}/empty.db"
        return
    server: PostgresServer = request.getfixturevalue("pg_server")
    name = f"e_{uuid.uuid4().hex[:12]}"
    url = server.create_database(name)
    yield url
    server.drop_database(name)


@pytest.fixture
def engine_for() -> Iterator[Callable[[str], Engine]]:
    """Plain engines on a URL, disposed at teardown."""
    engines: list[Engine] = []

    def make(url: str) -> Engine:
        engines.append(create_engine(url))
        return engines[-1]

    yield make
    for engine in engines:
        engine.dispose()


def _schema_diff(engine: Engine) -> list[object]:
    with engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"compare_type": True, "compare_server_default": True}
        )
        diff: list[object] = compare_metadata(context, metadata)
    return diff


def _cli(*args: str, url: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("VERIFYD_")}
    return subprocess.Popen(
        [VERIFYD, *args],
        env={**clean, "VERIFYD_DATABASE_URL": url, **(env or {})},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(proc: subprocess.Popen[str], timeout: float = 60) -> tuple[int, str]:
    _, err = proc.communicate(timeout=timeout)
    return proc.returncode, err


def test_migrated_schema_equals_the_models(
    database_url: str, engine_for: Callable[[str], Engine]
) -> None:
    """No pending autogenerate diff: a model change without a migration fails here."""
    engine = engine_for(database_url)
    assert _schema_diff(engine) == []
    assert migrate.is_current(engine)
    assert migrate.current(engine) == migrate.head() is not None


def test_an_empty_database_is_behind(
    empty_database_url: str, engine_for: Callable[[str], Engine]
) -> None:
    engine = engine_for(empty_database_url)
    assert migrate.current(engine) is None
    assert not migrate.is_current(engine)
    assert _schema_diff(engine) != []  # the comparison above can fail


def _hold_migration_lock(url: str, pids: list[int]) -> Callable[[], None]:
    """Take the lock ``verifyd migrate`` takes, return once ``pids`` all wait on it.

    Returns a function releasing it, so every waiting run starts at the same moment.
    """
    if url.startswith("sqlite"):
        path = url.removeprefix("sqlite:///")
        conn = sqlite3.connect(path, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("BEGIN IMMEDIATE")  # the writer lock each migrate run begins with

        def opened(pid: int) -> bool:
            fds = Path(f"/proc/{pid}/fd")
            try:
                return any(os.path.realpath(fd) == os.path.realpath(path) for fd in fds.iterdir())
            except OSError:
                return False

        try:
            _wait(lambda: all(opened(pid) for pid in pids))
            time.sleep(0.3)  # from opening the file to BEGIN IMMEDIATE: a few statements
        except BaseException:
            conn.close()
            raise
        return lambda: (conn.rollback(), conn.close())[-1]

    dsn = url.replace("postgresql+psycopg://", "postgresql://")
    pg = psycopg.connect(dsn, autocommit=True)
    pg.execute("SELECT pg_advisory_lock(%s)", (migrate.LOCK_ID,))

    def waiting() -> int:
        row = pg.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
        ).fetchone()
        return int(row[0]) if row else 0

    try:
        _wait(lambda: waiting() == len(pids))
    except BaseException:
        pg.close()
        raise
    return lambda: (pg.execute("SELECT pg_advisory_unlock_all()"), pg.close())[-1]


def _wait(ready: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        assert time.monotonic() < deadline, "the migrate runs never reached the lock"
        time.sleep(0.05)


def test_migrate_concurrently_then_again(
    empty_database_url: str, engine_for: Callable[[str], Engine]
) -> None:
    """Two replicas' init jobs racing on an empty database both succeed; a rerun is a no-op."""
    racers = [_cli("migrate", url=empty_database_url) for _ in range(2)]
    try:
        release = _hold_migration_lock(empty_database_url, [p.pid for p in racers])
        release()
        results = [_finish(p) for p in racers]
    finally:
        for p in racers:
            if p.poll() is None:
                p.kill()
            p.communicate()  # reaps it and closes its pipes
    for code, err in results:
        assert code == 0, err
        assert f"database at revision {migrate.head()}" in err

    code, err = _finish(_cli("migrate", url=empty_database_url))
    assert code == 0, err
    engine = engine_for(empty_database_url)
    assert migrate.is_current(engine)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM alembic_version")).scalar_one() == 1
    assert _schema_diff(engine) == []


def test_readyz_is_503_behind_then_200_when_current(
    empty_database_url: str,
    make_settings: Callable[..., Settings],
    make_client: Callable[[Settings], TestClient],
) -> None:
    client = make_client(make_settings(database_url=empty_database_url))
    r = client.get("/readyz")
    assert r.status_code == 503, r.text
    assert r.json()["checks"] == {"database": "ok", "migrations": "behind"}
    assert client.get("/healthz").status_code == 200  # alive, just not ready

    db = Database(empty_database_url)
    try:
        migrate.upgrade(db)
    finally:
        db.dispose()
    r = client.get("/readyz")
    assert r.status_code == 200, r.text
    assert r.json()["checks"] == {"database": "ok", "migrations": "ok"}


def test_serve_in_production_refuses_while_behind(
    empty_database_url: str, engine_for: Callable[[str], Engine]
) -> None:
    """Production never migrates on its own; ``verifyd migrate`` is the init job."""
    env = {
        "VERIFYD_ENV": "production",
        "VERIFYD_SECRET_KEY": SECRET,
        "VERIFYD_PUBLIC_BASE_URL": "https://verify.example",
        # Any non-development provider names: the migration check comes before plugins load.
        "VERIFYD_SMS_PROVIDER": "twilio",
        "VERIFYD_EMAIL_PROVIDER": "smtp",
        "VERIFYD_PORT": "1",  # were it to get past the check, it could not listen anyway
    }
    code, err = _finish(_cli("serve", url=empty_database_url, env=env))
    assert code == 2, err
    assert "behind its migrations" in err and "verifyd migrate" in err
    assert "Traceback" not in err
    assert migrate.current(engine_for(empty_database_url)) is None  # it did not migrate


def test_upgrading_to_the_rollup_counts_the_signups_made_before_it(
    empty_database_url: str,
) -> None:
    from alembic import command

    from verifyd import rollup

    db = Database(empty_database_url)
    try:
        config = migrate.alembic_config(empty_database_url)
        with db.writer.begin() as conn:
            config.attributes["connection"] = conn
            command.upgrade(config, "0002")
        with db.writer.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO accounts (id, status, phone, needs, needs_all, policy_version,"
                    " arm, flags, shadow, created_at, activated_at, phone_verified_at)"
                    " VALUES ('acc_old', 'active', '+447911123456', 'phone', true, 1, 'phone',"
                    " '[\"voip\"]', false, '2026-11-30 10:00:00', '2026-11-30 10:01:00',"
                    " '2026-11-30 10:01:00')"
                )
            )
            conn.execute(
                text(
                    "INSERT INTO verifications (id, account_id, channel, identity, destination,"
                    " sandbox, shadow, status, secret_hash, generation, attempts, max_checks,"
                    " resends, delivery, expires_at, resend_available_at, created_at,"
                    " approved_at) VALUES ('ver_old', 'acc_old', 'sms', 'phone',"
                    " '+447911123456', false, false, 'approved', 'h', 0, 2, 5, 0, 'sent',"
                    " '2026-11-30 10:10:00', '2026-11-30 10:00:30', '2026-11-30 10:00:00',"
                    " '2026-11-30 10:01:00')"
                )
            )
            conn.execute(
                text(
                    "INSERT INTO messages (id, verification_id, generation, kind, provider,"
                    ' "to", status, attempts, next_attempt_at, created_at, sent_at)'
                    " VALUES ('msg_old', 'ver_old', 0, 'sms', 'twilio', '+447911123456',"
                    " 'delivered', 1, '2026-11-30 10:00:00', '2026-11-30 10:00:00',"
                    " '2026-11-30 10:00:01')"
                )
            )
        migrate.upgrade(db)
        with db.read() as conn:
            counters = rollup.read(conn)[1, "phone"]
            arm = conn.execute(text("SELECT arm FROM verifications")).scalar_one()
        assert arm == "phone"
        assert counters == {
            "signups": 1,
            "suspect": 1,
            "suspect.voip": 1,
            "activated": 1,
            "ttv.6": 1,
            "verifications.sms": 1,
            "approved.sms": 1,
            "checks.sms.approved": 1,
            "checks.sms.incorrect": 1,
            "checks_to_approve.sms": 2,
            "sent.sms.-.1": 1,
            "delivered.sms": 1,
        }
    finally:
        db.dispose()
