"""Rolling upgrades: migrations only expand, and a release serves the next one's schema.

The README's upgrade procedure is "migrate first, then roll": for the length of the
roll, replicas of the previous release run on the new schema. That holds when every
migration is expand-only (new tables, nullable or defaulted columns, new indexes;
nothing dropped, renamed or narrowed) and when the previous release accepts a database
whose revision it does not know. Both are checked here.
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from support.api import latest_code, signup
from verifyd import health, migrate
from verifyd.cli import serve
from verifyd.db import Database
from verifyd.settings import Settings

VERSIONS = Path(__file__).resolve().parents[1] / "migrations" / "versions"

#: Revisions allowed to contract the schema (drop or rename what an older release used),
#: each with why that is safe: the release before it must no longer read or write what
#: it removes. None so far; a contraction ships one release after the code stopped using
#: the column or table.
CONTRACTIONS: dict[str, str] = {}

#: Alembic operations that break the previous release's queries when run before it stops.
BREAKING_OPS = {
    "drop_column",
    "drop_table",
    "drop_constraint",
    "rename_table",
    "alter_column",  # renames, type changes and NOT NULL all go through it
    "create_unique_constraint",  # old code may insert what the constraint refuses
}
#: SQL words in ``op.execute`` that contract the schema.
BREAKING_SQL = ("DROP ", "RENAME ", "ALTER COLUMN", "SET NOT NULL")


def contractions(source: str) -> list[str]:
    """What ``upgrade()`` in a migration's source does that the previous release cannot run on."""
    tree = ast.parse(source)
    upgrade = next(
        (n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "upgrade"), None
    )
    if upgrade is None:
        return ["no upgrade() function"]
    found = []
    for node in ast.walk(upgrade):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        name = node.func.attr
        if name in BREAKING_OPS:
            found.append(f"line {node.lineno}: {name}")
        elif name == "add_column":
            column = next((a for a in node.args if isinstance(a, ast.Call)), None)
            keywords = {k.arg: k.value for k in column.keywords} if column else {}
            nullable = keywords.get("nullable")
            required = isinstance(nullable, ast.Constant) and nullable.value is False
            if required and "server_default" not in keywords:
                found.append(
                    f"line {node.lineno}: add_column NOT NULL without a server_default "
                    "(the previous release's inserts would fail)"
                )
        elif name == "execute":
            for arg in ast.walk(node):
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                    sql = arg.value.upper()
                    found += [
                        f"line {node.lineno}: SQL {w.strip()}" for w in BREAKING_SQL if w in sql
                    ]
    return found


def _revision(path: Path) -> str:
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.AnnAssign | ast.Assign):
            targets = [node.target] if isinstance(node, ast.AnnAssign) else node.targets
            if any(isinstance(t, ast.Name) and t.id == "revision" for t in targets):
                assert isinstance(node.value, ast.Constant)
                return str(node.value.value)
    raise AssertionError(f"{path.name} names no revision")


@pytest.mark.parametrize("path", sorted(VERSIONS.glob("*.py")), ids=lambda p: p.stem)
def test_every_migration_only_expands(path: Path) -> None:
    revision = _revision(path)
    if revision in CONTRACTIONS:
        pytest.skip(f"a contraction, allowed: {CONTRACTIONS[revision]}")
    assert contractions(path.read_text()) == []


def test_all_migrations_are_seen() -> None:
    revisions = {_revision(p) for p in VERSIONS.glob("*.py")}
    assert revisions == set(migrate.known()) and migrate.head() in revisions
    assert set(CONTRACTIONS) <= revisions


