"""The persisted per-customer metrics (``customer_metrics``): computed from the store and written back in one
transaction, so lists, exports, segments and the 360 page read the same numbers.

What a refresh computes, for every active customer with a counted order (``analytics.spend``) up to the as-of
day, in the metrics currency (``KIZUNA_DEFAULT_CURRENCY`` unless given):

- ``order_count``, ``total_spend``, ``first_order_at``, ``last_order_at`` (to the second): over all counted
  orders to date;
- ``r, f, m`` and ``rfm_segment``: RFM as ``analytics.rfm`` computes it with the same spec (so the RFM page,
  the persisted scores and segments over them agree);
- ``decile``: the decile of ``total_spend`` as ``analytics.deciles`` cuts it over all orders to date (1 = top).

With ``categories`` (the daily run and ``kizuna analytics refresh``), also ``top_category``: the product
category with the most spend in the customer's counted orders (ties by name; lines without a product or a
category count for none). It reads every order line, so the refresh the worker runs a minute after new orders
leaves it to the daily one.

Only rows whose values changed are written: a refresh compares what it computed with what is stored, inserts
and updates those rows (``computed_at`` is when a row's values were last written) and deletes the rows of
customers who no longer qualify (merged, deleted, every order cancelled); the run itself (``metric_runs``) says
when the whole table was last checked. The CLV columns are written by the CLV run and kept by the others.
Each run ends with a ``metrics.refreshed`` outbox message, and each removed row with a ``metrics.removed``
message naming its customer, in the transaction that records the run: incremental segment refreshes follow
them (segments/changes.py).
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import ibis
import ibis.expr.types as ir
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, Field
from sqlalchemy import bindparam, func, select, update
from sqlalchemy.engine import Connection, Engine

from kizuna.analytics import periods
from kizuna.analytics import rfm as rfm_analysis
from kizuna.analytics.bulk import insert_arrow
from kizuna.analytics.engine import Store, epoch_seconds
from kizuna.analytics.models import CustomerMetrics, MetricRun
from kizuna.analytics.spend import SpendRule, counted_orders
from kizuna.db import take_write_lock, transaction, utcnow
from kizuna.imports.bulk import sorting_threads
from kizuna.outbox.service import emit, emit_many

DECILES = 10
# The columns a score refresh computes (times as epoch seconds, money as decimal), in this order.
VALUES = ("order_count", "total_spend", "first_at", "last_at", "r", "f", "m", "rfm_segment", "decile")
CLV_COLUMNS = ("expected_purchases", "p_alive", "churn_risk", "clv", "clv_computed_at")
# Outbox topics: a run finished (its MetricsRun as payload); a customer's row was removed by a run.
REFRESHED = "metrics.refreshed"
REMOVED = "metrics.removed"


class MetricsSpec(BaseModel):
    as_of: dt.date | None = Field(default=None, description="Day the metrics are computed at (default: today).")
    bins: int = Field(default=5, ge=2, le=10, description="RFM score groups per dimension.")
    currency: str | None = Field(default=None, description="Currency of the metrics (default: the configured one).")
    include_refunds: bool = Field(default=False, description="Net refunds recorded as negative orders in.")
    categories: bool = Field(default=True, description="Also each customer's top category (reads every line).")


class MetricsRun(BaseModel):
    id: int
    kind: str
    as_of: dt.date
    currency: str
    customers: int
    changed: int = Field(description="Rows added, removed, or whose values changed.")
    seconds: float
    finished_at: dt.datetime


def metrics_table(store: Store, spec: MetricsSpec) -> tuple[ir.Table, dt.date, str]:
    """One Ibis expression with a row per customer: ``customer_id`` and ``VALUES``."""
    rfm_spec = rfm_analysis.RFMSpec(
        as_of=spec.as_of, bins=spec.bins, currency=spec.currency, include_refunds=spec.include_refunds
    )
    per, as_of, currency = rfm_analysis.scored(store, rfm_spec)
    per = per.mutate(
        decile=ibis.ntile(DECILES).over(order_by=[per.monetary.desc(), per.customer_id.asc()]) + 1,
    )
    table = per.select(
        customer_id=per.customer_id,
        order_count=per.frequency,
        total_spend=per.monetary,
        first_at=per.first_at,
        last_at=per.last_at,
        r=per.r,
        f=per.f,
        m=per.m,
        rfm_segment=per.segment,
        decile=per.decile,
    )
    return table, as_of, currency


def stored_table(store: Store) -> ir.Table:
    """What ``customer_metrics`` holds, in ``metrics_table``'s shape (to compare the two)."""
    t = store.table("customer_metrics")
    return t.select(
        customer_id=t.customer_id,
        order_count=t.order_count,
        total_spend=store.money(t.total_spend),
        first_at=epoch_seconds(t.first_order_at),
        last_at=epoch_seconds(t.last_order_at),
        r=t.r,
        f=t.f,
        m=t.m,
        rfm_segment=t.rfm_segment,
        decile=t.decile,
        top_category=t.top_category,
    )


