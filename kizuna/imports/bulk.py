"""Bulk INSERT straight to the driver's executemany, for the hundreds of thousands of rows an import writes.

SQLAlchemy's own executemany builds a parameter dictionary per row, which costs more than SQLite's insert
itself; here the statement is compiled once and each value goes through its column type's bind processor
(time zones, JSON) exactly as SQLAlchemy would do, so stored values are the same.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from operator import itemgetter
from typing import Any

from sqlalchemy import MetaData, Table, bindparam, insert, inspect, literal, select, text
from sqlalchemy.engine import Connection, Dialect, Engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session
from sqlalchemy.schema import CreateTable

log = logging.getLogger(__name__)
# How long a bulk load waits to drop indexes on PostgreSQL before it loads with them instead.
DROP_LOCK_TIMEOUT_MS = 1000

# Scratch tables of imports live outside the application's metadata: migrations never see them.
_SCRATCH = MetaData()


def insert_rows(session: Session, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """INSERT ``rows`` (dicts with the same keys) into ``table`` in the session's transaction."""
    if not rows:
        return
    given = list(rows[0])
    # Columns left out get their Python-side default, as SQLAlchemy would give them, computed once per call.
    defaults = {}
    for column in table.columns:
        default = column.default
        if column.name in rows[0] or default is None or not (default.is_scalar or default.is_callable):
            continue
        defaults[column.name] = default.arg(None) if default.is_callable else default.arg  # type: ignore[attr-defined]
    pick = itemgetter(*given) if len(given) > 1 else (lambda row: (row[given[0]],))
    extra = tuple(defaults.values())
    insert_tuples(session, table, [*given, *defaults], [(*pick(row), *extra) for row in rows])


