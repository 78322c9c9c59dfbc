"""The persisted per-customer metrics (``customer_metrics``): computed from the store in one pass and written
back in one transaction, so lists, exports, segments and the 360 page read the same numbers.

What a refresh computes, for every active customer with a counted order (``analytics.spend``) up to the as-of
day, in the metrics currency (``KIZUNA_DEFAULT_CURRENCY`` unless given):

- ``order_count``, ``total_spend``, ``first_order_at``, ``last_order_at`` (to the second): over all counted
  orders to date;
- ``r, f, m`` and ``rfm_segment``: RFM as ``analytics.rfm`` computes it with the same spec (so the RFM page,
  the persisted scores and segments over them agree);
- ``decile``: the decile of ``total_spend`` as ``analytics.deciles`` cuts it over all orders to date (1 = top);
- ``top_category``: the product category with the most spend in the customer's counted orders (ties by name;
  lines without a product or a category count for none).

Customers who no longer qualify (merged, deleted, every order cancelled) lose their row. The CLV columns are
written by the CLV run and kept across score refreshes.

On the default engine (DuckDB attached to the store) the rows go straight from DuckDB into the store through
the same attachment, so nothing passes through Python; another analytics backend (``KIZUNA_ANALYTICS_URL``)
hands its rows back through SQLAlchemy.
"""

from __future__ import annotations

import datetime as dt
import time
from decimal import Decimal
from typing import Any

import ibis
import ibis.expr.types as ir
from pydantic import BaseModel, Field
from sqlalchemy import bindparam, delete, func, insert, select, update
from sqlalchemy.engine import Engine

from kizuna.analytics import rfm as rfm_analysis
from kizuna.analytics.engine import Store
from kizuna.analytics.models import CustomerMetrics, MetricRun
from kizuna.analytics.spend import SpendRule, counted_orders
from kizuna.db import transaction, utcnow

DECILES = 10
# Columns a score refresh writes, in the table's order; the CLV columns follow and are carried over.
SCORE_COLUMNS = (
    "customer_id",
    "currency",
    "order_count",
    "total_spend",
    "first_order_at",
    "last_order_at",
    "r",
    "f",
    "m",
    "rfm_segment",
    "decile",
    "top_category",
    "computed_at",
)
CLV_COLUMNS = ("expected_purchases", "p_alive", "churn_risk", "clv", "clv_computed_at")


class MetricsSpec(BaseModel):
    as_of: dt.date | None = Field(default=None, description="Day the metrics are computed at (default: today).")
    bins: int = Field(default=5, ge=2, le=10, description="RFM score groups per dimension.")
    currency: str | None = Field(default=None, description="Currency of the metrics (default: the configured one).")
    include_refunds: bool = Field(default=False, description="Net refunds recorded as negative orders in.")


class MetricsRun(BaseModel):
    id: int
    kind: str
    as_of: dt.date
    currency: str
    customers: int
    changed: int = Field(description="Rows added, removed, or whose scores, segment or decile changed.")
    seconds: float
    finished_at: dt.datetime


def metrics_table(store: Store, spec: MetricsSpec) -> tuple[ir.Table, dt.date, str]:
    """One Ibis expression with a row per customer: every score column except ``computed_at`` and the currency
    (times as epoch seconds, money as decimal)."""
    rfm_spec = rfm_analysis.RFMSpec(
        as_of=spec.as_of, bins=spec.bins, currency=spec.currency, include_refunds=spec.include_refunds
    )
    per, as_of, currency = rfm_analysis.scored(store, rfm_spec)
    per = per.mutate(
        decile=ibis.ntile(DECILES).over(order_by=[per.monetary.desc(), per.customer_id.asc()]) + 1,
    )
    top = _top_category(store, SpendRule(currency=currency, start=None, end=_end(as_of), include_refunds=False))
    joined = per.left_join(top, per.customer_id == top.top_customer_id)
    table = joined.select(
        customer_id=joined.customer_id,
        order_count=joined.frequency,
        total_spend=joined.monetary,
        first_at=joined.first_at,
        last_at=joined.last_at,
        r=joined.r,
        f=joined.f,
        m=joined.m,
        rfm_segment=joined.segment,
        decile=joined.decile,
        top_category=joined.top_category,
    )
    return table, as_of, currency


def _end(as_of: dt.date) -> int:
    from kizuna.analytics import periods

    return periods.day_end(as_of)


def _top_category(store: Store, rule: SpendRule) -> ir.Table:
    orders = counted_orders(store, rule).select("id", "customer_id")
    lines = store.order_lines()
    products = store.products().filter(lambda p: p.category.notnull())
    spent = (
        lines.join(orders, lines.order_id == orders.id)
        .join(products, lines.product_id == products.id)
        .group_by(["customer_id", "category"])
        .aggregate(spend=lambda t: t.amount.sum())
    )
    rank = ibis.row_number().over(group_by=spent.customer_id, order_by=[spent.spend.desc(), spent.category.asc()])
    ranked = spent.mutate(rank=rank)
    best = ranked.filter(ranked.rank == 0)
    return best.select(top_customer_id=best.customer_id, top_category=best.category)


