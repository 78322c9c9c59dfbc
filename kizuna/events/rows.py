"""Event rows straight to the driver, for the tracking API's batches: one ``INSERT ... RETURNING id``.

Through SQLAlchemy a batch of 100 rows cost a parameter dictionary per row, the ``UTCDateTime`` and JSON type
processors for 300 values, and on SQLite one ``execute`` per row (to return the ids in order, which SQLite does
not promise for a multi-row insert). The readers of these ids (``events.recorded``) need the set, not the
order, so here each value is bound as its column stores it: on SQLite a multi-row ``VALUES`` of up to ``ROWS``
rows, on PostgreSQL one array per column (``unnest``).

- times: on SQLite the text ``UTCDateTime`` stores (``sqlite_time``), on PostgreSQL the aware datetime;
- properties: JSON text (``json.dumps``, as SQLAlchemy's JSON type writes it), cast to ``jsonb`` on PostgreSQL.

``tests/ingest/test_event_rows.py`` proves that rows written here and through the ORM are stored alike.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from sqlalchemy.orm import Session

from kizuna.db import sqlite_time

COLUMNS = ("external_id", "customer_id", "anonymous_id", "type", "channel", "occurred_at", "received_at")
COLUMNS += ("source", "properties")
_OCCURRED, _RECEIVED, _PROPERTIES = COLUMNS.index("occurred_at"), COLUMNS.index("received_at"), len(COLUMNS) - 1
# 9 values a row: 100 rows stay under SQLite's oldest limit of 999 variables a statement.
ROWS = 100


def insert_events(session: Session, rows: Sequence[Sequence[Any]]) -> list[int]:
    """Insert ``rows`` (tuples in ``COLUMNS`` order: aware datetimes, a dict of properties) in the session's
    transaction; returns the new ids, in no particular order."""
    connection = session.connection()
    dialect = connection.dialect.name
    sqlite = dialect == "sqlite"
    when: dict[dt.datetime, Any] = {}

    def stamp(value: dt.datetime) -> Any:
        # A batch shares one received_at, and often its occurred_at values: each is converted once.
        found = when.get(value)
        if found is None:
            found = when[value] = sqlite_time(value) if sqlite else value.astimezone(dt.UTC)
        return found

    dumps = json.dumps
    if not sqlite:
        # One array a column: a short statement that psycopg parses once and the server prepares (psycopg parses
        # again every query over 4 KB or 50 parameters: 900 placeholders cost ~2 ms of CPU a batch).
        columns: list[list[Any]] = [list(c) for c in zip(*rows, strict=True)] if rows else []
        if not columns:
            return []
        columns[_OCCURRED] = [stamp(v) for v in columns[_OCCURRED]]
        columns[_RECEIVED] = [stamp(v) for v in columns[_RECEIVED]]
        columns[_PROPERTIES] = [dumps(v or {}) for v in columns[_PROPERTIES]]
        # Binary parameters (``%b``): psycopg's text dump of an array escapes every element in Python (a regular
        # expression each); the binary one hands each element to its C dumper.
        return [row[0] for row in connection.exec_driver_sql(_UNNEST, tuple(columns))]
    ids: list[int] = []
    for start in range(0, len(rows), ROWS):
        chunk = rows[start : start + ROWS]
        params: list[Any] = []
        for row in chunk:
            values = list(row)
            values[_OCCURRED] = stamp(values[_OCCURRED])
            values[_RECEIVED] = stamp(values[_RECEIVED])
            values[_PROPERTIES] = dumps(values[_PROPERTIES] or {})
            params.extend(values)
        result = connection.exec_driver_sql(_statement(dialect, len(chunk)), tuple(params))
        ids.extend(row[0] for row in result)
    return ids


@lru_cache(maxsize=128)
def _statement(dialect: str, count: int) -> str:
    one = "(" + ", ".join("?" for _ in COLUMNS) + ")"
    return f"INSERT INTO events ({', '.join(COLUMNS)}) VALUES {', '.join([one] * count)} RETURNING id"


_PG_ARRAYS = ("varchar[]", "integer[]", "varchar[]", "varchar[]", "varchar[]", "timestamptz[]", "timestamptz[]")
_PG_ARRAYS += ("varchar[]", "jsonb[]")
_UNNEST = (
    f"INSERT INTO events ({', '.join(COLUMNS)}) SELECT * FROM unnest("
    + ", ".join(f"CAST(%b AS {t})" for t in _PG_ARRAYS)
    + ") RETURNING id"
)