def insert_tuples(session: Session, table: Table, names: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """INSERT ``rows`` (tuples of values for the columns ``names``, in that order) into ``table``.

    The cheapest way in for rows that already are tuples: no dictionary per row on a positional driver.
    """
    if not rows:
        return
    connection = session.connection()
    statement, params = tuple_insert(connection.dialect, table, names, rows)
    connection.exec_driver_sql(statement, params)


def tuple_insert(
    dialect: Dialect, table: Table, names: Sequence[str], rows: Sequence[Sequence[Any]]
) -> tuple[str, list[Any]]:
    """The driver-level INSERT statement and executemany parameters for ``rows`` in ``dialect``.

    Values go through their column type's bind processor as SQLAlchemy would, so what is stored is the same.
    """
    statement = insert(table).values({name: bindparam(name) for name in names})
    compiled = statement.compile(dialect=dialect, for_executemany=True)
    order = list(compiled.positiontup or []) if compiled.positional else list(compiled.bind_names.values())
    position = {name: i for i, name in enumerate(names)}
    reorder = [position[name] for name in order]
    bound = _bound(dialect, table, names, rows)
    if compiled.positional:
        in_order = reorder == list(range(len(names)))
        params: list[Any] = bound if in_order else [tuple(row[i] for i in reorder) for row in bound]
    else:
        params = [{name: row[i] for name, i in zip(order, reorder, strict=True)} for row in bound]
    return compiled.string, params


def copy_tuples(session: Session, table: Table, names: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """PostgreSQL: ``rows`` into ``table`` with COPY (psycopg's copy protocol), in the session's transaction.

    For the rows an import stages: one stream instead of a statement per row (executemany, even pipelined,
    has the server parse, plan and acknowledge every row). Values are bound as ``insert_tuples`` binds them.
    """
    if not rows:
        return
    connection = session.connection()
    dialect = connection.dialect
    quote = dialect.identifier_preparer.quote
    statement = f"COPY {quote(table.name)} ({', '.join(quote(n) for n in names)}) FROM STDIN"
    with connection.connection.dbapi_connection.cursor() as cursor:  # type: ignore[union-attr]
        copy_rows(cursor, statement, _bound(dialect, table, names, rows))


def copy_rows(cursor: Any, statement: str, rows: Sequence[Sequence[Any]]) -> None:
    """Stream bound ``rows`` through a psycopg cursor's COPY ``statement``."""
    with cursor.copy(statement) as copy:
        for row in rows:
            copy.write_row(row)


def _bound(dialect: Dialect, table: Table, names: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[Any]:
    """``rows`` with each value through its column type's bind processor (in ``names`` order).

    The same object in consecutive rows (a shared timestamp or empty dict) is processed once; rows with
    nothing to process are returned as they are.
    """
    processors = [table.c[name].type.dialect_impl(dialect).bind_processor(dialect) for name in names]
    typed = [(i, process) for i, process in enumerate(processors) if process]
    # A column without a value in any row needs no processing (often most typed ones: dates, JSON, flags).
    typed = [(i, process) for i, process in typed if any(row[i] is not None for row in rows)]
    if not typed:
        return [row if isinstance(row, tuple) else tuple(row) for row in rows]
    out: list[Any] = []
    last: dict[int, tuple[Any, Any]] = {}
    for row in rows:
        values = list(row)
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
        out.append(tuple(values))
    return out


def scratch_table(name: str, *items: Any, **options: Any) -> Table:
    """A temporary table for staging an import's batch (one per database connection, emptied per batch)."""
    return Table(name, _SCRATCH, *items, prefixes=["TEMPORARY"], **options)


def reset_scratch(session: Session, *tables: Table) -> None:
    """Create the scratch tables on this connection if needed and empty them, inside the batch's transaction."""
    connection = session.connection()
    for table in tables:
        connection.execute(CreateTable(table, if_not_exists=True))
    if connection.dialect.name == "postgresql":
        # DELETE would leave every staged row behind as a dead tuple that later batches scan past.
        connection.execute(text(f"TRUNCATE {', '.join(t.name for t in tables)}"))
    else:
        for table in tables:
            connection.execute(table.delete())


@contextmanager
def without_indexes(connection: Connection, table: Table, names: Iterable[str]) -> Iterator[bool]:
    """Drop the named non-unique indexes of an EMPTY ``table`` for a bulk load; build them after.

    Yields whether it dropped them. Indexes fed random keys (e-mail, phone, name) make every batch dirty pages
    all over them, which each commit writes out (and on PostgreSQL, WAL-logs); building an index once from the
    finished table is a sort. Unique indexes are never dropped (they are what de-duplication relies on), nor
    anything on a table that already has rows. The indexes are built again in ``finally``; if the process dies
    first, the next import (``restore_indexes``) or ``kizuna init`` builds the missing ones. ``connection``
    must be one the batches do not write through on PostgreSQL (its DROP and CREATE commit on their own).
    """
    wanted = set(names)
    indexes = [index for index in table.indexes if index.name in wanted and not index.unique]
    if not indexes or connection.execute(select(literal(1)).select_from(table).limit(1)).first() is not None:
        connection.rollback()
        yield False
        return
    if connection.dialect.name == "postgresql":
        # DROP INDEX waits for every open transaction that read the table, and the readers that come after queue
        # behind it: rather than stall the application, give up quickly and load with the indexes in place.
        connection.exec_driver_sql(f"SET LOCAL lock_timeout = '{DROP_LOCK_TIMEOUT_MS}ms'")
    try:
        for index in indexes:
            index.drop(connection, checkfirst=True)
    except OperationalError:
        connection.rollback()
        log.info("bulk load of %s keeps its indexes: another transaction is using the table", table.name)
        yield False
        return
    connection.commit()
    try:
        yield True
    finally:
        connection.rollback()
        with sorting_threads(connection):
            for index in indexes:
                index.create(connection, checkfirst=True)
            connection.commit()


@contextmanager
def sorting_threads(connection: Connection) -> Iterator[None]:
    """SQLite: let index builds inside the block use a helper thread per core (building an index is a sort, and
    the CPU is otherwise idle then); restored after. Elsewhere nothing."""
    if connection.dialect.name != "sqlite":
        yield
        return
    threads = connection.exec_driver_sql("PRAGMA threads").scalar()
    connection.exec_driver_sql(f"PRAGMA threads={os.cpu_count() or 1}")
    try:
        yield
    finally:
        connection.exec_driver_sql(f"PRAGMA threads={int(threads or 0)}")


def restore_indexes(engine: Engine, table: Table) -> None:
    """Build any index of ``table`` the database lacks (one an interrupted bulk load left dropped)."""
    with engine.begin() as connection:
        present = {index["name"] for index in inspect(connection).get_indexes(table.name)}
        for index in table.indexes:
            if index.name not in present:
                index.create(connection, checkfirst=True)