def top_categories(store: Store, currency: str, as_of: dt.date) -> ir.Table:
    """``customer_id, top_category``: the category with the most spend in the customer's counted orders."""
    rule = SpendRule(currency=currency, start=None, end=periods.day_end(as_of), include_refunds=False)
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
    return best.select(customer_id=best.customer_id, top_category=best.category)


@dataclass
class Computed:
    """What a refresh computed, ready to write: it travels back from the analytics' child process (engine.py)."""

    as_of: dt.date
    currency: str
    customers: int
    rows: pa.Table
    removed: list[int]


def compute(store: Store, spec: MetricsSpec) -> Computed:
    """The metrics as they should be, compared with the stored ones: the rows to write and the rows to drop."""
    table, as_of, currency = metrics_table(store, spec)
    if spec.categories:
        top = top_categories(store, currency, as_of)
        table = table.left_join(top, table.customer_id == top.customer_id).drop("customer_id_right")
    # Computed once, then counted and compared with the stored rows (an expression would be recomputed per use).
    with table.cache() as computed:
        customers = int(computed.count().execute())
        rows, removed = _changes(store, computed, categories=spec.categories)
    return Computed(as_of=as_of, currency=currency, customers=customers, rows=rows, removed=removed)


def refresh(store: Store, engine: Engine, spec: MetricsSpec) -> MetricsRun:
    """Compute the metrics on ``store``, write the rows that changed in one transaction, and record the run."""
    started = time.perf_counter()
    started_at = utcnow()
    return apply(engine, compute(store, spec), spec, started_at=started_at, started=started)


def refresh_on(engine: Engine, spec: MetricsSpec) -> MetricsRun:
    """``refresh`` of the metrics of the store behind ``engine`` (computed in the analytics' child process when
    DuckDB reads a SQLite store: see ``engine.run_on_store``)."""
    from kizuna.analytics.engine import run_on_store

    started = time.perf_counter()
    started_at = utcnow()
    computed = run_on_store(compute, spec, database_url=engine.url.render_as_string(hide_password=False))
    return apply(engine, computed, spec, started_at=started_at, started=started)


def apply(
    engine: Engine, computed: Computed, spec: MetricsSpec, *, started_at: dt.datetime, started: float
) -> MetricsRun:
    changed = _write(engine, computed.rows, computed.removed, computed.currency, started_at)
    seconds = time.perf_counter() - started
    as_of, currency, customers = computed.as_of, computed.currency, computed.customers
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
        result = MetricsRun(
            id=run.id,
            kind=run.kind,
            as_of=as_of,
            currency=currency,
            customers=customers,
            changed=changed,
            seconds=seconds,
            finished_at=run.finished_at or started_at,
        )
        # Segments over the metrics re-evaluate on these: the rows this run wrote (computed_at from its start,
        # announced once) and, one message each, the customers whose row it removed (nothing left to find).
        emit_many(
            session,
            REMOVED,
            [({"customer_id": i, "run_id": run.id}, i, None) for i in computed.removed],
            origin="system",
        )
        emit(session, REFRESHED, result.model_dump(mode="json"))
        return result


def _changes(store: Store, table: ir.Table, *, categories: bool) -> tuple[pa.Table, list[int]]:
    """The computed rows that differ from the stored ones, and the ids of stored rows no longer computed.

    Compared by the engine (both sides are expressions on the same backend), so only changes leave it."""
    old = stored_table(store)
    columns = (*VALUES, "top_category") if categories else VALUES
    # In key order: a join's rows come out in any order, and a million rows upserted in random key order made
    # SQLite touch the table's and indexes' pages at random, far beyond its page cache.
    if int(old.limit(1).count().execute()) == 0:
        # A first refresh: every row is new, and the comparison (a join of a million rows) would say only that.
        return table.select("customer_id", *columns).order_by("customer_id").to_pyarrow(), []
    joined = table.left_join(old, table.customer_id == old.customer_id)
    differs = ibis.or_(*(~joined[c].identical_to(joined[f"{c}_right"]) for c in columns))
    changed = joined.filter(joined.customer_id_right.isnull() | differs).select("customer_id", *columns)
    gone = old.anti_join(table, old.customer_id == table.customer_id).select("customer_id")
    return changed.order_by("customer_id").to_pyarrow(), gone.to_pyarrow().column("customer_id").to_pylist()


