"""Exports of any list to CSV or Parquet, filtered by the same filter sets as the API and the UI."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import os
import re
import tempfile
import types
import typing
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import IO, Any

import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BaseModel
from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from kizuna.auth import audit
from kizuna.auth.permissions import Actor, require
from kizuna.catalog.filters import PRODUCT_FILTERS
from kizuna.catalog.models import Product
from kizuna.catalog.schemas import ProductRead
from kizuna.customers.filters import COMPANY_FILTERS, CUSTOMER_FILTERS
from kizuna.customers.models import Company, Customer
from kizuna.customers.schemas import CompanyRead, CustomerRead
from kizuna.errors import KizunaError, ValidationError
from kizuna.events.filters import EVENT_FILTERS
from kizuna.events.models import Event
from kizuna.events.schemas import EventRead
from kizuna.fields import registry as field_registry
from kizuna.fields import service as custom_fields
from kizuna.fields.models import CustomField
from kizuna.listing import FilterSet
from kizuna.orders.filters import ORDER_FILTERS
from kizuna.orders.models import Order
from kizuna.orders.schemas import OrderRead
from kizuna.sales.filters import DEAL_FILTERS
from kizuna.sales.filters import scoped as scoped_deals
from kizuna.sales.models import Deal
from kizuna.sales.schemas import DealRead

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
# The customer an order or event belongs to is written as kizuna_customer_id: in an import file a
# customer_id column means the source system's id, so this is what lets an export import back unchanged.
EXPORTED_NAMES = {"customer_id": "kizuna_customer_id"}
# A formula start at the beginning of the cell or after a ';': spreadsheets set to split on ';' (common in
# Europe) open this file with every ';' as a cell boundary, and tags are joined with ';'.
_FORMULA = re.compile(r"(^|;)(?=[=+\-@\t\r])")
MEDIA_TYPES = {"csv": "text/csv; charset=utf-8", "parquet": "application/vnd.apache.parquet"}


@dataclass(frozen=True)
class ExportKind:
    filterset: FilterSet
    query: Callable[[Mapping[str, Any]], Select[Any]]
    schema: type[BaseModel]
    personal: bool
    # Whose custom fields get a column each (``attributes.<key>``, after the schema's columns).
    custom_fields: str | None = None
    # Per-viewer parameters resolved before the filter set (the deals' ``editable``: see sales/filters.py).
    scope: Callable[[Session, Actor, Select[Any], dict[str, Any]], tuple[Select[Any], dict[str, Any]]] | None = None


KINDS: dict[str, ExportKind] = {
    "customers": ExportKind(CUSTOMER_FILTERS, lambda _: select(Customer), CustomerRead, True, "customer"),
    "companies": ExportKind(COMPANY_FILTERS, lambda _: select(Company), CompanyRead, False, "company"),
    "products": ExportKind(PRODUCT_FILTERS, lambda _: select(Product), ProductRead, False),
    "orders": ExportKind(ORDER_FILTERS, lambda _: select(Order), OrderRead, True),
    "events": ExportKind(EVENT_FILTERS, lambda _: select(Event), EventRead, True),
    "deals": ExportKind(DEAL_FILTERS, lambda _: select(Deal), DealRead, False, "deal", scope=scoped_deals),
}


def neutralize(value: Any) -> Any:
    """Text a spreadsheet would run as a formula gets a leading apostrophe (OWASP CSV injection).

    Each ';'-separated piece counts as a cell of its own, so a tag ``=HYPERLINK(...)`` is neutralised inside a
    joined tag list too.
    """
    if isinstance(value, str) and (value.startswith(FORMULA_START) or ";" in value):
        return _FORMULA.sub(r"\1'", value)
    return value


def _flat(value: Any) -> Any:
    if isinstance(value, (dict, list)):
        if value and all(isinstance(v, str) for v in value) and isinstance(value, list):
            return ";".join(value)
        return json.dumps(value, ensure_ascii=False, default=str) if value else ""
    return value


def _custom_fields(session: Session, kind: ExportKind) -> list[CustomField]:
    return custom_fields.definitions(session, kind.custom_fields) if kind.custom_fields else []


def _custom_value(field: CustomField, value: Any, mode: str) -> Any:
    """A custom field's stored value as its export column holds it (typed in Parquet, flat in CSV)."""
    if value is None:
        return None
    if field.type == "multi_choice":
        return ";".join(map(str, value)) if isinstance(value, list) else str(value)
    if mode == "python":
        # A value stored before the field existed may be of another type: the column keeps its own.
        try:
            if field.type == "number":
                return float(value)
            if field.type == "user":
                return int(value)
            if field.type == "date":
                return dt.date.fromisoformat(str(value))
        except (TypeError, ValueError):
            return None
        return str(value)
    return value


_CUSTOM_ARROW = {"number": pa.float64(), "user": pa.int64(), "date": pa.date32()}


