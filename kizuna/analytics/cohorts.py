"""Cohorts and repeat purchases: monthly acquisition cohorts with their retention, the repeat-purchase rate, the
time between purchases, and second-purchase conversion by the category of the first purchase.

Definitions (tested in tests/analytics/test_cohorts.py):

- Counted orders: ``analytics.spend`` (completed, non-negative, one currency, active customers), placed up to
  the end of today. Future-dated orders are left out (they have not happened), and refunds (negative orders)
  are never purchases. A zero-value order is a purchase.
- Days and months are those of ``KIZUNA_DEFAULT_TIMEZONE``: an order at 23:30 JST on 31 January is January's.
- A purchase is a day with at least one counted order (several orders on one day are one purchase, as CLV
  counts purchase occasions).
- A customer's cohort is the month of their first counted order ever, not of their first order in the period.
  The period (``--from``/``--to``, days, inclusive) chooses which customers are shown: those whose first counted
  order falls in it, so a period that starts mid-month shows part of that month's cohort. What they bought
  afterwards counts up to today, after ``--to`` too.
- Retention: for each cohort and month offset 0..``months`` (0 = the cohort's own month), the customers with a
  purchase in that month, their share of the cohort, and the revenue of their counted orders. Offset 0 is every
  customer by definition. A month after the current one has not happened yet and is left empty (``None``); the
  current month is still running.
- Repeat rate: the share of the shown customers with at least two purchases (days); the share with at least two
  orders is given beside it.
- Time between purchases: the days between each purchase and the customer's previous one, over every purchase
  of the shown customers (a single-purchase customer has none); median, mean and a histogram.
- First category: the category of the first purchase (every counted order on the first day): the one with the
  most line amount, ties by name (the engine's string order); lines without a product or whose product has no
  category are ignored, and a first purchase with no categorised line is ``None`` ("uncategorised").
  Per category: customers, the share with a second purchase so far, and within 30/60/90 days of the first.
  A window counts only customers whose first purchase is at least that many days before today, so recent
  customers who have not had the time yet do not pull the share down.
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

WINDOWS = (30, 60, 90)
# Histogram of days between purchases: (first day, last day) of each bar, None = open-ended.
GAP_BUCKETS: tuple[tuple[int, int | None], ...] = (
    (1, 7),
    (8, 14),
    (15, 30),
    (31, 60),
    (61, 90),
    (91, 180),
    (181, 365),
    (366, None),
)


class CohortSpec(BaseModel):
    start: dt.date | None = Field(default=None, description="First day customers were acquired (default: all).")
    end: dt.date | None = Field(default=None, description="Last day customers were acquired (default: today).")
    currency: str | None = Field(default=None, description="Currency analysed (default: the configured one).")
    months: int = Field(default=12, ge=1, le=120, description="Month offsets shown after the cohort's month.")


class Cohort(BaseModel):
    month: str = Field(description="YYYY-MM: the month of these customers' first purchase.")
    customers: int
    active: list[int | None] = Field(description="active[k]: customers with a purchase k months after; None: later.")
    share: list[float | None]
    revenue: list[MoneyOut | None]


class RepeatRate(BaseModel):
    customers: int
    repeat_customers: int = Field(description="Customers with purchases on at least two days.")
    repeat_rate: float
    multi_order_customers: int = Field(description="Customers with at least two orders (on any days).")
    multi_order_rate: float


class GapBucket(BaseModel):
    min_days: int
    max_days: int | None
    gaps: int
    share: float


class TimeBetween(BaseModel):
    gaps: int = Field(description="Purchases after a customer's first one.")
    median_days: float | None
    mean_days: float | None
    buckets: list[GapBucket]


class ConversionWindow(BaseModel):
    days: int
    eligible: int = Field(description="Customers whose first purchase is at least `days` days before today.")
    converted: int = Field(description="Of those, customers with a second purchase within `days` days.")
    share: float | None


class CategoryConversion(BaseModel):
    category: str | None = Field(description="Top category of the first purchase; None: uncategorised.")
    customers: int
    repeat_customers: int
    repeat_share: float
    windows: list[ConversionWindow]


class CohortResult(BaseModel):
    spec: CohortSpec
    currency: str
    as_of: dt.date
    months: int
    cohorts: list[Cohort]
    repeat: RepeatRate
    time_between: TimeBetween
    categories: list[CategoryConversion]


def dated_orders(store: Store, currency: str, as_of: dt.date) -> ir.Table:
    """Counted orders up to the end of ``as_of`` with their local ``day`` number."""
    orders = counted_orders(store, SpendRule(currency=currency, start=None, end=periods.day_end(as_of)))
    return orders.mutate(day=periods.local_day(orders.at))


def purchase_days(orders: ir.Table) -> ir.Table:
    """One row per customer and purchase day of ``dated_orders``: ``customer_id, day, orders, revenue``."""
    return orders.group_by(["customer_id", "day"]).aggregate(orders=orders.count(), revenue=orders.amount.sum())


def acquired(days: ir.Table, first: int | None, last: int) -> ir.Table:
    """One row per customer whose first purchase day is in ``[first, last]`` (day numbers): ``customer_id,
    first_day, second_day`` (None without a second purchase), ``purchases`` (days) and ``orders``."""
    ranked = days.mutate(n=ibis.row_number().over(group_by=days.customer_id, order_by=days.day))
    per = ranked.group_by("customer_id").aggregate(
        first_day=ranked.day.min(),
        second_day=ranked.day.min(where=ranked.n == 1),
        purchases=ranked.count(),
        orders=ranked.orders.sum(),
    )
    condition = per.first_day <= last
    if first is not None:
        condition &= per.first_day >= first
    return per.filter(condition)


def retention(days: ir.Table, customers: ir.Table, months: int) -> ir.Table:
    """``cohort, offset, customers, revenue``: per cohort month and month offset 0..``months``, the customers
    with a purchase that month and the revenue of their orders (months as ``periods.month_number``)."""
    joined = days.join(customers.select("customer_id", "first_day"), "customer_id")
    cohort = periods.month_of_day(joined.first_day)
    joined = joined.mutate(cohort=cohort, offset=periods.month_of_day(joined.day) - cohort)
    joined = joined.filter(joined.offset <= months)
    return joined.group_by(["cohort", "offset"]).aggregate(
        customers=joined.customer_id.nunique(), revenue=joined.revenue.sum()
    )


def gaps(days: ir.Table, customers: ir.Table) -> ir.Table:
    """``gap, purchases``: how many purchases came ``gap`` days after the customer's previous one."""
    mine = days.join(customers.select("customer_id"), "customer_id")
    mine = mine.mutate(prev=mine.day.lag().over(group_by=mine.customer_id, order_by=mine.day))
    mine = mine.filter(mine.prev.notnull()).mutate(gap=(mine.day - mine.prev).cast("int64"))
    return mine.group_by("gap").aggregate(purchases=mine.count())


