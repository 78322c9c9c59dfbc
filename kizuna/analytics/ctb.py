"""CTB analysis: what each customer buys by product category, taste and brand.

Definitions (tested in tests/analytics/test_ctb.py):

- Lines: the order lines of counted orders (``analytics.spend``: completed, non-negative orders in one currency,
  of active customers), placed in the period ``[from, to]``; the as-of day is ``to`` (default today), so a
  future-dated order is not seen. A line's spend is its ``amount``, the line total (quantity × unit price unless
  the import gave the total). Lines with a negative amount (a discount or adjustment line) are left out: which
  product they take money from is unknown. Zero-amount lines (free samples) count as lines, with no spend.
- A line whose product is gone, or whose product has no value for the dimension, falls in the uncategorised
  bucket: ``value`` is ``None`` (shown as "(uncategorised)"). It counts in the customer's totals, so shares of
  the named values are never inflated, but it is never a customer's top value.
- Recency weight of a line: ``0.5 ** (age_days / half_life_days)``, ``age_days`` the whole days from the order
  to the end of the as-of day (an order on the as-of day weighs 1, one ``half_life_days`` earlier weighs 0.5).
- Affinity of a customer to a value: ``spend_share`` = weighted spend on the value / the customer's weighted
  spend (``None`` when the customer's lines are all free), and ``count_share`` = weighted lines of the value /
  the customer's weighted lines. Count is lines, not quantity: a line is one decision to buy a product, while
  quantity would let a 24-can case outweigh everything else. Quantity is reported beside it.
- Top value per customer and dimension: the named value with the highest spend share, then count share, then
  the smallest name.
- Summary per value (unweighted): customers who bought it, revenue (line totals) and its share of the period's
  revenue, lines, quantity, and for how many customers it is the top value.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any, Literal

import ibis
import ibis.expr.types as ir
from pydantic import BaseModel, Field

from kizuna.analytics import periods
from kizuna.analytics.engine import Store
from kizuna.analytics.spend import SpendRule, counted_orders, default_currency
from kizuna.errors import ValidationError
from kizuna.schemas import MoneyOut

Dimension = Literal["category", "taste", "brand"]
DIMENSIONS: tuple[Dimension, ...] = ("category", "taste", "brand")
UNCATEGORISED = "(uncategorised)"
# Shares are rounded before they are ranked so that backends summing floats in another order rank alike.
DIGITS = 12
CENT = Decimal("0.01")


class CTBSpec(BaseModel):
    dimension: Dimension = Field(default="category", description="Product attribute analysed.")
    start: dt.date | None = Field(default=None, description="First day of the period (inclusive; default: all).")
    end: dt.date | None = Field(default=None, description="Last day (inclusive) and as-of day (default: today).")
    currency: str | None = Field(default=None, description="Currency analysed (default: the configured one).")
    half_life_days: float = Field(default=180, gt=0, le=36500, description="Days after which a line weighs half.")
    groups: int = Field(default=5, ge=1, le=20, description="Customer groups (k-means clusters) at most.")
    group_values: int = Field(default=5, ge=1, le=20, description="Top values per dimension in the group profiles.")


class ValueShare(BaseModel):
    value: str | None
    customers: int
    revenue: MoneyOut
    share: float
    lines: int
    quantity: int
    top_customers: int = Field(description="Customers for whom this is the top value.")


class Affinity(BaseModel):
    customer_id: int
    value: str | None
    lines: int
    quantity: int
    spend: MoneyOut
    spend_share: float | None
    count_share: float


class CustomerTop(BaseModel):
    customer_id: int
    spend: MoneyOut
    lines: int
    top_category: str | None
    category_share: float | None
    top_taste: str | None
    taste_share: float | None
    top_brand: str | None
    brand_share: float | None


class GroupValue(BaseModel):
    value: str
    share: float = Field(description="Mean weighted spend share of the group's customers.")


class CTBGroup(BaseModel):
    group: int
    customers: int
    revenue: MoneyOut
    category: list[GroupValue]
    taste: list[GroupValue]
    brand: list[GroupValue]


class CTBResult(BaseModel):
    spec: CTBSpec
    as_of: dt.date
    currency: str
    customers: int
    revenue: MoneyOut
    values: list[ValueShare]
    groups: list[CTBGroup]


def ctb_lines(store: Store, spec: CTBSpec) -> tuple[ir.Table, dt.date, str]:
    """One row per counted line: ``customer_id, order_id, product_id, at, quantity, amount, weight, category,
    taste, brand``, with the as-of day and currency."""
    as_of = spec.end or periods.today()
    currency = default_currency(spec.currency)
    start, end = periods.bounds(spec.start, as_of)
    orders = counted_orders(store, SpendRule(currency=currency, start=start, end=end))
    lines = store.order_lines()
    products = store.products()
    # One join chain and one projection: every extra layer nests a subquery, and SQLite's parser has a depth
    # limit that the analyses built on these lines would otherwise reach.
    chain = orders.join(lines, orders.id == lines.order_id).left_join(products, lines.product_id == products.id)
    age = ((end - orders.at) // 86400).cast("float64")
    # Empty strings are no better a category than none.
    attributes = {d: ibis.ifelse(products[d].strip() == "", ibis.null("string"), products[d]) for d in DIMENSIONS}
    joined = chain.select(
        customer_id=orders.customer_id,
        order_id=orders.id,
        product_id=lines.product_id,
        at=orders.at,
        quantity=lines.quantity,
        amount=lines.amount,
        weight=ibis.literal(0.5) ** (age / float(spec.half_life_days)),
        **attributes,
    )
    joined = joined.filter(joined.amount >= 0)
    return joined, as_of, currency


def _affinity_expr(lines: ir.Table, dimension: Dimension) -> ir.Table:
    weighted = lines.amount.cast("float64") * lines.weight
    per = lines.group_by(["customer_id", lines[dimension].name("value")]).aggregate(
        lines=lines.count(),
        quantity=lines.quantity.sum(),
        spend=lines.amount.sum(),
        w_spend=weighted.sum(),
        w_lines=lines.weight.sum(),
    )
    whole = ibis.window(group_by=per.customer_id)
    total_spend = per.w_spend.sum().over(whole)
    total_lines = per.w_lines.sum().over(whole)
    per = per.mutate(
        spend_share=ibis.ifelse(total_spend > 0, (per.w_spend / total_spend).round(DIGITS), ibis.null("float64")),
        count_share=ibis.ifelse(total_lines > 0, (per.w_lines / total_lines).round(DIGITS), 0.0),
    )
    order = [
        ibis.ifelse(per.value.isnull(), 1, 0),
        ibis.coalesce(per.spend_share, -1.0).desc(),
        per.count_share.desc(),
        per.value.asc(),
    ]
    return per.mutate(rank=ibis.row_number().over(group_by=per.customer_id, order_by=order))


def affinity_table(store: Store, spec: CTBSpec) -> ir.Table:
    """Per customer and value of ``spec.dimension``: ``customer_id, value, lines, quantity, spend, w_spend,
    w_lines, spend_share, count_share, rank`` (rank 0 is the top value when ``value`` is not null)."""
    lines, _, _ = ctb_lines(store, spec)
    return _affinity_expr(lines, spec.dimension)


def affinities(store: Store, spec: CTBSpec, customer_ids: list[int] | None = None) -> list[Affinity]:
    """Each customer's affinity to every value of the dimension, by customer then rank."""
    table = affinity_table(store, spec)
    if customer_ids is not None:
        table = table.filter(table.customer_id.isin(customer_ids))
    return [Affinity(**_money(row, "spend")) for row in _rows(table.order_by(["customer_id", "rank"]))]


