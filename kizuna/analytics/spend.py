"""The orders that count as spend, as an Ibis expression: the same rule as ``orders.spend`` (one definition of
which statuses count and how refunds are treated), so the analytics agree with the 360 page's revenue."""

from __future__ import annotations

from dataclasses import dataclass

import ibis.expr.types as ir

from kizuna.analytics.engine import Store
from kizuna.config import get_settings
from kizuna.orders.spend import SPEND_STATUSES


@dataclass(frozen=True)
class SpendRule:
    """Which orders an analysis counts: one currency (money is never added across currencies), a period of
    epoch seconds ``[start, end)``, and whether refunds recorded as negative orders are netted in."""

    currency: str
    start: int | None
    end: int
    include_refunds: bool = False


def counted_orders(store: Store, rule: SpendRule) -> ir.Table:
    """Orders that count as spend under ``rule``, of customers that are active (not merged, not deleted)."""
    orders = store.orders()
    customers = store.customers()
    condition = orders.status.isin(list(SPEND_STATUSES)) & (orders.currency == rule.currency) & (orders.at < rule.end)
    if rule.start is not None:
        condition &= orders.at >= rule.start
    if not rule.include_refunds:
        condition &= orders.amount >= 0
    active = customers.filter(customers.status == "active").select(active_id=customers.id)
    counted = orders.filter(condition)
    return counted.join(active, counted.customer_id == active.active_id).drop("active_id")


def default_currency(currency: str | None) -> str:
    return (currency or get_settings().default_currency).upper()
