"""Alembic environment: verifyd's metadata, a passed-in connection or the configured URL."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from verifyd import models  # noqa: F401 - registers the tables
from verifyd.db import metadata

config = context.config


def run() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _migrate(connection)
        return
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        from verifyd.settings import Settings

        url = Settings().database_url
    engine = create_engine(url)
    with engine.begin() as conn:
        _migrate(conn)
    engine.dispose()


def _migrate(connection: object) -> None:
    context.configure(
        connection=connection,  # type: ignore[arg-type]
        target_metadata=metadata,
        render_as_batch=True,  # SQLite alters tables by copying them
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


run()