def customer_tops(store: Store, spec: CTBSpec, customer_ids: list[int] | None = None) -> list[CustomerTop]:
    """Every customer's top category, taste and brand (with its weighted spend share), by customer id."""
    lines, _, _ = ctb_lines(store, spec)
    if customer_ids is not None:
        lines = lines.filter(lines.customer_id.isin(customer_ids))
    result = lines.group_by("customer_id").aggregate(spend=lines.amount.sum(), lines=lines.count())
    for dimension in DIMENSIONS:
        per = _affinity_expr(lines, dimension)
        top = per.filter((per["rank"] == 0) & per.value.notnull())
        top = top.select(
            cid=top.customer_id,
            **{f"top_{dimension}": top.value, f"{dimension}_share": ibis.coalesce(top.spend_share, top.count_share)},
        )
        result = result.left_join(top, result.customer_id == top.cid).drop("cid")
    return [CustomerTop(**_money(row, "spend")) for row in _rows(result.order_by("customer_id"))]


def ctb(store: Store, spec: CTBSpec) -> CTBResult:
    """The summary: revenue and customers per value of the dimension, and the customer groups."""
    from kizuna.analytics.ctb_groups import customer_groups

    lines, as_of, currency = ctb_lines(store, spec)
    # Read once: the summary, the affinities and the groups read the lines a dozen times, and each read through
    # the SQLite scanner joins every order line to its order again.
    with lines.cache() as lines:
        dim = lines[spec.dimension].name("value")
        per_value = lines.group_by(dim).aggregate(
            customers=lines.customer_id.nunique(),
            revenue=lines.amount.sum(),
            lines=lines.count(),
            quantity=lines.quantity.sum(),
        )
        ranked = _affinity_expr(lines, spec.dimension)
        tops = ranked.filter((ranked["rank"] == 0) & ranked.value.notnull())
        top_counts = {r["value"]: int(r["n"]) for r in _rows(tops.group_by("value").aggregate(n=tops.count()))}
        totals = _rows(lines.aggregate(customers=lines.customer_id.nunique(), revenue=lines.amount.sum()))[0]
        revenue = Decimal(totals["revenue"] or 0).quantize(CENT)
        values = []
        for row in _rows(per_value):
            value_revenue = Decimal(row["revenue"] or 0).quantize(CENT)
            values.append(
                ValueShare(
                    value=row["value"],
                    customers=int(row["customers"]),
                    revenue=value_revenue,
                    share=float(value_revenue / revenue) if revenue else 0.0,
                    lines=int(row["lines"]),
                    quantity=int(row["quantity"] or 0),
                    top_customers=top_counts.get(row["value"], 0),
                )
            )
        # Most revenue first, ties by name; the uncategorised bucket last whatever its size.
        values.sort(key=lambda v: (v.value is None, -v.revenue, v.value or ""))
        return CTBResult(
            spec=spec,
            as_of=as_of,
            currency=currency,
            customers=int(totals["customers"] or 0),
            revenue=revenue,
            values=values,
            groups=customer_groups(lines, spec),
        )