def first_categories(store: Store, orders: ir.Table, customers: ir.Table) -> ir.Table:
    """``customer_id, category``: the top category of each customer's first purchase (customers without a
    categorised line in it are absent)."""
    firsts = customers.select(first_customer=customers.customer_id, first_day=customers.first_day)
    first_orders = orders.join(
        firsts, [orders.customer_id == firsts.first_customer, orders.day == firsts.first_day]
    ).select(order_id=orders.id, customer_id=orders.customer_id)
    lines = store.order_lines()
    products = store.products()
    lines = lines.join(first_orders, "order_id").join(products, lines.product_id == products.id)
    lines = lines.filter(lines.category.notnull() & (lines.category != ""))
    spend = lines.group_by(["customer_id", "category"]).aggregate(spend=lines.amount.sum())
    spend = spend.mutate(
        rank=ibis.row_number().over(group_by=spend.customer_id, order_by=[spend.spend.desc(), spend.category.asc()])
    )
    return spend.filter(spend.rank == 0).select("customer_id", "category")


def conversion(store: Store, orders: ir.Table, customers: ir.Table, today: int) -> ir.Table:
    """Per first category (null: uncategorised): ``customers, repeat_customers, multi_order_customers`` and, per
    window N, ``eligible_N`` and ``converted_N``."""
    top = first_categories(store, orders, customers).rename(top_customer="customer_id")
    per = customers.left_join(top, customers.customer_id == top.top_customer)
    repeat = per.second_day.notnull()
    metrics: dict[str, Any] = {
        "customers": per.count(),
        "repeat_customers": per.count(where=repeat),
        "multi_order_customers": per.count(where=per.orders >= 2),
    }
    for n in WINDOWS:
        eligible = per.first_day <= today - n
        metrics[f"eligible_{n}"] = per.count(where=eligible)
        metrics[f"converted_{n}"] = per.count(where=eligible & repeat & (per.second_day - per.first_day <= n))
    return per.group_by("category").aggregate(**metrics)


def cohorts(store: Store, spec: CohortSpec) -> CohortResult:
    """Retention per monthly cohort, repeat rate, time between purchases and conversion by first category."""
    currency = default_currency(spec.currency)
    as_of = periods.today()
    periods.bounds(spec.start, spec.end)  # refuses a period that ends before it starts
    last = periods.day_number(spec.end or as_of)
    first = periods.day_number(spec.start) if spec.start else None
    today = periods.day_number(as_of)
    # The orders, purchase days and acquired customers are read and computed once for the three parts (each
    # read through the SQLite scanner is a pass over every order).
    with (
        dated_orders(store, currency, as_of).cache() as orders,
        purchase_days(orders).cache() as days,
        acquired(days, first, last).cache() as customers,
    ):
        return CohortResult(
            spec=spec,
            currency=currency,
            as_of=as_of,
            months=spec.months,
            cohorts=_cohorts(_rows(retention(days, customers, spec.months)), spec.months, periods.month_number(as_of)),
            **_conversion(_rows(conversion(store, orders, customers, today))),
            time_between=_time_between(_rows(gaps(days, customers))),
        )


