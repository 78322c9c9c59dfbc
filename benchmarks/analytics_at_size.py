"""Every analysis at full size: how long each takes on 1,000,000 customers and 10,000,000 orders (20M lines).

Issue 13 sets speed goals for the refresh of the persisted scores (``analytics_refresh.py``) and for segments
(``segments_refresh.py``); the other analyses have none, but a marketer opening the cohort or CTB page of a large
store must know whether it answers in seconds or minutes. This prints, in one run on the same data, each
analysis through ``kizuna.analytics.service`` (what the API, the UI and the CLI call) beside a **floor**: one
hand-written DuckDB query that only reads what the analysis reads from the store (the counted orders, and the
order lines for CTB) and aggregates it per customer, i.e. the cost of touching the data once. The ratio says how
much work an analysis does beyond one pass over its input.

    .venv/bin/python benchmarks/analytics_at_size.py                      # SQLite, full size (builds the data once)
    .venv/bin/python benchmarks/analytics_at_size.py --database postgresql \\
        --pg-url postgresql+psycopg://postgres@127.0.0.1:5432/kz_bench_analytics
    .venv/bin/python benchmarks/analytics_at_size.py --customers 20000 --orders 200000 --events 10000   # quick
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
import customer360_data as data  # noqa: E402

AS_OF = dt.date(2026, 11, 1)


def floor_queries(store: str, end: int) -> dict[str, str]:
    """One pass over each input, aggregated per customer: the counted orders (status, currency, active customer,
    before the as-of day) and the order lines joined to their products (what CTB reads)."""
    at = "epoch(o.ordered_at)"
    counted = (
        f"FROM {store}.orders o JOIN {store}.customers c ON c.id = o.customer_id AND c.status = 'active' "
        f"WHERE o.status = 'completed' AND o.currency = 'JPY' AND {at} < {end} AND o.total_amount >= 0"
    )
    return {
        "orders": f"SELECT count(*) FROM (SELECT o.customer_id, count(*), sum(o.total_amount), max({at}) "
        f"{counted} GROUP BY o.customer_id)",
        "lines": f"SELECT count(*) FROM (SELECT o.customer_id, p.category, sum(l.quantity * l.unit_price) "
        f"FROM {store}.order_lines l JOIN {store}.orders o ON o.id = l.order_id "
        f"LEFT JOIN {store}.products p ON p.id = l.product_id "
        f"JOIN {store}.customers c ON c.id = o.customer_id AND c.status = 'active' "
        f"WHERE o.status = 'completed' AND o.currency = 'JPY' AND {at} < {end} GROUP BY ALL)",
    }


def run_floor(url: str, sql: str) -> float:
    import duckdb

    from kizuna.analytics.engine import _extension, _libpq, _quote

    started = time.perf_counter()
    con = duckdb.connect()
    if url.startswith("sqlite"):
        con.execute(f"LOAD '{_extension('sqlite')}'")
        con.execute(f"ATTACH '{url.split('///', 1)[1]}' AS store (TYPE sqlite, READ_ONLY)")
    else:
        con.execute(f"LOAD '{_extension('postgres')}'")
        con.execute(f"ATTACH '{_quote(_libpq(url))}' AS store (TYPE postgres, READ_ONLY)")
    con.execute(sql).fetchall()
    con.close()
    return time.perf_counter() - started


CATEGORIES = (
    "コーヒー",
    "紅茶",
    "緑茶",
    "菓子",
    "パン",
    "チーズ",
    "ワイン",
    "日本酒",
    "調味料",
    "雑貨",
    "ギフト",
    "果物",
)
TASTES = ("甘口", "辛口", "濃厚", "すっきり", "酸味", "苦味", "フルーティー", None)
BRANDS = tuple(f"ブランド{i:02d}" for i in range(1, 31))


def catalogue(url: str) -> None:
    """Give the data set's 5,000 SKUs a product each (category, taste, brand) and link the order lines to them,
    once: the Customer 360 generator writes lines with a SKU only, and CTB reads products. Deterministic, so the
    SQLite and PostgreSQL copies get the same catalogue."""
    from sqlalchemy import create_engine, insert, text

    from kizuna.catalog.models import Product

    engine = create_engine(url)
    with engine.begin() as conn:
        if conn.execute(text("SELECT count(*) FROM products")).scalar():
            engine.dispose()
            return
        started = time.perf_counter()
        rows = [
            {"id": i + 1, "sku": f"SKU-{i:05d}", "name": f"商品 {i:05d}", "category": CATEGORIES[(i * 7) % 12],
             "taste": TASTES[(i * 3) % 8], "brand": BRANDS[(i * 11) % 30]}
            for i in range(5000)
        ]  # fmt: skip
        # The table's own insert, so that its column defaults (times, currency, flags) are filled as the app does.
        conn.execute(insert(Product.__table__), rows)
        number = "CAST(substr(sku, 5) AS INTEGER)" if url.startswith("sqlite") else "substr(sku, 5)::int"
        conn.execute(text(f"UPDATE order_lines SET product_id = {number} + 1 WHERE sku LIKE 'SKU-%'"))
        print(f"catalogue: 5,000 products, order lines linked in {time.perf_counter() - started:.1f} s", flush=True)
    if not url.startswith("sqlite"):
        # The update left a dead copy of every line behind: reclaim it, as autovacuum would before long.
        with engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("VACUUM ANALYZE order_lines"))
    engine.dispose()


def top_value(url: str, column: str) -> str:
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    with engine.connect() as conn:
        value = conn.execute(
            text(f"SELECT {column} FROM products WHERE {column} IS NOT NULL GROUP BY {column} ORDER BY count(*) DESC")
        ).first()
    engine.dispose()
    if value is None:
        sys.exit(f"the data set has no product {column}")
    return str(value[0])


def analyses(url: str, customers: int) -> list[tuple[str, str, Callable[[], Any]]]:
    """(name, the floor it is compared with, the call) for every analysis, as the API calls them."""
    from kizuna.analytics import recommend, service
    from kizuna.analytics.clv import CLVSpec
    from kizuna.analytics.cohorts import CohortSpec
    from kizuna.analytics.ctb import CTBSpec
    from kizuna.analytics.ctb_likely import LikelySpec
    from kizuna.analytics.deciles import DecileSpec
    from kizuna.analytics.engine import run_on_store
    from kizuna.analytics.rfm import RFMSpec
    from kizuna.auth.permissions import Actor

    actor = Actor.system("benchmark")
    year = AS_OF - dt.timedelta(days=365)
    category = top_value(url, "category")
    # A hundred customers drawn at random (what a campaign's batch looks like), and the hundred with the most
    # orders (the generator skews orders towards low ids: customer 1 has the most).
    some = sorted(random.Random(7).sample(range(1, customers + 1), 100))
    heaviest = list(range(1, 101))
    return [
        ("RFM summary (segments, R×F grid)", "orders", lambda: service.rfm(actor=actor, spec=RFMSpec(as_of=AS_OF))),
        ("deciles, last 12 months", "orders",
         lambda: service.deciles(actor=actor, spec=DecileSpec(start=year, end=AS_OF))),
        ("cohorts, 12 months", "orders", lambda: service.cohorts(actor=actor, spec=CohortSpec(end=AS_OF))),
        ("CTB by category (shares, groups)", "lines",
         lambda: service.ctb(actor=actor, spec=CTBSpec(dimension="category", end=AS_OF))),
        ("CTB by brand", "lines", lambda: service.ctb(actor=actor, spec=CTBSpec(dimension="brand", end=AS_OF))),
        (f"likely to buy category {category!r}", "lines",
         lambda: service.ctb_likely(actor=actor, spec=LikelySpec(dimension="category", value=category, end=AS_OF))),
        ("recommendations for 100 customers, computed", "lines",
         lambda: run_on_store(recommend.recommendations, some, 5, database_url=url)),
        ("similar products (the daily refresh)", "lines", lambda: service.refresh_neighbors(actor=actor)),
        ("recommendations for 100 customers, stored", "lines",
         lambda: service.recommendations(actor=actor, customer_ids=some)),
        ("recommendations for the 100 heaviest buyers, stored", "lines",
         lambda: service.recommendations(actor=actor, customer_ids=heaviest)),
        ("CLV fit (BG/NBD + Gamma-Gamma) and top 20", "orders",
         lambda: service.clv(actor=actor, spec=CLVSpec(calibration_end=AS_OF))),
        ("CLV of every customer", "orders",
         lambda: service.clv_customers(actor=actor, spec=CLVSpec(calibration_end=AS_OF))),
    ]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    data.analytics_arguments(parser)
    parser.add_argument("--repeat", type=int, default=1, help="Timed runs of each (median printed).")
    parser.add_argument("--only", default="", help="Run only the analyses whose name contains this text.")
    args = parser.parse_args()
    url = data.analytics_store(args, DATA)
    os.environ.setdefault("KIZUNA_DEFAULT_CURRENCY", "JPY")
    from kizuna.analytics import periods
    from kizuna.db import make_engine, migrate
    from kizuna.errors import KizunaError

    migrate(make_engine(url))
    catalogue(url)
    end = periods.day_end(AS_OF)
    print(f"{args.database}: {args.customers:,} customers, {args.orders:,} orders; as of {AS_OF}", flush=True)
    floors = {name: [] for name in floor_queries("store", end)}
    results: list[tuple[str, str, list[float]]] = []
    chosen = [a for a in analyses(url, args.customers) if args.only.lower() in a[0].lower()]
    for _ in range(args.repeat):
        # Interleaved, so that a machine slowing down mid-run slows the floors and the analyses alike.
        for name, sql in floor_queries("store", end).items():
            floors[name].append(run_floor(url, sql))
        for i, (name, floor, call) in enumerate(chosen):
            started = time.perf_counter()
            try:
                call()
            except KizunaError as exc:  # e.g. a CLV fit the data does not support: timed and said, not hidden
                name = f"{name} (refused: {exc.message})"
            seconds = time.perf_counter() - started
            if len(results) <= i:
                results.append((name, floor, []))
            results[i] = (name, floor, results[i][2])
            results[i][2].append(seconds)
            print(f"  {name}: {seconds:.2f} s", flush=True)
    print(f"\nmedian of {args.repeat} run(s), {args.database}:")
    floor = {name: statistics.median(times) for name, times in floors.items()}
    for name, seconds in floor.items():
        print(f"  floor: one DuckDB pass over the {name} per customer: {seconds:.2f} s")
    print(f"  {'analysis':<48} {'seconds':>8} {'÷ its floor':>12}")
    for name, which, times in results:
        median = statistics.median(times)
        print(f"  {name:<48} {median:8.2f} {median / floor[which]:11.2f}x ({which})")


if __name__ == "__main__":
    main()