def check_value(lines: ir.Table, dimension: Dimension, value: str) -> None:
    """Refuse a value no line of the period has (a typo would otherwise give an empty list without a word)."""
    hits = lines.filter(lines[dimension] == value).count().to_pyarrow().as_py()
    if not hits:
        raise ValidationError(
            f"no line in the period has {dimension} '{value}'",
            field="value",
            key="error.ctb_unknown_value",
            params={"dimension": dimension, "value": value},
        )


def first(table: ir.Table, order: list[Any], n: int) -> ir.Table:
    """The first ``n`` rows of ``table`` in ``order``, in that order.

    Not ``order_by(...).limit(n)``: DuckDB 1.4.4 fails with an internal error ("Attempted to access index 0
    within vector of size 0") when a top-N sits over an inlined CTE that scans SQLite; a row number does not."""
    ranked = table.mutate(_pos=ibis.row_number().over(order_by=order))
    return ranked.filter(ranked._pos < n).order_by("_pos").drop("_pos")


def _money(row: dict[str, Any], *names: str) -> dict[str, Any]:
    for name in names:
        row[name] = Decimal(row[name] or 0).quantize(CENT)
    return row


def _rows(expr: ir.Table) -> list[dict[str, Any]]:
    return expr.to_pyarrow().to_pylist()
