"""``attributes.<key>`` as a typed list filter: the key's custom field says how its JSON value compares.

A number field compares as a number, a date as an ISO date, a multi-choice as "holds any of"; the same on
SQLite (json_type / json_extract / json_each) and PostgreSQL (jsonb_typeof / ->> / ?|). A value of another JSON
type (stored before the field was defined) matches nothing rather than failing the query.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from sqlalchemy import ColumnElement, Float, String, case, cast, exists, func, literal, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement

from kizuna.errors import ValidationError
from kizuna.fields import registry
from kizuna.fields.service import PREFIX
from kizuna.listing import ORDERED, TEXT, Filter

# A list form's parameter on a custom field: ``attributes.<key>`` or ``attributes.<key>__<op>``.
FORM_PARAM = re.compile(r"attributes\.[a-z][a-z0-9_]{0,63}(__[a-z]+)?")


def form_params(names: Iterable[str], values: Mapping[str, Any]) -> dict[str, str]:
    """The non-empty custom-field filters among a list form's parameters (they travel with the list's state, its
    saved views and its export like the built-in filters; the filter set types and checks them)."""
    out: dict[str, str] = {}
    for name in names:
        if FORM_PARAM.fullmatch(name) and (value := str(values.get(name) or "").strip()):
            out[name] = value
    return out


class json_value(FunctionElement[Any]):
    """The value at ``key`` of a JSON column when it is of ``want`` ("number" or "string"), else NULL."""

    inherit_cache = True

    def __init__(self, column: Any, key: str, want: str) -> None:
        self.key = key
        self.want = want
        self.type = Float() if want == "number" else String()
        super().__init__(column)

    @property
    def column(self) -> Any:
        return next(iter(self.clauses))


@compiles(json_value)
def _json_value_sqlite(element: json_value, compiler: Any, **kw: Any) -> str:
    path = literal(f'$."{element.key}"', String())
    kinds = ["integer", "real"] if element.want == "number" else ["text"]
    expr = case((func.json_type(element.column, path).in_(kinds), func.json_extract(element.column, path)))
    return compiler.process(expr, **kw)


@compiles(json_value, "postgresql")
def _json_value_pg(element: json_value, compiler: Any, **kw: Any) -> str:
    key = literal(element.key, String())
    value: Any = element.column.op("->>")(key)
    if element.want == "number":
        value = cast(value, Float())
    kind = func.jsonb_typeof(element.column.op("->")(key))
    return compiler.process(case((kind == element.want, value)), **kw)


class json_has_any(FunctionElement[Any]):
    """The JSON list at ``key`` holds any of ``values`` (a multi-choice field)."""

    inherit_cache = False

    def __init__(self, column: Any, key: str, values: list[str]) -> None:
        self.key = key
        self.values = list(values)
        super().__init__(column)

    @property
    def column(self) -> Any:
        return next(iter(self.clauses))


@compiles(json_has_any)
def _has_any_sqlite(element: json_has_any, compiler: Any, **kw: Any) -> str:
    items = func.json_each(element.column, literal(f'$."{element.key}"', String())).table_valued("value", "type")
    test = exists(select(1).select_from(items).where(items.c.type == "text", items.c.value.in_(element.values)))
    return compiler.process(test, **kw)


@compiles(json_has_any, "postgresql")
def _has_any_pg(element: json_has_any, compiler: Any, **kw: Any) -> str:
    held = element.column.op("->")(literal(element.key, String()))
    test = held.op("?|")(cast(literal(element.values, ARRAY(String())), ARRAY(String())))
    return compiler.process(test, **kw)


def _multi(column: Any, key: str) -> Callable[[str, Any], ColumnElement[bool]]:
    def build(op: str, value: Any) -> ColumnElement[bool]:
        if op == "isnull":
            present = _present(column, key)
            return ~present if value else present
        values = value if isinstance(value, list) else [value]
        return json_has_any(column, key, [str(v) for v in values])

    return build


class json_present(FunctionElement[Any]):
    """The JSON column has a non-null value at ``key``."""

    inherit_cache = True

    def __init__(self, column: Any, key: str) -> None:
        self.key = key
        super().__init__(column)


@compiles(json_present)
def _present_sqlite(element: json_present, compiler: Any, **kw: Any) -> str:
    column = next(iter(element.clauses))
    kind = func.json_type(column, literal(f'$."{element.key}"', String()))
    return compiler.process(func.coalesce(kind, "null") != "null", **kw)


@compiles(json_present, "postgresql")
def _present_pg(element: json_present, compiler: Any, **kw: Any) -> str:
    column = next(iter(element.clauses))
    kind = func.jsonb_typeof(column.op("->")(literal(element.key, String())))
    return compiler.process(func.coalesce(kind, "null") != "null", **kw)


def _present(column: Any, key: str) -> ColumnElement[bool]:
    return json_present(column, key)  # type: ignore[return-value]


def typed_filter(spec: registry.FieldSpec, column: Any) -> Filter:
    """The list filter of one custom field on the model's ``attributes`` column."""
    key = spec.key
    label = f"{PREFIX}{key}"
    if spec.type == "number":
        # Floats: SQLite's driver cannot bind a Decimal; JSON numbers are doubles on both sides anyway.
        return Filter(json_value(column, key, "number"), "decimal", ORDERED, label=label, normalize=float)
    if spec.type == "user":
        return Filter(json_value(column, key, "number"), "int", ("eq", "ne", "in", "isnull"), label=label)
    if spec.type == "date":
        # Dates are stored as ISO text, which orders as the dates do.
        return Filter(json_value(column, key, "string"), "date", ORDERED, label=label, normalize=_iso)
    if spec.type == "multi_choice":
        return Filter(kind="str", ops=("eq", "in", "isnull"), build=_multi(column, key), label=label)
    if spec.type == "choice":
        return Filter(json_value(column, key, "string"), "str", ("eq", "ne", "in", "isnull"), label=label)
    return Filter(json_value(column, key, "string"), "str", TEXT, label=label)


def _iso(value: Any) -> Any:
    return value.isoformat() if hasattr(value, "isoformat") else value


def custom_filters(entity: str, column: Any) -> Callable[[str], Filter]:
    """The ``FilterSet.custom`` hook of ``entity``: ``attributes.<key>`` to its typed filter."""

    def find(name: str) -> Filter:
        key = name.removeprefix(PREFIX)
        spec = registry.lookup(entity, key)
        if spec is None:
            raise ValidationError(f"unknown filter field '{name}': {entity} has no custom field '{key}'", field=name)
        return typed_filter(spec, column)

    return find