def _rows(
    session: Session, kind: ExportKind, params: Mapping[str, Any], mode: str, actor: Actor
) -> Iterator[dict[str, Any]]:
    field_registry.use(session)  # filters on attributes.<key> read their custom field's type
    custom = _custom_fields(session, kind)
    query, filters = kind.query(params), {k: v for k, v in params.items() if k != "sort"}
    if kind.scope is not None:
        query, filters = kind.scope(session, actor, query, filters)
    query = kind.filterset.apply(query, filters)
    name, desc = kind.filterset.sort_key(params.get("sort"))
    col = kind.filterset.sorts[name]
    query = query.order_by(col.desc() if desc else col.asc(), kind.filterset.model.id)
    for obj in session.scalars(query.execution_options(yield_per=2000)):
        row = kind.schema.model_validate(obj).model_dump(mode=mode)
        out = {EXPORTED_NAMES.get(k, k): _flat(v) for k, v in row.items()}
        attributes = row.get("attributes") or {}
        for field in custom:
            out[f"attributes.{field.key}"] = _custom_value(field, attributes.get(field.key), mode)
        yield out


def _arrow_type(annotation: Any) -> pa.DataType:
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType) and len(args) == 1:
        annotation = args[0]
    if typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    return {
        bool: pa.bool_(),
        int: pa.int64(),
        float: pa.float64(),
        # Wider than Numeric(18, 2): a row stored before money had its range checked still fits, never a 500.
        Decimal: pa.decimal128(38, 2),
        dt.datetime: pa.timestamp("us", tz="UTC"),
        dt.date: pa.date32(),
    }.get(annotation, pa.string())


def arrow_schema(model: type[BaseModel]) -> pa.Schema:
    """Parquet columns typed from the Read schema, so money stays decimal and times stay timestamps."""
    return pa.schema(
        [(EXPORTED_NAMES.get(name, name), _arrow_type(f.annotation)) for name, f in model.model_fields.items()]
    )


def write_export(
    session: Session,
    *,
    actor: Actor,
    kind: str,
    params: Mapping[str, Any],
    fmt: str,
    out: IO[bytes],
    progress: Callable[[int], None] | None = None,
) -> int:
    """Write the filtered list to ``out`` and audit the export; returns the number of rows. The caller commits."""
    spec = KINDS.get(kind)
    if spec is None:
        raise ValidationError(f"cannot export '{kind}'; choose one of {', '.join(KINDS)}", field="kind")
    if fmt not in MEDIA_TYPES:
        raise ValidationError(f"unknown export format '{fmt}'; choose csv or parquet", field="format")
    require(actor, f"{kind}:read")
    require(actor, "data:export")
    filters = {k: v for k, v in params.items() if k != "sort"}
    columns = [EXPORTED_NAMES.get(name, name) for name in spec.schema.model_fields]
    custom = _custom_fields(session, spec)
    columns += [f"attributes.{f.key}" for f in custom]
    count = 0
    if fmt == "csv":
        text = io.TextIOWrapper(out, encoding="utf-8-sig", newline="", write_through=True)
        writer = csv.writer(text)
        writer.writerow(columns)
        for row in _rows(session, spec, params, "json", actor):
            writer.writerow([neutralize(row[c]) for c in columns])
            count += 1
            if progress and count % 1000 == 0:
                progress(count)
        text.flush()
        text.detach()
    else:
        schema = arrow_schema(spec.schema)
        for field in custom:
            schema = schema.append(pa.field(f"attributes.{field.key}", _CUSTOM_ARROW.get(field.type, pa.string())))
        with pq.ParquetWriter(out, schema) as parquet:
            batch: list[dict[str, Any]] = []
            for row in _rows(session, spec, params, "python", actor):
                batch.append(row)
                count += 1
                if len(batch) >= 10_000:
                    parquet.write_table(pa.Table.from_pylist(batch, schema=schema))
                    batch = []
                    if progress:
                        progress(count)
            parquet.write_table(pa.Table.from_pylist(batch, schema=schema))
    audit.record(
        session,
        actor=actor,
        action=f"export.{kind}",
        entity_type=kind,
        details={"format": fmt, "filters": dict(filters), "rows": count, "personal_data": spec.personal},
        summary=f"exported {count} {kind} as {fmt}",
    )
    return count


def export(session: Session, *, actor: Actor, kind: str, params: Mapping[str, Any], fmt: str) -> tuple[bytes, str]:
    """The export as bytes and its media type (for the UI's download buttons)."""
    buffer = io.BytesIO()
    write_export(session, actor=actor, kind=kind, params=params, fmt=fmt, out=buffer)
    return buffer.getvalue(), MEDIA_TYPES[fmt]


@contextmanager
def replacing(path: Path) -> Iterator[IO[bytes]]:
    """A file to write that becomes ``path`` only if the block ends without an error.

    It is written beside ``path`` (same folder, so the final rename is atomic) and renamed over it at the
    end; on any error it is removed and whatever was at ``path`` before is left as it was.
    """
    folder = path.parent
    if not folder.is_dir():
        raise ValidationError(f"folder {folder} does not exist; create it first or choose another path", field="output")
    if path.is_dir():
        raise ValidationError(f"{path} is a folder; give a file name", field="output")
    try:
        handle = tempfile.NamedTemporaryFile(  # noqa: SIM115 - renamed or removed below
            dir=folder, prefix=f".{path.name}.", suffix=".part", delete=False
        )
    except OSError as exc:
        raise KizunaError(f"cannot write in {folder}: {exc.strerror}", field="output") from exc
    temp = Path(handle.name)
    try:
        with handle:
            yield handle
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
