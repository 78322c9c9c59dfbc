"""Decile analysis: customers with at least one counted order in a period, sorted by spend (highest first, ties
by customer id), cut into 10 groups of equal count, the first groups one larger when the count does not divide
by 10 (SQL's ``ntile``); decile 1 is the top. Per decile: customers, revenue, share and cumulative share of the
period's revenue, orders and average order value. Counted orders as in ``analytics.spend``."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import ibis
import ibis.expr.types as ir
from pydantic import BaseModel, Field

from kizuna.analytics import periods
from kizuna.analytics.engine import Store
from kizuna.analytics.rfm import _rows
from kizuna.analytics.spend import SpendRule, counted_orders, default_currency
from kizuna.schemas import MoneyOut

GROUPS = 10


class DecileSpec(BaseModel):
    start: dt.date | None = Field(default=None, description="First day of the period (inclusive; default: all).")
    end: dt.date | None = Field(default=None, description="Last day of the period (inclusive; default: today).")
    currency: str | None = Field(default=None, description="Currency analysed (default: the configured one).")
    include_refunds: bool = Field(default=False, description="Net refunds recorded as negative orders in.")


class Decile(BaseModel):
    decile: int
    customers: int
    revenue: MoneyOut
    orders: int
    share: float
    cumulative_share: float
    average_order_value: MoneyOut | None
    min_spend: MoneyOut
    max_spend: MoneyOut


class DecileResult(BaseModel):
    spec: DecileSpec
    currency: str
    customers: int
    revenue: MoneyOut
    deciles: list[Decile]


def customer_deciles(store: Store, spec: DecileSpec) -> tuple[ir.Table, str]:
    """One row per customer with spend in the period: ``customer_id, spend, orders, decile`` (1 = top)."""
    currency = default_currency(spec.currency)
    start, end = periods.bounds(spec.start, spec.end)
    orders = counted_orders(
        store, SpendRule(currency=currency, start=start, end=end, include_refunds=spec.include_refunds)
    )
    per = orders.group_by("customer_id").aggregate(spend=orders.amount.sum(), orders=orders.count())
    per = per.mutate(decile=ibis.ntile(GROUPS).over(order_by=[per.spend.desc(), per.customer_id.asc()]) + 1)
    return per, currency


def deciles(store: Store, spec: DecileSpec) -> DecileResult:
    per, currency = customer_deciles(store, spec)
    grouped = per.group_by("decile").aggregate(
        customers=per.count(),
        revenue=per.spend.sum(),
        orders=per.orders.sum(),
        min_spend=per.spend.min(),
        max_spend=per.spend.max(),
    )
    rows = sorted(_rows(grouped), key=lambda r: r["decile"])
    total = sum((Decimal(r["revenue"]) for r in rows), Decimal("0.00"))
    running = Decimal("0.00")
    result = []
    for row in rows:
        revenue = Decimal(row["revenue"]).quantize(Decimal("0.01"))
        running += revenue
        orders = int(row["orders"])
        result.append(
            Decile(
                decile=int(row["decile"]),
                customers=int(row["customers"]),
                revenue=revenue,
                orders=orders,
                share=float(revenue / total) if total else 0.0,
                cumulative_share=float(running / total) if total else 0.0,
                average_order_value=(revenue / orders).quantize(Decimal("0.01")) if orders else None,
                min_spend=Decimal(row["min_spend"]).quantize(Decimal("0.01")),
                max_spend=Decimal(row["max_spend"]).quantize(Decimal("0.01")),
            )
        )
    return DecileResult(
        spec=spec,
        currency=currency,
        customers=sum(d.customers for d in result),
        revenue=total.quantize(Decimal("0.01")),
        deciles=result,
    )
