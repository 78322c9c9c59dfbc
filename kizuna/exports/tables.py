"""Whole tables to Parquet or CSV, for teams who keep a warehouse (``kizuna export table NAME``).

A table is written as stored (its own column names, every row, in primary-key order), unlike the list exports,
which are shaped for people and for importing back. What must never leave in any export: the tables of sign-in
secrets are refused whole, and secret columns of other tables are left out (``SECRET_COLUMNS``;
tests/exports/test_tables.py fails when a column that looks like a secret is in neither list).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import IO, Any

import pyarrow as pa
import pyarrow.parquet as pq
from sqlalchemy import Column, Table, select
from sqlalchemy.orm import Session
from sqlalchemy.types import TypeDecorator

import kizuna.models  # noqa: F401  (every table on the metadata)
from kizuna.auth import audit
from kizuna.auth.permissions import Actor, require
from kizuna.db import Base
from kizuna.errors import ValidationError
from kizuna.exports.service import MEDIA_TYPES, neutralize

# Tables that hold nothing but sign-in secrets and their bookkeeping: never exported.
EXCLUDED_TABLES = {
    "ui_sessions": "session tokens and CSRF secrets of signed-in users",
    "api_tokens": "hashes of API tokens",
    "sign_in_throttles": "failed sign-in counters per account and address",
}
# Columns left out of an otherwise exportable table (hashes, credentials, encrypted channel secrets).
SECRET_COLUMNS = {
    "users": frozenset({"password_hash"}),
    "channel_settings": frozenset({"secrets"}),
    "line_settings": frozenset({"channel_token", "channel_secret"}),
    "webhook_endpoints": frozenset({"secret"}),
    # The hash of a user's calendar feed URL: who has the hash may not open the feed, but it stays with the token.
    "calendar_feeds": frozenset({"token_hash"}),
    # The hash of a website visitor's chat secret (kizuna/chat): it stays with the visitor's browser.
    "chat_sessions": frozenset({"secret_hash"}),
}
# Columns whose name looks like a secret but which hold none (the test that guards SECRET_COLUMNS reads this).
NOT_SECRET = {"users": frozenset({"must_change_password"})}
_ROWS_PER_BATCH = 10_000


def exportable_tables() -> list[str]:
    return sorted(name for name in Base.metadata.tables if name not in EXCLUDED_TABLES)


def _table(name: str) -> Table:
    table = Base.metadata.tables.get((name or "").strip())
    if table is None or table.name in EXCLUDED_TABLES:
        why = f" ({EXCLUDED_TABLES[table.name]})" if table is not None else ""
        raise ValidationError(
            f"cannot export table '{name}'{why}; choose one of {', '.join(exportable_tables())}", field="table"
        )
    return table


def columns_of(table: Table) -> list[Column[Any]]:
    hidden = SECRET_COLUMNS.get(table.name, frozenset())
    return [c for c in table.columns if c.name not in hidden]


def _arrow_type(column: Column[Any]) -> pa.DataType:
    kind = column.type
    if isinstance(kind, TypeDecorator):
        # Money and UTC times are decorators over Numeric and DateTime: their columns are typed by what they hold.
        kind = kind.impl_instance
    try:
        python = kind.python_type
    except NotImplementedError:
        return pa.string()
    if python is Decimal:
        # Wider than Numeric(18, 2), as the list exports: a value stored before ranges were checked still fits.
        return pa.decimal128(38, getattr(kind, "scale", None) or 2)
    return {
        bool: pa.bool_(),
        int: pa.int64(),
        float: pa.float64(),
        dt.datetime: pa.timestamp("us", tz="UTC"),
        dt.date: pa.date32(),
        bytes: pa.binary(),
    }.get(python, pa.string())


def arrow_schema(table: Table) -> pa.Schema:
    return pa.schema([(c.name, _arrow_type(c)) for c in columns_of(table)])


def _plain(value: Any, arrow: pa.DataType) -> Any:
    """A stored value as its Parquet column takes it: JSON documents (and anything else untyped) as text."""
    if value is None:
        return None
    if pa.types.is_string(arrow) and not isinstance(value, str):
        return json.dumps(value, ensure_ascii=False, default=str)
    if isinstance(value, dt.datetime) and value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    if isinstance(value, (dict, list)):
        return neutralize(json.dumps(value, ensure_ascii=False, default=str))
    return neutralize(value)


def _rows(session: Session, table: Table) -> Iterator[Any]:
    cols = columns_of(table)
    order = list(table.primary_key.columns) or cols[:1]
    query = select(*cols).order_by(*order).execution_options(yield_per=_ROWS_PER_BATCH)
    yield from session.execute(query)


def write_table(
    session: Session,
    *,
    actor: Actor,
    name: str,
    fmt: str,
    out: IO[bytes],
    progress: Callable[[int], None] | None = None,
) -> int:
    """Write every row of table ``name`` to ``out`` as ``fmt`` (csv or parquet) and audit it; returns the rows."""
    require(actor, "data:export")
    require(actor, "tables:export")
    table = _table(name)
    if fmt not in MEDIA_TYPES:
        raise ValidationError(f"unknown export format '{fmt}'; choose csv or parquet", field="format")
    names = [c.name for c in columns_of(table)]
    count = 0
    if fmt == "csv":
        text = io.TextIOWrapper(out, encoding="utf-8-sig", newline="", write_through=True)
        writer = csv.writer(text)
        writer.writerow(names)
        for row in _rows(session, table):
            writer.writerow([_cell(v) for v in row])
            count += 1
            if progress and count % 10_000 == 0:
                progress(count)
        text.flush()
        text.detach()
    else:
        schema = arrow_schema(table)
        types = [schema.field(n).type for n in names]
        with pq.ParquetWriter(out, schema) as parquet:
            batch: list[list[Any]] = [[] for _ in names]
            for row in _rows(session, table):
                for i, value in enumerate(row):
                    batch[i].append(_plain(value, types[i]))
                count += 1
                if count % _ROWS_PER_BATCH == 0:
                    parquet.write_table(pa.Table.from_pydict(dict(zip(names, batch, strict=True)), schema=schema))
                    batch = [[] for _ in names]
                    if progress:
                        progress(count)
            parquet.write_table(pa.Table.from_pydict(dict(zip(names, batch, strict=True)), schema=schema))
    audit.record(
        session,
        actor=actor,
        action="export.table",
        entity_type="table",
        entity_id=table.name,
        details={
            "table": table.name,
            "format": fmt,
            "rows": count,
            "left_out": sorted(SECRET_COLUMNS.get(table.name, ())),
            "personal_data": "customer_id" in table.c or table.name == "customers",
        },
        summary=f"exported table {table.name}: {count} rows as {fmt}",
    )
    return count