def _store_rows(rows: pa.Table, sqlite_store: bool) -> pa.Table:
    """``_changes``' rows in ``customer_metrics``' columns and the store's formats (what ``db.MoneyType`` and
    ``db.UTCDateTime`` would bind), computed column by column in Arrow."""
    out = rows.drop_columns(["first_at", "last_at", "total_spend"])
    spend = rows.column("total_spend").cast(pa.decimal128(18, 2))
    if sqlite_store:
        out = out.append_column("total_spend", pc.multiply(spend, pa.scalar(100, pa.int64())).cast(pa.int64()))
        for source, target in (("first_at", "first_order_at"), ("last_at", "last_order_at")):
            # Whole seconds as UTCDateTime's text (``db.sqlite_time``): a cast and a join, where ``strftime`` took
            # 1.4 s per column at a million rows. pyarrow's ``%S`` prints the microseconds; the cast does not.
            whole = rows.column(source).cast(pa.int64()).cast(pa.timestamp("s")).cast(pa.string())
            out = out.append_column(target, pc.binary_join_element_wise(whole, pa.scalar(".000000"), pa.scalar("")))
        return out
    out = out.append_column("total_spend", spend)
    for source, target in (("first_at", "first_order_at"), ("last_at", "last_order_at")):
        micros = pc.multiply(rows.column(source).cast(pa.int64()), 1_000_000)
        out = out.append_column(target, micros.cast(pa.timestamp("us", tz="UTC")))
    return out


def _write(engine: Engine, rows: pa.Table, removed: list[int], currency: str, now: dt.datetime) -> int:
    """Upsert the changed rows and delete the gone ones, in one transaction of the store (the CLV columns, and
    the top category unless computed, are left as they are).

    A first refresh writes every customer, so the rows go to the driver in bulk (``analytics.bulk``), not one
    ORM parameter set at a time."""
    if rows.num_rows == 0 and not removed:
        return 0
    dialect = engine.dialect.name
    sqlite_store = dialect == "sqlite"
    values = _store_rows(rows, sqlite_store)
    constants = {
        "currency": currency,
        "computed_at": f"{now.astimezone(dt.UTC):%Y-%m-%d %H:%M:%S.%f}" if sqlite_store else now,
    }
    columns = [*values.column_names, *constants]
    updates = ", ".join(f"{c} = excluded.{c}" for c in columns if c != "customer_id")
    with engine.begin() as conn:
        # SQLite: the write lock first, and an explicit transaction, so the index drop below is part of it.
        take_write_lock(conn)
        cursor = conn.connection.driver_connection.cursor()
        placeholder = "?" if sqlite_store else "%s"
        if removed:
            cursor.executemany(
                f"DELETE FROM customer_metrics WHERE customer_id = {placeholder}", [(i,) for i in removed]
            )
        cursor.execute("SELECT EXISTS (SELECT 1 FROM customer_metrics)")
        if values.num_rows and not cursor.fetchone()[0]:
            # A first refresh (or one after the table was emptied): straight into the table, in key order. Through
            # a staging table and an upsert, every row was written twice.
            with _indexes_built_after(conn):
                insert_arrow(cursor, dialect, "customer_metrics", values, constants)
        elif values.num_rows:
            cursor.execute("CREATE TEMP TABLE kz_metrics_new AS SELECT * FROM customer_metrics WHERE false")
            insert_arrow(cursor, dialect, "kz_metrics_new", values, constants)
            cursor.execute(
                f"INSERT INTO customer_metrics ({', '.join(columns)}) SELECT {', '.join(columns)} "
                f"FROM kz_metrics_new WHERE true ON CONFLICT (customer_id) DO UPDATE SET {updates}"
            )
            cursor.execute("DROP TABLE kz_metrics_new")
    return rows.num_rows + len(removed)


@contextmanager
def _indexes_built_after(conn: Connection) -> Iterator[None]:
    """SQLite: drop the table's secondary indexes for a first fill and build them once at the end, inside the
    same transaction (SQLite's DDL is transactional: a failure leaves them as they were). A million inserts
    kept three indexes current row by row (3.7 s); building them after is three sorts (1.2-1.7 s). PostgreSQL
    keeps them: its DROP INDEX would lock every reader of the table out until the commit."""
    if conn.dialect.name != "sqlite":
        yield
        return
    indexes = list(CustomerMetrics.__table__.indexes)
    for index in indexes:
        index.drop(conn, checkfirst=True)
    yield
    with sorting_threads(conn):
        for index in indexes:
            index.create(conn, checkfirst=True)


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
        result = MetricsRun(
            id=run.id,
            kind="clv",
            as_of=params.calibration_end,
            currency=params.currency,
            customers=saved,
            changed=saved,
            seconds=seconds,
            finished_at=run.finished_at or started_at,
        )
        emit(session, REFRESHED, result.model_dump(mode="json"))
        return result