def refresh(store: Store, engine: Engine, spec: MetricsSpec) -> MetricsRun:
    """Compute the metrics and replace the persisted ones in one transaction; record the run."""
    started = time.perf_counter()
    started_at = utcnow()
    table, as_of, currency = metrics_table(store, spec)
    if store.name == "duckdb+postgres":
        customers, changed = _write_from_duckdb(store, table, currency, started_at)
    elif store.name == "duckdb+sqlite":
        customers, changed = _write_sqlite(store, engine, table, currency, started_at)
    else:
        customers, changed = _write_through_python(engine, table, currency, started_at)
    seconds = time.perf_counter() - started
    with transaction(engine) as session:
        run = MetricRun(
            kind="scores",
            started_at=started_at,
            finished_at=utcnow(),
            customers=customers,
            changed=changed,
            seconds=seconds,
            details={**spec.model_dump(mode="json"), "as_of": as_of.isoformat(), "currency": currency},
        )
        session.add(run)
        session.flush()
        return MetricsRun(
            id=run.id,
            kind=run.kind,
            as_of=as_of,
            currency=currency,
            customers=customers,
            changed=changed,
            seconds=seconds,
            finished_at=run.finished_at or started_at,
        )


def _write_from_duckdb(store: Store, table: ir.Table, currency: str, now: dt.datetime) -> tuple[int, int]:
    """PostgreSQL: INSERT ... SELECT from DuckDB into the attached store, in one transaction of the store.

    (Not on SQLite: a second SQLite library writing the file from inside our process would break the locks of
    our own connections, which POSIX ties to the process; ``_write_sqlite`` writes there instead.)
    """
    raw = store.con.con
    target = f"{store.database}.customer_metrics"
    raw.execute("DROP TABLE IF EXISTS kz_metrics_new")
    raw.execute(f"CREATE TEMP TABLE kz_metrics_new AS {store.con.compile(table)}")
    stamp = now.astimezone(dt.UTC).timestamp()
    # The old rows' CLV columns are carried over (read before the delete, in the same store transaction).
    raw.execute("BEGIN")
    try:
        raw.execute("DROP TABLE IF EXISTS kz_metrics_old")
        raw.execute(
            "CREATE TEMP TABLE kz_metrics_old AS SELECT customer_id, r, f, m, rfm_segment, decile, "
            f"{', '.join(CLV_COLUMNS)} FROM {target}"
        )
        changed = raw.execute(_CHANGED.format(new="kz_metrics_new", old="kz_metrics_old")).fetchone()[0]
        customers = raw.execute("SELECT count(*) FROM kz_metrics_new").fetchone()[0]
        columns = ", ".join((*SCORE_COLUMNS, *CLV_COLUMNS))
        raw.execute(f"DELETE FROM {target}")
        raw.execute(
            f"INSERT INTO {target} ({columns}) SELECT n.customer_id, '{currency}', n.order_count, n.total_spend, "
            "to_timestamp(floor(n.first_at)), to_timestamp(floor(n.last_at)), n.r, n.f, n.m, n.rfm_segment, n.decile, "
            f"n.top_category, to_timestamp({stamp!r}), "
            f"{', '.join('o.' + c for c in CLV_COLUMNS)} "
            "FROM kz_metrics_new n LEFT JOIN kz_metrics_old o ON n.customer_id = o.customer_id"
        )
        raw.execute("COMMIT")
    except BaseException:
        raw.execute("ROLLBACK")
        raise
    return int(customers), int(changed)


# Rows added, removed, or whose scores changed between two tables of (customer_id, r, f, m, rfm_segment, decile).
_CHANGED = (
    "SELECT count(*) FROM {new} n FULL JOIN {old} o ON n.customer_id = o.customer_id "
    "WHERE n.customer_id IS NULL OR o.customer_id IS NULL OR n.r <> o.r OR n.f <> o.f OR n.m <> o.m "
    "OR n.rfm_segment <> o.rfm_segment OR n.decile <> o.decile"
)


