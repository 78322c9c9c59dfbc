"""A validated rule (rules.py) compiled to one SQLAlchemy condition on the ``customers`` row.

Everything is SQLAlchemy Core with bound parameters: no rule text ever becomes SQL text. Each leaf is one of

- a comparison on a ``customers`` column (attributes; the customer filter set's columns and value parsers),
- ``customers.id IN (SELECT customer_id FROM <table> WHERE ...)`` for conditions on other tables (events,
  orders, lines, metrics, tags, consents, other segments), or its ``NOT IN``.

Two shapes of the same condition (``correlate``): a full refresh asks "who matches" of every customer, which
the databases answer best as one set per leaf (a hash or index semi-join over the table read once); an
incremental refresh asks it of a few thousand touched customers, for which ``EXISTS (... WHERE customer_id =
customers.id ...)`` reads each one's rows from the (customer_id, ...) indexes instead of the whole table.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, exists, false, func, not_, or_, select, true
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql.functions import FunctionElement

from kizuna.analytics.models import CustomerMetrics
from kizuna.analytics.periods import zone
from kizuna.catalog.models import Product
from kizuna.config import get_settings
from kizuna.customers import consent
from kizuna.customers.filters import CUSTOMER_FILTERS
from kizuna.customers.models import Consent, Customer
from kizuna.errors import KizunaError
from kizuna.events.models import Event
from kizuna.fields import registry as field_registry
from kizuna.listing import _compare, _escape_like
from kizuna.orders.models import Order, OrderLine
from kizuna.orders.spend import counts_as_spend
from kizuna.segments import rules as r
from kizuna.segments.models import Segment, SegmentMembership
from kizuna.segments.rules import SegmentRuleError

# The metric columns a rule may compare, with the value kind each takes.
METRIC_COLUMNS: dict[str, tuple[Any, str]] = {
    "rfm_segment": (CustomerMetrics.rfm_segment, "str"),
    "decile": (CustomerMetrics.decile, "int"),
    "clv": (CustomerMetrics.clv, "decimal"),
    "churn_risk": (CustomerMetrics.churn_risk, "float"),
    "p_alive": (CustomerMetrics.p_alive, "float"),
}


def day_start(day: dt.date) -> dt.datetime:
    """The first instant of ``day`` in KIZUNA_DEFAULT_TIMEZONE, in UTC (stored times are UTC)."""
    return dt.datetime.combine(day, dt.time(), tzinfo=zone()).astimezone(dt.UTC)


class _Compiler:
    def __init__(self, *, correlate: bool) -> None:
        self.correlate = correlate

    # --- tree -------------------------------------------------------------------------------------------

    def node(self, node: Any, path: str) -> ColumnElement[bool]:
        if isinstance(node, r.All):
            return and_(*(self.node(c, f"{path}all[{i}].") for i, c in enumerate(node.all)))
        if isinstance(node, r.Any_):
            return or_(*(self.node(c, f"{path}any[{i}].") for i, c in enumerate(node.any)))
        if isinstance(node, r.Not):
            return not_(self.node(node.not_, f"{path}not."))
        handler: Callable[[Any, str], ColumnElement[bool]] = getattr(self, "_" + type(node).__name__.lower())
        return handler(node, path)

    def member(self, id_column: Any, *where: Any, group: Any = None, having: Any = None) -> ColumnElement[bool]:
        """``customers.id`` is among the ``id_column`` values of the rows matching ``where``."""
        if self.correlate:
            query = select(id_column).where(id_column == Customer.id, *where)
            if having is not None:
                query = query.group_by(id_column).having(having)
            return exists(query)
        query = select(id_column).where(id_column.is_not(None), *where)
        if having is not None:
            query = query.group_by(id_column).having(having)
        return Customer.id.in_(query)

    # --- leaves -----------------------------------------------------------------------------------------

    def _attribute(self, node: r.Attribute, path: str) -> ColumnElement[bool]:
        where = f"{path}attribute"
        if node.attribute.startswith("attributes."):
            return self._custom_field(node, where)
        spec = CUSTOMER_FILTERS.fields[node.attribute]
        kind = spec.kind
        allowed = r.TEXT_OPS if kind == "str" else r.ORDERED_OPS
        if node.op not in allowed:
            raise SegmentRuleError(
                f"{where}.op", f"'{node.op}' does not apply to {node.attribute}; use one of {', '.join(allowed)}"
            )

        def parse(value: Any) -> Any:
            return _parse(spec, node.attribute, kind, value, f"{where}.value")

        return comparison(spec.column, kind, node.op, node.value, parse)

    def _custom_field(self, node: r.Attribute, where: str) -> ColumnElement[bool]:
        """A rule on ``attributes.<key>``, compared as its custom field's type (kizuna/fields)."""
        try:
            spec = CUSTOMER_FILTERS.spec(node.attribute)
        except KizunaError as exc:
            raise SegmentRuleError(where, exc.message, kind="unknown_attribute") from exc
        # The filter's kind, as the rule's parser names it: JSON numbers are floats, a user is an id.
        kind = {"decimal": "float"}.get(spec.kind, spec.kind)
        if spec.column is None:  # a multi-choice field: "holds" one of the choices
            allowed: tuple[str, ...] = ("eq", "ne", "in", "not_in", "is_empty", "is_not_empty")
        else:
            allowed = r.TEXT_OPS if kind == "str" else r.ORDERED_OPS
        if node.op not in allowed:
            raise SegmentRuleError(
                f"{where}.op", f"'{node.op}' does not apply to {node.attribute}; use one of {', '.join(allowed)}"
            )

        def parse(value: Any) -> Any:
            item = _parse(None, node.attribute, kind, value, f"{where}.value")
            # Dates are stored as ISO text (see kizuna/fields/filters.py).
            return item.isoformat() if isinstance(item, dt.date) else item

        if spec.column is not None:
            return comparison(spec.column, kind, node.op, node.value, parse)
        assert spec.build is not None
        if node.op in ("is_empty", "is_not_empty"):
            return spec.build("isnull", node.op == "is_empty")
        values = [parse(v) for v in node.value] if node.op in ("in", "not_in") else [parse(node.value)]
        held = spec.build("in", values)
        return not_(held) if node.op in ("ne", "not_in") else held

    def _tagcondition(self, node: r.TagCondition, path: str) -> ColumnElement[bool]:
        return CUSTOMER_FILTERS.condition("tag", "eq", node.tag, by_ids=not self.correlate)

    def _consentcondition(self, node: r.ConsentCondition, path: str) -> ColumnElement[bool]:
        channel, purpose = node.consent.channel, node.consent.purpose
        if self.correlate:
            return consent.granted(Customer.id, channel=channel, purpose=purpose)
        # The same rule as every send (consent.in_force), as one set of ids.
        return Customer.id.in_(
            select(Consent.customer_id).where(
                Consent.channel == channel,
                Consent.purpose == purpose,
                Consent.status == consent.GRANTED,
                consent.in_force(),
            )
        )

    def _eventcondition(self, node: r.EventCondition, path: str) -> ColumnElement[bool]:
        # Per customer, SQLite must read the customer's events (ix_events_customer_occurred); left free, it took
        # the covering (type, occurred_at, customer_id) index and walked every event of that type in the window
        # for each customer.
        kind = _not_indexed(Event.type) if self.correlate else Event.type
        where: list[Any] = [kind == node.event]
        if node.within_days is not None:
            where.append(Event.occurred_at >= since(node.within_days))
        for name, value in node.properties.items():
            prop = Event.properties[name]
            if isinstance(value, bool):
                where.append(prop.as_boolean() == value)
            elif isinstance(value, int):
                where.append(prop.as_integer() == value)
            elif isinstance(value, float):
                where.append(prop.as_float() == value)
            else:
                where.append(prop.as_string() == value)
        having = func.count() >= node.min_count if node.min_count > 1 else None
        did = self.member(Event.customer_id, *where, having=having)
        return not_(did) if node.negate else did

    def _orderscondition(self, node: r.OrdersCondition, path: str) -> ColumnElement[bool]:
        spec = node.orders
        where = f"{path}orders"
        counted = [counts_as_spend(Order), Order.currency == get_settings().default_currency.upper()]
        if spec.metric == "last_order_date":
            aggregate, kind, empty = func.max(Order.ordered_at), "datetime", None
        elif spec.metric == "order_count":
            aggregate, kind, empty = func.count(), "int", 0
        else:
            aggregate, kind, empty = func.sum(Order.total_amount), "decimal", Decimal(0)
        if spec.op in ("contains", "starts_with"):
            raise SegmentRuleError(f"{where}.op", f"'{spec.op}' does not apply to {spec.metric}")

        def parse(value: Any) -> Any:
            return _parse(None, spec.metric, kind, value, f"{where}.value")

        test = comparison(aggregate, kind, spec.op, spec.value, parse)
        # A customer without counted orders has no group: whether they match is what the comparison says of
        # the empty aggregate (0 orders, 0 spend, no last order date), decided here rather than in SQL.
        if _holds_for_empty(spec.op, spec.value, empty, parse):
            return not_(self.member(Order.customer_id, *counted, having=not_(test)))
        return self.member(Order.customer_id, *counted, having=test)

    def _boughtcondition(self, node: r.BoughtCondition, path: str) -> ColumnElement[bool]:
        spec = node.bought
        value = getattr(spec, spec.field)
        where: list[Any] = [counts_as_spend(Order)]
        if spec.within_days is not None:
            where.append(Order.ordered_at >= since(spec.within_days))
        if spec.field == "product_sku":
            products = select(Product.id).where(Product.sku == value)
            where.append(or_(OrderLine.sku == value, OrderLine.product_id.in_(products)))
        else:
            products = select(Product.id).where(getattr(Product, spec.field) == value)
            where.append(OrderLine.product_id.in_(products))
        line_of_order = OrderLine.order_id == Order.id
        if self.correlate:
            return exists(select(OrderLine.id).where(OrderLine.customer_id == Customer.id, line_of_order, *where))
        return Customer.id.in_(select(OrderLine.customer_id).where(line_of_order, *where))

    def _metriccondition(self, node: r.MetricCondition, path: str) -> ColumnElement[bool]:
        where = f"{path}metric"
        column, kind = METRIC_COLUMNS[node.metric]
        allowed = r.TEXT_OPS if kind == "str" else r.ORDERED_OPS
        if node.op not in allowed:
            raise SegmentRuleError(
                f"{where}.op", f"'{node.op}' does not apply to {node.metric}; use one of {', '.join(allowed)}"
            )

        def parse(value: Any) -> Any:
            return _parse(None, node.metric, kind, value, f"{where}.value")

        if node.metric == "rfm_segment" and node.op in ("eq", "ne", "in", "not_in"):
            from kizuna.analytics.rfm import SEGMENTS

            given = node.value if isinstance(node.value, list) else [node.value]
            unknown = [v for v in given if v not in SEGMENTS]
            if unknown:
                raise SegmentRuleError(
                    f"{where}.value", f"'{unknown[0]}' is not an RFM segment; one of {', '.join(SEGMENTS)}"
                )
        test = comparison(column, kind, node.op, node.value, parse)
        # A customer without a metrics row (no counted order yet) has every metric empty.
        if node.op in ("ne", "not_in", "is_empty"):
            return not_(self.member(CustomerMetrics.customer_id, not_(test)))
        return self.member(CustomerMetrics.customer_id, test)

    def _segmentcondition(self, node: r.SegmentCondition, path: str) -> ColumnElement[bool]:
        return self.member(
            SegmentMembership.customer_id,
            SegmentMembership.segment_id == node.segment,
            SegmentMembership.exited_at.is_(None),
        )


