"""RFM scores + named segments + deciles, end to end: from the store to persisted per-customer metrics.

Goal (issue 13, "Speed"): with 1,000,000 customers and 10,000,000 orders in the store, ``kizuna analytics
refresh`` (the same code the worker runs) within 1.5x of its floor and at least 5x faster than what users do
today, all three measured in this run on the same data:

- **ours**: ``analytics.service.refresh_with`` — Ibis on DuckDB reading the store, every persisted column
  (RFM, segment, decile, order totals, top category), written into ``customer_metrics`` in one transaction;
- **the floor**: one hand-written DuckDB query computing the same columns straight from the store, its rows
  written into the same table the shortest way (bare ``sqlite3`` executemany in one transaction; on
  PostgreSQL an ``INSERT ... SELECT`` through DuckDB's attachment, as ours);
- **pandas**: ``read_sql`` of the orders from the same store, then groupby + ``qcut`` for R, F, M and deciles
  (not even written back: the comparison favours pandas).

Data: the Customer 360 benchmark's generator (``customer360_data``; 10M orders with 20M lines), built once.

    .venv/bin/python benchmarks/analytics_refresh.py                          # SQLite, full size
    .venv/bin/python benchmarks/analytics_refresh.py --customers 100000 --orders 1000000   # quick
    .venv/bin/python benchmarks/analytics_refresh.py --database postgresql --pg-url postgresql+psycopg://.../kz_bench
"""

from __future__ import annotations

import argparse
import datetime as dt
import sqlite3
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
import customer360_data as data  # noqa: E402

AS_OF = dt.date(2026, 11, 1)
FLOOR_RATIO = 1.5
PANDAS_RATIO = 5.0


def floor_sql(store: str, end: int, cents: bool) -> str:
    """The same columns as ``analytics.metrics``' refresh, by hand: counted orders (completed, non-negative, JPY,
    active customers, up to the as-of day), R/F/M by ntile(5) best first with ties by id, the segment grid and
    the decile of spend."""
    from kizuna.analytics.rfm import SEGMENT_GRID

    money = "o.total_amount / 100.0" if cents else "o.total_amount"
    at = "epoch(o.ordered_at)"
    cases = " ".join(
        f"WHEN r IN ({', '.join(map(str, rs))}) AND f IN ({', '.join(map(str, fs))}) THEN '{name}'"
        for name, rs, fs in SEGMENT_GRID
    )
    return f"""
    WITH counted AS (
        SELECT o.id, o.customer_id, {at} AS ts, CAST({money} AS DECIMAL(18, 2)) AS amount
        FROM {store}.orders o JOIN {store}.customers c ON c.id = o.customer_id AND c.status = 'active'
        WHERE o.status IN ('completed') AND o.currency = 'JPY' AND {at} < {end} AND o.total_amount >= 0
    ), per AS (
        SELECT customer_id, min(ts) AS first_at, max(ts) AS last_at, count(*) AS frequency, sum(amount) AS monetary
        FROM counted GROUP BY customer_id
    ), scored AS (
        SELECT *, 5 - ntile(5) OVER (ORDER BY ({end} - last_at) // 86400, customer_id) + 1 AS r,
               5 - ntile(5) OVER (ORDER BY frequency DESC, customer_id) + 1 AS f,
               5 - ntile(5) OVER (ORDER BY monetary DESC, customer_id) + 1 AS m,
               ntile(10) OVER (ORDER BY monetary DESC, customer_id) AS decile
        FROM per
    )
    SELECT s.customer_id, s.frequency, s.monetary, s.first_at, s.last_at, s.r, s.f, s.m,
           CASE {cases} END AS segment, s.decile
    FROM scored s
    """