def _write_sqlite(store: Store, engine: Engine, table: ir.Table, currency: str, now: dt.datetime) -> tuple[int, int]:
    """SQLite: DuckDB computes the rows in the store's own formats (integer cents, SQLAlchemy's UTC text), our
    own connection stages them in a temporary table and merges them in one transaction: rows of customers who
    no longer qualify are deleted, the others upserted, which leaves their CLV columns as they were."""
    stamp = f"{now.astimezone(dt.UTC):%Y-%m-%d %H:%M:%S.%f}"

    def at(column: str) -> str:
        return f"strftime(make_timestamp(CAST({column} AS BIGINT) * 1000000), '%Y-%m-%d %H:%M:%S.%f')"

    formatted = (
        f"SELECT customer_id, '{currency}', order_count, CAST(round(total_spend * 100) AS BIGINT), "
        f"{at('first_at')}, {at('last_at')}, r, f, m, rfm_segment, decile, top_category, '{stamp}' "
        f"FROM ({store.con.compile(table)})"
    )
    rows = store.con.con.execute(formatted).fetchall()
    columns = ", ".join(SCORE_COLUMNS)
    updates = ", ".join(f"{c} = excluded.{c}" for c in SCORE_COLUMNS if c != "customer_id")
    with engine.begin() as conn:
        cursor = conn.connection.driver_connection.cursor()
        cursor.execute("DROP TABLE IF EXISTS temp.kz_metrics_new")
        cursor.execute(
            f"CREATE TEMP TABLE kz_metrics_new ({columns.replace('customer_id', 'customer_id INTEGER PRIMARY KEY')})"
        )
        cursor.executemany(f"INSERT INTO temp.kz_metrics_new VALUES ({', '.join('?' * len(SCORE_COLUMNS))})", rows)
        changed = cursor.execute(_CHANGED.format(new="temp.kz_metrics_new", old="customer_metrics")).fetchone()[0]
        cursor.execute("DELETE FROM customer_metrics WHERE customer_id NOT IN (SELECT customer_id FROM kz_metrics_new)")
        cursor.execute(
            f"INSERT INTO customer_metrics ({columns}) SELECT {columns} FROM temp.kz_metrics_new WHERE true "
            f"ON CONFLICT (customer_id) DO UPDATE SET {updates}"
        )
        cursor.execute("DROP TABLE temp.kz_metrics_new")
    return len(rows), int(changed)


def _write_through_python(engine: Engine, table: ir.Table, currency: str, now: dt.datetime) -> tuple[int, int]:
    """Rows fetched from another analytics backend, written through SQLAlchemy (its types do the formats)."""
    rows = table.to_pyarrow().to_pylist()
    with transaction(engine) as session:
        old = {
            row.customer_id: row
            for row in session.execute(
                select(CustomerMetrics.customer_id, CustomerMetrics.r, CustomerMetrics.f, CustomerMetrics.m,
                       CustomerMetrics.rfm_segment, CustomerMetrics.decile,
                       *(getattr(CustomerMetrics, c) for c in CLV_COLUMNS))
            )
        }  # fmt: skip
        values: list[dict[str, Any]] = []
        changed = 0
        for row in rows:
            before = old.pop(row["customer_id"], None)
            scores = (row["r"], row["f"], row["m"], row["rfm_segment"], row["decile"])
            if before is None or (before.r, before.f, before.m, before.rfm_segment, before.decile) != scores:
                changed += 1
            values.append(
                {
                    "customer_id": row["customer_id"],
                    "currency": currency,
                    "order_count": row["order_count"],
                    "total_spend": Decimal(row["total_spend"]),
                    "first_order_at": dt.datetime.fromtimestamp(int(row["first_at"]), dt.UTC),
                    "last_order_at": dt.datetime.fromtimestamp(int(row["last_at"]), dt.UTC),
                    "r": row["r"],
                    "f": row["f"],
                    "m": row["m"],
                    "rfm_segment": row["rfm_segment"],
                    "decile": row["decile"],
                    "top_category": row["top_category"],
                    "computed_at": now,
                    **{c: getattr(before, c) if before is not None else None for c in CLV_COLUMNS},
                }
            )
        changed += len(old)
        session.execute(delete(CustomerMetrics))
        if values:
            session.execute(insert(CustomerMetrics), values)
    return len(values), changed


def save_clv(engine: Engine, params: Any, rows: list[Any], *, seconds: float = 0.0) -> MetricsRun:
    """Write a CLV run's per-customer predictions into the persisted metrics (rows that exist: customers with a
    counted order at the last score refresh) and record the run with its fitted parameters."""
    started_at = utcnow()
    values = [
        {
            "cid": row.customer_id,
            "expected_purchases": row.expected_purchases,
            "p_alive": row.p_alive,
            "churn_risk": row.churn_risk,
            "clv": row.clv,
            "clv_computed_at": started_at,
        }
        for row in rows
    ]
    table = CustomerMetrics.__table__
    with transaction(engine) as session:
        if values:
            session.execute(
                update(table).where(table.c.customer_id == bindparam("cid")),
                values,
                execution_options={"synchronize_session": False},
            )
        saved = session.scalar(select(func.count()).where(CustomerMetrics.clv_computed_at == started_at)) or 0
        run = MetricRun(
            kind="clv",
            started_at=started_at,
            finished_at=utcnow(),
            customers=saved,
            changed=saved,
            seconds=seconds,
            details=params.model_dump(mode="json"),
        )
        session.add(run)
        session.flush()
        return MetricsRun(
            id=run.id,
            kind="clv",
            as_of=params.calibration_end,
            currency=params.currency,
            customers=saved,
            changed=saved,
            seconds=seconds,
            finished_at=run.finished_at or started_at,
        )