@pytest.mark.parametrize(
    ("body", "caught"),
    [
        ('op.drop_column("accounts", "label")', "drop_column"),
        ('op.drop_table("exposures")', "drop_table"),
        ('op.alter_column("accounts", "label", new_column_name="tag")', "alter_column"),
        ('op.rename_table("accounts", "users")', "rename_table"),
        (
            'with op.batch_alter_table("accounts") as b:\n'
            '        b.add_column(sa.Column("tier", sa.String(8), nullable=False))',
            "NOT NULL",
        ),
        ('op.execute("ALTER TABLE accounts DROP COLUMN label")', "SQL DROP"),
        ('op.execute("ALTER TABLE accounts ALTER COLUMN label SET NOT NULL")', "SET NOT NULL"),
    ],
)
def test_the_check_catches_each_contraction(body: str, caught: str) -> None:
    source = f"def upgrade() -> None:\n    {body}\n\n\ndef downgrade() -> None:\n    pass\n"
    assert any(caught in problem for problem in contractions(source)), contractions(source)
    # ...and the same statement in downgrade() is fine: downgrades contract by nature.
    swapped = source.replace("def upgrade", "def _x").replace("def downgrade", "def upgrade")
    assert contractions(swapped.replace("def _x", "def downgrade")) == []


def test_defaulted_and_nullable_columns_pass() -> None:
    source = (
        "def upgrade() -> None:\n"
        '    op.add_column("a", sa.Column("x", sa.Integer(), nullable=True))\n'
        '    op.add_column("a", sa.Column("y", sa.Integer(), nullable=False, server_default="0"))\n'
        '    op.add_column("a", sa.Column("z", sa.Integer()))\n'
        '    op.create_table("b", sa.Column("id", sa.Integer(), primary_key=True))\n'
        '    op.create_index("ix_a_x", "a", ["x"])\n'
    )
    assert contractions(source) == []


def _next_release(url: str) -> None:
    """Do what the next release's ``verifyd migrate`` would: expand, then stamp its revision."""
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("ALTER TABLE accounts ADD COLUMN next_release_note VARCHAR(32)"))
        conn.execute(
            text("ALTER TABLE verifications ADD COLUMN next_release_tries INTEGER DEFAULT 0")
        )
        conn.execute(text("CREATE TABLE next_release_things (id INTEGER PRIMARY KEY)"))
        conn.execute(text("UPDATE alembic_version SET version_num = '9999_next_release'"))
    engine.dispose()


def test_a_release_keeps_serving_after_the_next_one_migrated(
    database_url: str,
    make_settings: Callable[..., Settings],
    make_client: Callable[[Settings], TestClient],
) -> None:
    """The migration Job ran ahead of the roll: this release stays ready, restarts, and works."""
    client = make_client(make_settings())
    before = signup(client, phone="+1 202 555 0142")
    _next_release(database_url)

    r = client.get("/readyz")
    assert r.status_code == 200, r.text  # not taken out of the load balancer mid-roll
    assert r.json()["checks"] == {"database": "ok", "migrations": "ok"}
    # A replica of this release that restarts mid-roll starts again (serve and worker
    # ask the same question), rather than crash-looping on "the database is behind".
    db = Database(database_url)
    try:
        assert serve._migrations_problem(db) is None
        assert migrate.is_current(db.writer)
    finally:
        db.dispose()
    restarted = make_client(make_settings())
    assert restarted.get("/readyz").status_code == 200

    # ...and serves flows on the new schema: one begun before the migration, one after.
    [ver] = before["verifications"]
    r = restarted.post(
        f"/v1/verifications/{ver['id']}/check", json={"code": latest_code(client, "+12025550142")}
    )
    assert r.status_code == 200 and r.json()["account"]["status"] == "active", r.text
    [ver] = signup(restarted, phone="+1 202 555 0143")["verifications"]
    r = client.post(
        f"/v1/verifications/{ver['id']}/check", json={"code": latest_code(client, "+12025550143")}
    )
    assert r.status_code == 200 and r.json()["account"]["status"] == "active", r.text


def test_a_known_older_revision_is_still_behind(database_url: str) -> None:
    """Tolerating a newer schema does not make an older one acceptable."""
    older = sorted(migrate.known())[-2]
    engine = create_engine(database_url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = :v"), {"v": older})
    engine.dispose()
    db = Database(database_url)
    try:
        assert not migrate.is_current(db.writer)
        assert health.readiness(db)["migrations"] == "behind"
        assert serve._migrations_problem(db) == (
            "the database is behind its migrations; run `verifyd migrate` first"
        )
    finally:
        db.dispose()