class _not_indexed(FunctionElement[Any]):  # noqa: N801 - reads as a function in the expressions it wraps
    """A column the SQLite planner may not use an index for (SQLite's unary ``+``); the column itself elsewhere."""

    inherit_cache = True

    def __init__(self, column: Any) -> None:
        super().__init__(column)
        self.type = column.type


@compiles(_not_indexed)
def _plain(element: _not_indexed, compiler: Any, **kw: Any) -> str:
    return compiler.process(element.clauses, **kw)


@compiles(_not_indexed, "sqlite")
def _unary_plus(element: _not_indexed, compiler: Any, **kw: Any) -> str:
    return "+" + compiler.process(element.clauses, **kw)


def since(days: int) -> dt.datetime:
    """The start of "within the last ``days`` days": the first instant of the day ``days`` days before today
    (so "within 1 day" is yesterday and today), in KIZUNA_DEFAULT_TIMEZONE."""
    from kizuna.analytics.periods import today

    return day_start(today() - dt.timedelta(days=days))


def _parse(spec: Any, name: str, kind: str, value: Any, path: str) -> Any:
    """One comparison value as the field's type; a relative date becomes its day."""
    if isinstance(value, r.RelativeDate):
        if kind not in ("date", "datetime"):
            raise SegmentRuleError(path, f"a relative date does not apply to {name}")
        return value.day()
    if isinstance(value, bool) and kind != "bool":
        raise SegmentRuleError(path, f"{name} takes {_KIND_WORDS[kind]}, not true/false", kind="wrong_type")
    try:
        if kind == "str":
            if not isinstance(value, str):
                raise SegmentRuleError(path, f"{name} takes text", kind="wrong_type", expected="text")
            return spec.parse(name, value) if spec is not None else value
        if kind == "int":
            if isinstance(value, int):
                return value
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise SegmentRuleError(path, f"{name} takes an integer", kind="wrong_type", expected="integer")
        if kind in ("decimal", "float"):
            if isinstance(value, (int, float)):
                number = Decimal(str(value))
            elif isinstance(value, str):
                number = Decimal(value)
            else:
                raise InvalidOperation
            if not number.is_finite():
                raise InvalidOperation
            return number if kind == "decimal" else float(number)
        if kind in ("date", "datetime"):
            if not isinstance(value, str):
                raise SegmentRuleError(path, f"{name} takes a date (YYYY-MM-DD) or a relative date", kind="wrong_type")
            if len(value) == 10:
                return dt.date.fromisoformat(value)
            if kind == "date":
                raise ValueError
            return spec.parse(name, value) if spec is not None else dt.datetime.fromisoformat(value)
    except SegmentRuleError:
        raise
    except (ValueError, InvalidOperation, KizunaError) as exc:
        raise SegmentRuleError(path, f"'{value}' is not {_KIND_WORDS[kind]}", kind="wrong_type") from exc
    raise SegmentRuleError(path, f"{name} cannot be compared")


