"""Spend: the one definition of what a customer paid, for the 360 summary, company totals and the analytics.

What counts (``counts_as_spend``):

- Orders whose status is in ``SPEND_STATUSES``: only ``completed``. ``pending`` is not money yet (it may still be
  cancelled; it counts once it completes), ``cancelled`` never was, and ``returned`` was given back: the importer
  maps a shop's ``refunded`` to ``returned``, so a fully refunded order is excluded as a whole.
- Orders with a negative total are refunds recorded as rows of their own; they are excluded by default (issue 13:
  "cancelled and returned orders and refunds are excluded from spend by default"). ``include_refunds=True`` nets
  them in instead, for a shop that records every refund that way.
- A zero-value order (a free sample) is an order with no spend: it counts in the order count, adds nothing.

Money in different currencies is never added together: every total is per currency (``SpendTotal``). A single
figure for a customer or a company is that of its main currency (``main_currency``): the configured default
currency when it has spend in it, else the currency with the most counted orders.

Amounts are summed by the database in the ``Money`` column type (integer cents on SQLite, NUMERIC on PostgreSQL),
so both backends give the exact same Decimal.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, and_, func, select
from sqlalchemy.orm import Session

from kizuna.config import get_settings
from kizuna.orders.models import Order

SPEND_STATUSES: tuple[str, ...] = ("completed",)


def counts_as_spend(order: Any = Order, *, include_refunds: bool = False) -> ColumnElement[bool]:
    """The condition on an order row (``Order`` or an alias/table of it) that it counts as spend."""
    condition = order.status.in_(SPEND_STATUSES)
    if include_refunds:
        return condition
    return and_(condition, order.total_amount >= 0)


@dataclass(frozen=True)
class SpendTotal:
    """What was spent in one currency: the sum, the number of counted orders and their first and last date."""

    currency: str
    amount: Decimal
    orders: int
    first_order_at: dt.datetime | None
    last_order_at: dt.datetime | None

    @property
    def average(self) -> Decimal | None:
        """The average order value in this currency (None when there are no counted orders)."""
        if not self.orders:
            return None
        return (self.amount / self.orders).quantize(Decimal("0.01"))


def spend_totals(
    session: Session, *, customer_ids: Iterable[int] | None = None, company_id: int | None = None
) -> list[SpendTotal]:
    """Spend per currency of some customers (or of every contact of ``company_id``), main currency first."""
    from kizuna.customers.models import Customer

    query = select(
        Order.currency,
        func.sum(Order.total_amount),
        func.count(Order.id),
        func.min(Order.ordered_at),
        func.max(Order.ordered_at),
    ).where(counts_as_spend())
    if customer_ids is not None:
        query = query.where(Order.customer_id.in_(sorted(set(customer_ids))))
    if company_id is not None:
        query = query.join(Customer, Customer.id == Order.customer_id).where(Customer.company_id == company_id)
    rows = session.execute(query.group_by(Order.currency)).all()
    totals = [
        SpendTotal(currency=cur, amount=amount or Decimal(0), orders=count, first_order_at=first, last_order_at=last)
        for cur, amount, count, first, last in rows
    ]
    main = main_currency(totals)
    return sorted(totals, key=lambda t: (t.currency != main, -t.orders, t.currency))


def main_currency(totals: Iterable[SpendTotal]) -> str | None:
    """The currency a single figure is shown in: the default currency when spent in, else the most-used one."""
    totals = list(totals)
    if not totals:
        return None
    default = get_settings().default_currency
    if any(t.currency == default for t in totals):
        return default
    return max(totals, key=lambda t: (t.orders, t.amount, t.currency)).currency
