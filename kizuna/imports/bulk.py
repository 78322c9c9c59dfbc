"""Bulk INSERT straight to the driver's executemany, for the hundreds of thousands of rows an import writes.

SQLAlchemy's own executemany builds a parameter dictionary per row, which costs more than SQLite's insert
itself; here the statement is compiled once and each value goes through its column type's bind processor
(time zones, JSON) exactly as SQLAlchemy would do, so stored values are the same.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Table, bindparam, insert
from sqlalchemy.orm import Session


def insert_rows(session: Session, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """INSERT ``rows`` (dicts with the same keys) into ``table`` in the session's transaction."""
    if not rows:
        return
    connection = session.connection()
    dialect = connection.dialect
    names = list(rows[0])
    statement = insert(table).values({name: bindparam(name) for name in names})
    compiled = statement.compile(dialect=dialect, for_executemany=True)
    order = list(compiled.positiontup or []) if compiled.positional else list(compiled.bind_names.values())
    # Columns with a Python-side default join the statement; their default is computed once per call.
    defaults = {}
    for name in order:
        if name not in rows[0]:
            default = table.c[name].default
            defaults[name] = default.arg(None) if default.is_callable else default.arg  # type: ignore[union-attr]
    processors = [table.c[name].type.dialect_impl(dialect).bind_processor(dialect) for name in order]
    typed = [(i, process) for i, process in enumerate(processors) if process is not None]
    params: list[Any] = []
    # The same object in consecutive rows (the batch's timestamp, an empty dict) is processed once.
    last: dict[int, tuple[Any, Any]] = {}
    for row in rows:
        values = [row[name] if name not in defaults else defaults[name] for name in order]
        for i, process in typed:
            value = values[i]
            if value is None:
                continue
            seen = last.get(i)
            if seen is not None and seen[0] is value:
                values[i] = seen[1]
            else:
                values[i] = process(value)
                last[i] = (value, values[i])
        params.append(tuple(values) if compiled.positional else dict(zip(order, values, strict=True)))
    connection.exec_driver_sql(compiled.string, params)
