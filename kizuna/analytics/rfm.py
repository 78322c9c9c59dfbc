"""RFM: recency, frequency and monetary scores per customer, and the named segments they fall in.

Definitions (tested in tests/analytics/test_rfm.py):

- Counted orders: ``analytics.spend`` (completed, non-negative, one currency, active customers), placed on or
  before the as-of day (and on or after ``from`` when given). Customers without a counted order get no score.
- Recency: whole days from the customer's last counted order to the end of the as-of day, in the configured time
  zone (an order on the as-of day has recency 0). Frequency: counted orders. Monetary: their sum.
- Scores 1..``bins`` (5 by default), ``bins`` best: customers are sorted best first (most recent; most orders;
  most spend), ties by customer id, and cut into ``bins`` groups of equal count, the first groups one larger
  when the count does not divide (SQL's ``ntile``, as the deciles).
- Segments from R and F on a 1–5 scale (other bin counts are rescaled: ``ceil(score * 5 / bins)``): the grid in
  ``SEGMENT_GRID``, eleven names, every cell covered once.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import ibis
import ibis.expr.types as ir
from pydantic import BaseModel, Field

from kizuna.analytics import periods
from kizuna.analytics.engine import Store
from kizuna.analytics.spend import SpendRule, counted_orders, default_currency
from kizuna.schemas import MoneyOut

SEGMENTS = (
    "champions",
    "loyal",
    "potential_loyalist",
    "new",
    "promising",
    "need_attention",
    "about_to_sleep",
    "at_risk",
    "cant_lose",
    "hibernating",
    "lost",
)
# (segment, recency scores, frequency scores) on the 1–5 scale; together the rows cover the 5×5 grid once
# (a test checks it), so the order of the rows does not matter.
SEGMENT_GRID: tuple[tuple[str, tuple[int, ...], tuple[int, ...]], ...] = (
    ("champions", (5,), (4, 5)),
    ("loyal", (3, 4), (4, 5)),
    ("potential_loyalist", (4, 5), (2, 3)),
    ("new", (5,), (1,)),
    ("promising", (4,), (1,)),
    ("need_attention", (3,), (3,)),
    ("about_to_sleep", (3,), (1, 2)),
    ("cant_lose", (1, 2), (5,)),
    ("at_risk", (1, 2), (3, 4)),
    ("hibernating", (2,), (1, 2)),
    ("hibernating", (1,), (2,)),
    ("lost", (1,), (1,)),
)


class RFMSpec(BaseModel):
    as_of: dt.date | None = Field(default=None, description="Day the scores are computed at (default: today).")
    start: dt.date | None = Field(default=None, description="Only orders from this day on (default: all).")
    bins: int = Field(default=5, ge=2, le=10, description="Score groups per dimension.")
    currency: str | None = Field(default=None, description="Currency analysed (default: the configured one).")
    include_refunds: bool = Field(default=False, description="Net refunds recorded as negative orders in.")


class RFMScore(BaseModel):
    customer_id: int
    recency_days: int
    frequency: int
    monetary: MoneyOut
    r: int
    f: int
    m: int
    segment: str


class RFMSegment(BaseModel):
    segment: str
    customers: int
    revenue: MoneyOut
    share_of_customers: float
    share_of_revenue: float


class RFMResult(BaseModel):
    spec: RFMSpec
    as_of: dt.date
    currency: str
    customers: int
    revenue: MoneyOut
    segments: list[RFMSegment]
    grid: list[list[int]] = Field(description="grid[r-1][f-1]: customers with recency score r and frequency score f.")


def _scale(score: ir.IntegerValue, bins: int) -> ir.IntegerValue:
    return score if bins == 5 else (score * 5 / bins).ceil().cast("int64")


def _segment(r5: ir.IntegerValue, f5: ir.IntegerValue) -> ir.StringValue:
    case = ibis.cases(*[(r5.isin(list(rs)) & f5.isin(list(fs)), name) for name, rs, fs in SEGMENT_GRID])
    return case


def scored(store: Store, spec: RFMSpec) -> tuple[ir.Table, dt.date, str]:
    """Every scored customer with all that was computed on the way: ``customer_id, first_at, last_at`` (epoch
    seconds), ``recency_days, frequency, monetary, r, f, m, segment`` (the persisted metrics start from here)."""
    as_of = spec.as_of or periods.today()
    currency = default_currency(spec.currency)
    start, end = periods.bounds(spec.start, as_of)
    orders = counted_orders(
        store, SpendRule(currency=currency, start=start, end=end, include_refunds=spec.include_refunds)
    )
    per = orders.group_by("customer_id").aggregate(
        first_at=orders.at.min(), last_at=orders.at.max(), frequency=orders.count(), monetary=orders.amount.sum()
    )
    # ``end`` is the first second after the as-of day, so the day's own seconds are end-86400 .. end-1: all 0 days.
    per = per.mutate(recency_days=((end - 1 - per.last_at) // 86400).cast("int64"))
    bins = spec.bins
    # ntile is 0-based in Ibis: group 0 holds the best customers, who get the top score.
    per = per.mutate(
        r=bins - ibis.ntile(bins).over(order_by=[per.recency_days.asc(), per.customer_id.asc()]),
        f=bins - ibis.ntile(bins).over(order_by=[per.frequency.desc(), per.customer_id.asc()]),
        m=bins - ibis.ntile(bins).over(order_by=[per.monetary.desc(), per.customer_id.asc()]),
    )
    per = per.mutate(segment=_segment(_scale(per.r, bins), _scale(per.f, bins)))
    return per, as_of, currency


def scores(store: Store, spec: RFMSpec) -> tuple[ir.Table, dt.date, str]:
    """One Ibis expression: a row per scored customer (``customer_id, recency_days, frequency, monetary, r, f, m,
    segment``), with the as-of day and currency it was computed for."""
    per, as_of, currency = scored(store, spec)
    table = per.select("customer_id", "recency_days", "frequency", "monetary", "r", "f", "m", "segment")
    return table, as_of, currency


def rfm(store: Store, spec: RFMSpec) -> RFMResult:
    """RFM scores summarised: customers and revenue per named segment, and the R×F grid of counts."""
    table, as_of, currency = scores(store, spec)
    by_segment = table.group_by("segment").aggregate(customers=table.count(), revenue=table.monetary.sum())
    by_cell = table.group_by(["r", "f"]).aggregate(customers=table.count())
    segment_rows = {row["segment"]: row for row in _rows(by_segment)}
    total_customers = sum(int(r["customers"]) for r in segment_rows.values())
    total_revenue = sum((Decimal(r["revenue"]) for r in segment_rows.values()), Decimal("0.00"))
    segments = []
    for name in SEGMENTS:
        row = segment_rows.get(name, {"customers": 0, "revenue": Decimal("0.00")})
        revenue = Decimal(row["revenue"] or 0).quantize(Decimal("0.01"))
        segments.append(
            RFMSegment(
                segment=name,
                customers=int(row["customers"]),
                revenue=revenue,
                share_of_customers=(int(row["customers"]) / total_customers) if total_customers else 0.0,
                share_of_revenue=float(revenue / total_revenue) if total_revenue else 0.0,
            )
        )
    grid = [[0] * spec.bins for _ in range(spec.bins)]
    for row in _rows(by_cell):
        grid[int(row["r"]) - 1][int(row["f"]) - 1] = int(row["customers"])
    return RFMResult(
        spec=spec,
        as_of=as_of,
        currency=currency,
        customers=total_customers,
        revenue=total_revenue.quantize(Decimal("0.01")),
        segments=segments,
        grid=grid,
    )


def customer_scores(store: Store, spec: RFMSpec) -> list[RFMScore]:
    """Every scored customer's row, by customer id (for exports and the CLI's CSV)."""
    table, _, _ = scores(store, spec)
    return [RFMScore(**row) for row in _rows(table.order_by("customer_id"))]


def _rows(expr: ir.Table) -> list[dict[str, Any]]:
    return expr.to_pyarrow().to_pylist()