def _cohorts(rows: list[dict[str, Any]], months: int, current: int) -> list[Cohort]:
    cells: dict[int, dict[int, dict[str, Any]]] = {}
    for row in rows:
        cells.setdefault(int(row["cohort"]), {})[int(row["offset"])] = row
    result = []
    for month in sorted(cells):
        size = int(cells[month][0]["customers"])
        active: list[int | None] = []
        revenue: list[Decimal | None] = []
        for offset in range(months + 1):
            if month + offset > current:
                active.append(None)
                revenue.append(None)
                continue
            cell = cells[month].get(offset)
            active.append(int(cell["customers"]) if cell else 0)
            revenue.append(_money(cell["revenue"]) if cell else Decimal("0.00"))
        result.append(
            Cohort(
                month=periods.month_label(month),
                customers=size,
                active=active,
                share=[a / size if a is not None else None for a in active],
                revenue=revenue,
            )
        )
    return result


def _conversion(rows: list[dict[str, Any]]) -> dict[str, Any]:
    # Uncategorised last; categories by customers, most first, then by name.
    rows = sorted(rows, key=lambda r: (r["category"] is None, -int(r["customers"]), r["category"] or ""))
    categories = []
    for row in rows:
        customers = int(row["customers"])
        windows = []
        for n in WINDOWS:
            eligible, converted = int(row[f"eligible_{n}"]), int(row[f"converted_{n}"])
            windows.append(
                ConversionWindow(
                    days=n, eligible=eligible, converted=converted, share=converted / eligible if eligible else None
                )
            )
        categories.append(
            CategoryConversion(
                category=row["category"],
                customers=customers,
                repeat_customers=int(row["repeat_customers"]),
                repeat_share=int(row["repeat_customers"]) / customers,
                windows=windows,
            )
        )
    total = sum(c.customers for c in categories)
    repeaters = sum(c.repeat_customers for c in categories)
    multi = sum(int(r["multi_order_customers"]) for r in rows)
    repeat = RepeatRate(
        customers=total,
        repeat_customers=repeaters,
        repeat_rate=repeaters / total if total else 0.0,
        multi_order_customers=multi,
        multi_order_rate=multi / total if total else 0.0,
    )
    return {"categories": categories, "repeat": repeat}


def _time_between(rows: list[dict[str, Any]]) -> TimeBetween:
    counts = sorted((int(r["gap"]), int(r["purchases"])) for r in rows)
    total = sum(c for _, c in counts)
    buckets = []
    for low, high in GAP_BUCKETS:
        n = sum(c for g, c in counts if g >= low and (high is None or g <= high))
        buckets.append(GapBucket(min_days=low, max_days=high, gaps=n, share=n / total if total else 0.0))
    if not total:
        return TimeBetween(gaps=0, median_days=None, mean_days=None, buckets=buckets)
    return TimeBetween(
        gaps=total,
        median_days=(_nth(counts, (total - 1) // 2) + _nth(counts, total // 2)) / 2,
        mean_days=sum(g * c for g, c in counts) / total,
        buckets=buckets,
    )


def _nth(counts: list[tuple[int, int]], index: int) -> int:
    """The ``index``-th (0-based) value of the sorted sample given as ``(value, count)`` pairs."""
    seen = 0
    for value, count in counts:
        seen += count
        if index < seen:
            return value
    raise IndexError(index)


def _money(value: Any) -> Decimal:
    return Decimal(value).quantize(Decimal("0.01"))


def _rows(expr: ir.Table) -> list[dict[str, Any]]:
    return expr.to_pyarrow().to_pylist()


# --- flat rows for CSV (the CLI and the UI's downloads write the same columns) ---


def retention_rows(result: CohortResult) -> list[dict[str, Any]]:
    """One row per cohort and month offset that has happened: the retention matrix in long form."""
    return [
        {
            "cohort": c.month,
            "cohort_customers": c.customers,
            "offset": offset,
            "customers": active,
            "share": round(share or 0.0, 6),
            f"revenue_{result.currency}": str(revenue),
        }
        for c in result.cohorts
        for offset, (active, share, revenue) in enumerate(zip(c.active, c.share, c.revenue, strict=True))
        if active is not None
    ]


def time_between_rows(result: CohortResult) -> list[dict[str, Any]]:
    return [
        {
            "min_days": b.min_days,
            "max_days": "" if b.max_days is None else b.max_days,
            "purchases": b.gaps,
            "share": round(b.share, 6),
        }
        for b in result.time_between.buckets
    ]


def category_rows(result: CohortResult) -> list[dict[str, Any]]:
    """One row per first category; ``category`` is empty for the uncategorised."""
    rows = []
    for c in result.categories:
        row: dict[str, Any] = {
            "category": c.category or "",
            "customers": c.customers,
            "repeat_customers": c.repeat_customers,
            "repeat_share": round(c.repeat_share, 6),
        }
        for w in c.windows:
            row[f"eligible_{w.days}d"] = w.eligible
            row[f"converted_{w.days}d"] = w.converted
            row[f"share_{w.days}d"] = "" if w.share is None else round(w.share, 6)
        rows.append(row)
    return rows
