"""The OTP flow's statements on SQLite's driver directly, compiled and typed by SQLAlchemy.

Executing a Core statement through a ``Connection`` costs about 15 µs of Python on
this project's build machine before SQLite sees it (cache key, execution context,
parameter processing, events), where the ``sqlite3`` cursor itself takes 3 µs; the
OTP flow runs 13 statements. A :class:`Prepared` statement is compiled once by
SQLAlchemy for the connection's dialect and keeps what execution needs: the SQL text,
where each parameter goes, the literal values, and the type processors SQLAlchemy
itself would apply (datetimes, booleans, JSON) on the way in and out. On SQLite it
runs on the connection's own ``sqlite3`` cursor, inside the same transaction; on any
other database it is an ordinary ``conn.execute``.

Rows come back as named tuples: attribute access, as on SQLAlchemy's rows.
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Column, Connection
from sqlalchemy.sql import Executable
from sqlalchemy.sql.compiler import SQLCompiler

Processor = Callable[[Any], Any] | None


@dataclass(frozen=True)
class _Plan:
    sql: str
    #: Per positional parameter: (the caller's key or None, literal value, processor).
    slots: tuple[tuple[str | None, Any, Processor], ...]
    row: Any  # the named tuple type, or None for a statement without rows
    results: tuple[Processor, ...]


class Prepared:
    """A hot statement, compiled once per dialect and parameter names.

    Args:
        statement: The Core statement (``insert``, ``update … returning``, ``select``).
        returns: The columns its rows hold, in order (``RETURNING`` or selected);
            none for a statement that returns nothing.
    """

    def __init__(self, statement: Executable, returns: Iterable[Column[Any]] = ()) -> None:
        self.statement = statement
        self._returns = tuple(returns)
        self._plans: dict[tuple[str, frozenset[str]], _Plan] = {}

    def execute(self, conn: Connection, params: Mapping[str, Any]) -> list[Any]:
        """Run it; returns every row (none for a statement without ``returns``)."""
        if conn.dialect.name != "sqlite":
            result = conn.execute(self.statement, dict(params))
            return list(result) if result.returns_rows else []
        plan = self._plan(conn, params)
        args = [
            (proc(params[key]) if proc else params[key])
            if key is not None
            else (proc(literal) if proc else literal)
            for key, literal, proc in plan.slots
        ]
        driver = conn.connection.driver_connection
        cursor = driver.execute(plan.sql, args)  # type: ignore[union-attr]
        if plan.row is None:
            return []
        rows = cursor.fetchall()
        return [
            plan.row._make(p(v) if p else v for p, v in zip(plan.results, raw, strict=True))
            for raw in rows
        ]

    def first(self, conn: Connection, params: Mapping[str, Any]) -> Any | None:
        """The first row, or ``None``."""
        rows = self.execute(conn, params)
        return rows[0] if rows else None

    def one(self, conn: Connection, params: Mapping[str, Any]) -> Any:
        """The one row.

        Raises:
            LookupError: no row or several.
        """
        rows = self.execute(conn, params)
        if len(rows) != 1:
            raise LookupError(f"expected one row, got {len(rows)}")
        return rows[0]

    def _plan(self, conn: Connection, params: Mapping[str, Any]) -> _Plan:
        key = (conn.dialect.name, frozenset(params))
        plan = self._plans.get(key)
        if plan is None:
            plan = self._plans[key] = self._compile(conn, params)
        return plan

    def _compile(self, conn: Connection, params: Mapping[str, Any]) -> _Plan:
        dialect = conn.dialect
        statement: Any = self.statement  # every Executable here is a ClauseElement
        compiled = statement.compile(dialect=dialect, column_keys=list(params))
        assert isinstance(compiled, SQLCompiler)
        if compiled.positiontup is None:  # pragma: no cover - SQLite's driver is qmark
            raise TypeError(f"{dialect.name} does not use positional parameters")
        # Columns whose Python-side default SQLAlchemy would compute at execution.
        defaults = {c.key for c in (*compiled.insert_prefetch, *compiled.update_prefetch)}
        slots: list[tuple[str | None, Any, Processor]] = []
        for name in compiled.positiontup:
            bind = compiled.binds[name]
            impl = bind.type.dialect_impl(dialect)
            proc = impl.bind_processor(dialect)
            if name in params:
                slots.append((name, None, proc))
            elif bind.required or bind.callable is not None or name in defaults:
                # A column default SQLAlchemy would compute, or a parameter not given:
                # refused here rather than silently stored as NULL.
                raise ValueError(f"{self.statement!s:.60}: no value for {name!r}")
            else:
                slots.append((None, bind.effective_value, proc))
        names = [c.key for c in self._returns]
        row = namedtuple("Row", names) if names else None  # noqa: PYI024
        results = tuple(
            c.type.dialect_impl(dialect).result_processor(dialect, None) for c in self._returns
        )
        return _Plan(compiled.string, tuple(slots), row, results)