_KIND_WORDS = {
    "str": "text",
    "int": "an integer",
    "decimal": "a number",
    "float": "a number",
    "date": "a date (YYYY-MM-DD)",
    "datetime": "a date (YYYY-MM-DD) or a time",
    "bool": "true or false",
}


def comparison(column: Any, kind: str, op: str, value: Any, parse: Callable[[Any], Any]) -> ColumnElement[bool]:
    """``column op value``. On a time column a day (a date or a relative date) means the whole day in
    KIZUNA_DEFAULT_TIMEZONE: ``gte 2025-01-01`` is from its first instant, ``lte`` through its last."""
    if op == "is_empty":
        return or_(column.is_(None), column == "") if kind == "str" else column.is_(None)
    if op == "is_not_empty":
        return and_(column.is_not(None), column != "") if kind == "str" else column.is_not(None)
    if op in ("in", "not_in"):
        values = [parse(v) for v in value]
        if kind == "datetime" and any(isinstance(v, dt.date) and not isinstance(v, dt.datetime) for v in values):
            test = or_(*(comparison(column, kind, "eq", v, lambda x: x) for v in values))
        else:
            test = column.in_(values)
        return or_(not_(test), column.is_(None)) if op == "not_in" else test
    if op == "between":
        low, high = (parse(v) for v in value)
        return and_(
            comparison(column, kind, "gte", low, lambda x: x), comparison(column, kind, "lte", high, lambda x: x)
        )
    item = parse(value)
    if kind == "datetime" and isinstance(item, dt.date) and not isinstance(item, dt.datetime):
        start, end = day_start(item), day_start(item + dt.timedelta(days=1))
        match op:
            case "eq":
                return and_(column >= start, column < end)
            case "ne":
                return or_(column < start, column >= end, column.is_(None))
            case "lt":
                return column < start
            case "lte":
                return column < end
            case "gt":
                return column >= end
            case "gte":
                return column >= start
    if op == "starts_with":
        return column.ilike(f"{_escape_like(item)}%", escape="\\")
    return _compare(column, op, item)


