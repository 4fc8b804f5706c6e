"""Prepared statements store and return exactly what SQLAlchemy's own execution does."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import bindparam, insert, select, update

from verifyd import statements as sql
from verifyd.db import Database
from verifyd.prepared import Prepared

NOW = datetime(2026, 12, 2, 5, 30, 12, 345678, tzinfo=UTC)


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = Database(database_url)
    yield database
    database.dispose()


def account(account_id: str, **extra: object) -> dict[str, object]:
    values: dict[str, object] = dict(
        id=account_id,
        status="pending",
        phone="+447911123456",
        email=None,
        needs="phone",
        needs_all=True,
        policy_version=1,
        arm="phone",
        subject_hash=None,
        locale="en",
        redirect_url=None,
        flags=["voip", "identity_taken"],
        shadow=False,
        ip="127.0.0.1",
        created_at=NOW,
    )
    values.update(extra)
    return values


def verification(vid: str, account_id: str) -> dict[str, object]:
    return dict(
        id=vid,
        account_id=account_id,
        channel="sms",
        identity="phone",
        destination="+447911123456",
        sandbox=True,
        shadow=False,
        status="pending",
        secret_hash="h" * 64,
        generation=0,
        attempts=0,
        max_checks=5,
        code_length=4,
        resends=0,
        delivery="sent",
        expires_at=NOW + timedelta(minutes=10),
        resend_available_at=NOW + timedelta(seconds=30),
        created_at=NOW,
    )


def test_a_prepared_insert_stores_what_sqlalchemy_stores(db: Database) -> None:
    with db.write() as conn:
        sql.INSERT_ACCOUNT.execute(conn, account("acc_prepared"))
        conn.execute(sql.INSERT_ACCOUNT.statement, account("acc_core"))
        a = sql.accounts.c
        rows = {r.id: r for r in conn.execute(select(sql.accounts).where(a.id.like("acc_%")))}
    mine, theirs = rows["acc_prepared"]._asdict(), rows["acc_core"]._asdict()
    assert mine.pop("id") == "acc_prepared" and theirs.pop("id") == "acc_core"
    assert mine == theirs
    assert mine["flags"] == ["voip", "identity_taken"]  # JSON, both ways
    assert mine["created_at"] == NOW and mine["created_at"].tzinfo is not None
    assert mine["needs_all"] is True and mine["shadow"] is False


def test_prepared_rows_read_like_sqlalchemy_rows(db: Database) -> None:
    with db.write() as conn:
        sql.INSERT_ACCOUNT.execute(conn, account("acc_1"))
        sql.INSERT_VERIFICATION.execute(conn, verification("ver_1", "acc_1"))
        row = sql.ATTEMPT.first(conn, {"vid": "ver_1", "now": NOW})
        assert row is not None
        core = conn.execute(select(*sql.ATTEMPTED).where(sql.verifications.c.id == "ver_1")).one()
        assert tuple(row) == tuple(core)  # the same values, the same types, in order
        assert row.attempts == 1 and row.sandbox is True
        shown = sql.APPROVE.one(conn, {"vid": "ver_1", "now": NOW})
        assert shown.status == "approved"
        assert shown.expires_at == NOW + timedelta(minutes=10)
        # The literal in APPROVE's WHERE (status = 'pending') is bound too: a second
        # approval finds nothing.
        assert sql.APPROVE.first(conn, {"vid": "ver_1", "now": NOW}) is None
        approving = sql.VERIFIED_AT["phone"].one(conn, {"aid": "acc_1", "now": NOW})
        assert approving.phone_verified_at == NOW and approving.email_verified_at is None


def test_a_prepared_statement_is_part_of_the_transaction(db: Database) -> None:
    with pytest.raises(RuntimeError), db.write() as conn:
        sql.INSERT_ACCOUNT.execute(conn, account("acc_gone"))
        raise RuntimeError("roll back")
    with db.read() as conn:
        found = conn.execute(select(sql.accounts.c.id).where(sql.accounts.c.id == "acc_gone"))
        assert found.first() is None


def test_a_missing_value_is_refused_not_stored_as_null(
    sqlite_template: Path, tmp_path: Path
) -> None:
    # SQLite only: on PostgreSQL a Prepared statement is SQLAlchemy's own execution.
    # accounts.status has a Python-side default SQLAlchemy would fill in at execution;
    # the driver path cannot, and says so instead of writing NULL.
    without_status = account("acc_x")
    del without_status["status"]
    v = sql.verifications.c
    needs_vid = Prepared(
        update(sql.verifications).where(v.id == bindparam("vid")).values(attempts=0)
    )
    shutil.copyfile(sqlite_template, tmp_path / "verifyd.db")
    db = Database(f"sqlite:///{tmp_path / 'verifyd.db'}")
    try:
        with db.write() as conn:
            with pytest.raises(ValueError, match="'status'"):
                Prepared(insert(sql.accounts)).execute(conn, without_status)
            with pytest.raises(ValueError, match="'vid'"):
                needs_vid.execute(conn, {})
    finally:
        db.dispose()


def test_one_wants_exactly_one_row(db: Database) -> None:
    with db.write() as conn, pytest.raises(LookupError, match="got 0"):
        sql.STATUS_OF.one(conn, {"vid": "ver_none"})