def run_floor(url: str, end: int) -> float:
    """The floor, end to end: compute in DuckDB from the store, write into ``customer_metrics``."""
    import duckdb

    from kizuna.analytics.engine import _extension, _libpq, _quote

    started = time.perf_counter()
    con = duckdb.connect()
    stamp = f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M:%S.%f}"
    if url.startswith("sqlite"):
        path = url.split("///", 1)[1]
        con.execute(f"LOAD '{_extension('sqlite')}'")
        con.execute(f"ATTACH '{path}' AS store (TYPE sqlite, READ_ONLY)")
        rows = con.execute(
            "SELECT customer_id, 'JPY', frequency, CAST(round(monetary * 100) AS BIGINT), "
            "strftime(make_timestamp(CAST(first_at AS BIGINT) * 1000000), '%Y-%m-%d %H:%M:%S.%f'), "
            "strftime(make_timestamp(CAST(last_at AS BIGINT) * 1000000), '%Y-%m-%d %H:%M:%S.%f'), "
            f"r, f, m, segment, decile, '{stamp}' FROM ({floor_sql('store', end, True)}) ORDER BY customer_id"
        ).fetchall()  # in key order, as ours writes: random order made SQLite's inserts miss its page cache
        con.close()
        db = sqlite3.connect(path, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("BEGIN IMMEDIATE")
        db.execute("DELETE FROM customer_metrics")
        db.executemany(
            "INSERT INTO customer_metrics (customer_id, currency, order_count, total_spend, first_order_at, "
            "last_order_at, r, f, m, rfm_segment, decile, computed_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        db.execute("COMMIT")
        db.close()
    else:
        con.execute(f"LOAD '{_extension('postgres')}'")
        con.execute(f"ATTACH '{_quote(_libpq(url))}' AS store (TYPE postgres)")
        con.execute("BEGIN")
        con.execute("DELETE FROM store.customer_metrics")
        con.execute(
            "INSERT INTO store.customer_metrics (customer_id, currency, order_count, total_spend, first_order_at, "
            "last_order_at, r, f, m, rfm_segment, decile, computed_at) "
            "SELECT customer_id, 'JPY', frequency, monetary, to_timestamp(floor(first_at)), "
            f"to_timestamp(floor(last_at)), r, f, m, segment, decile, now() "
            f"FROM ({floor_sql('store', end, False)})"
        )
        con.execute("COMMIT")
        con.close()
    return time.perf_counter() - started


def run_ours(url: str, *, categories: bool = False) -> tuple[float, int]:
    """The worker's refresh after new data (RFM, segments, deciles; ``categories``: the daily one's top categories
    too), end to end through the service; returns its time and the rows it wrote."""
    from kizuna.analytics.metrics import MetricsSpec
    from kizuna.analytics.service import refresh_with
    from kizuna.db import make_engine

    engine = make_engine(url)
    started = time.perf_counter()
    run = refresh_with(engine, MetricsSpec(as_of=AS_OF, categories=categories))
    seconds = time.perf_counter() - started
    engine.dispose()
    return seconds, run.changed


def clear(url: str) -> None:
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM customer_metrics"))
    engine.dispose()


def run_pandas(url: str, end: int) -> float:
    """What a user does today: read the orders into pandas, then groupby and qcut."""
    import pandas as pd
    from sqlalchemy import create_engine

    started = time.perf_counter()
    engine = create_engine(url)
    orders = pd.read_sql(
        "SELECT o.customer_id, o.ordered_at, o.total_amount FROM orders o JOIN customers c ON c.id = o.customer_id "
        "WHERE c.status = 'active' AND o.status = 'completed' AND o.currency = 'JPY' AND o.total_amount >= 0",
        engine,
    )
    orders["ordered_at"] = pd.to_datetime(orders["ordered_at"], utc=True)
    orders = orders[orders["ordered_at"] < pd.Timestamp(end, unit="s", tz="UTC")]
    per = orders.groupby("customer_id").agg(
        last=("ordered_at", "max"), frequency=("ordered_at", "size"), monetary=("total_amount", "sum")
    )
    per["recency"] = (pd.Timestamp(end, unit="s", tz="UTC") - per["last"]).dt.days
    per["r"] = pd.qcut(per["recency"].rank(method="first"), 5, labels=[5, 4, 3, 2, 1])
    per["f"] = pd.qcut(per["frequency"].rank(method="first", ascending=False), 5, labels=[5, 4, 3, 2, 1])
    per["m"] = pd.qcut(per["monetary"].rank(method="first", ascending=False), 5, labels=[5, 4, 3, 2, 1])
    per["decile"] = pd.qcut(per["monetary"].rank(method="first", ascending=False), 10, labels=range(1, 11))
    engine.dispose()
    return time.perf_counter() - started


def checksum(url: str) -> tuple:
    """What the persisted table holds, in a few numbers: the floor and ours must write the same rows."""
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    with engine.connect() as conn:
        row = conn.execute(
            text(
                "SELECT count(*), sum(r * 1 + f * 7 + m * 31 + decile * 101 + order_count * 1009), sum(total_spend), "
                "count(top_category), count(DISTINCT rfm_segment), min(first_order_at), max(last_order_at) "
                "FROM customer_metrics"
            )
        ).one()
    engine.dispose()
    return tuple(row)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    data.analytics_arguments(parser)
    parser.add_argument("--repeat", type=int, default=3, help="Timed runs of ours and the floor (median).")
    parser.add_argument("--no-pandas", action="store_true")
    args = parser.parse_args()
    url = data.analytics_store(args, DATA)
    from kizuna.analytics import periods
    from kizuna.db import make_engine, migrate

    migrate(make_engine(url))
    end = periods.day_end(AS_OF)
    print(f"{args.database}: {args.customers:,} customers, {args.orders:,} orders; as of {AS_OF}", flush=True)
    floors, colds, warms = [], [], []
    for i in range(args.repeat):
        # Interleaved, so a machine that slows down mid-run slows all three. Cold: an empty table (every row
        # written, as the floor always does); warm: the same refresh again, nothing changed since.
        clear(url)
        floors.append(run_floor(url, end))
        floor_sum = checksum(url)
        clear(url)
        seconds, written = run_ours(url)
        colds.append(seconds)
        if checksum(url) != floor_sum:
            sys.exit(f"ours and the floor wrote different rows: {checksum(url)} vs {floor_sum}")
        seconds, rewritten = run_ours(url)
        warms.append(seconds)
        print(f"  run {i + 1}: floor {floors[-1]:.2f} s; ours cold {colds[-1]:.2f} s ({written:,} rows written), "
              f"warm {warms[-1]:.2f} s ({rewritten:,} rows written)", flush=True)  # fmt: skip
    f, c, w = statistics.median(floors), statistics.median(colds), statistics.median(warms)
    print(f"scored customers: {floor_sum[0]:,}")
    print(f"floor (median of {args.repeat}): {f:.2f} s")
    for name, o in (("ours, cold", c), ("ours, warm", w)):
        verdict = "PASS" if o <= FLOOR_RATIO * f else "FAIL"
        print(
            f"{name} (median of {args.repeat}): {o:.2f} s = {o / f:.2f}x the floor (goal <= {FLOOR_RATIO}x): {verdict}"
        )
    seconds, _ = run_ours(url, categories=True)
    print(f"the daily refresh with top categories (every order line read): {seconds:.2f} s")
    if not args.no_pandas:
        p = run_pandas(url, end)
        for name, o in (("cold", c), ("warm", w)):
            verdict = "PASS" if p >= PANDAS_RATIO * o else "FAIL"
            print(f"pandas read_sql + groupby/qcut {p:.2f} s / ours {name} = {p / o:.2f}x (goal >= {PANDAS_RATIO}x): "
                  f"{verdict}")  # fmt: skip


if __name__ == "__main__":
    main()