def _holds_for_empty(op: str, value: Any, empty: Any, parse: Callable[[Any], Any]) -> bool:
    """Whether a customer without counted orders (aggregate ``empty``: 0, or None for a date) matches."""
    if empty is None:
        return op in ("ne", "not_in", "is_empty")
    if op == "is_empty":
        return False
    if op == "is_not_empty":
        return True
    if op in ("in", "not_in"):
        inside = empty in [parse(v) for v in value]
        return inside if op == "in" else not inside
    if op == "between":
        low, high = (parse(v) for v in value)
        return low <= empty <= high
    item = parse(value)
    return {
        "eq": empty == item,
        "ne": empty != item,
        "lt": empty < item,
        "lte": empty <= item,
        "gt": empty > item,
        "gte": empty >= item,
    }[op]


def condition(rule: Any, *, correlate: bool = False) -> ColumnElement[bool]:
    """The rule as a condition on the ``customers`` row (see the module docstring for ``correlate``)."""
    return _Compiler(correlate=correlate).node(rule, "")


def matching(rule: Any, *, correlate: bool = False) -> Select[Any]:
    """The ids of the active customers the rule selects."""
    return select(Customer.id).where(Customer.status == "active", condition(rule, correlate=correlate))


def check_references(session: Session, rule: Any, *, segment_id: int | None = None) -> None:
    """Every segment the rule names exists, and following them never leads back to ``segment_id``.

    A cycle would make a segment's members depend on themselves; it is refused with the path of the
    reference that closes it. A rule on ``attributes.<key>`` names a custom field of customers that exists,
    compared as its type allows (the rule is compiled once here, reading the definitions from ``session``'s
    database).
    """
    field_registry.use(session)
    if any(isinstance(n, r.Attribute) and n.attribute.startswith("attributes.") for n in r.walk(rule)):
        condition(rule)
    for index, node in enumerate(r.walk(rule)):
        if not isinstance(node, r.SegmentCondition):
            continue
        path = _path_to(rule, node) or f"node {index}"
        if node.segment == segment_id:
            raise SegmentRuleError(path, "a segment cannot contain itself", kind="cycle", segment=node.segment)
        seen: set[int] = set()
        chain = [node.segment]
        while chain:
            current = chain.pop()
            if current in seen:
                continue
            seen.add(current)
            target = session.get(Segment, current)
            if target is None:
                if current == node.segment:
                    raise SegmentRuleError(
                        path, f"there is no segment {current}", kind="unknown_segment", segment=current
                    )
                continue
            if target.kind != "dynamic" or not target.rule:
                continue
            refs = r.referenced_segments(r.parse_rule(target.rule))
            if segment_id is not None and segment_id in refs:
                raise SegmentRuleError(
                    path,
                    f"segment {node.segment} leads back to this segment (through segment {current}): a cycle",
                    kind="cycle",
                    segment=node.segment,
                )
            chain.extend(refs)


def _path_to(rule: Any, target: Any, path: str = "") -> str | None:
    if rule is target:
        return path + "segment"
    children: list[tuple[str, Any]] = []
    if isinstance(rule, r.All):
        children = [(f"{path}all[{i}].", c) for i, c in enumerate(rule.all)]
    elif isinstance(rule, r.Any_):
        children = [(f"{path}any[{i}].", c) for i, c in enumerate(rule.any)]
    elif isinstance(rule, r.Not):
        children = [(f"{path}not.", rule.not_)]
    for prefix, child in children:
        found = _path_to(child, target, prefix)
        if found is not None:
            return found
    return None


__all__ = ["condition", "matching", "check_references", "comparison", "since", "day_start", "true", "false"]
