"""Data-subject export of one large customer: wall time beside its floor, and peak memory beside the data's size.

One customer with ``--events`` events (default 100,000) and ``--orders`` orders of 3 lines, among other customers
whose rows the export must skip, in a scratch SQLite file (benchmarks/data/). Measured in the same run:

- **ours**: ``privacy.subject_export.write_subject_export`` into a ZIP on disk (every table, context, manifest);
- **the floor**: the same customer's events, orders and order lines read with bare ``sqlite3`` and written as JSON
  arrays into a deflated ZIP (no other tables, no type handling beyond ``default=str``);
- **peak memory** of ours (tracemalloc, Python allocations) beside the size of events.json uncompressed: an
  export that loaded a table whole would peak above it.

    .venv/bin/python benchmarks/subject_export.py [--events 100000] [--orders 2000] [--others 1000]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sqlite3
import time
import tracemalloc
import zipfile
from pathlib import Path

from sqlalchemy import insert

from kizuna.auth.permissions import Actor
from kizuna.customers.models import Customer
from kizuna.db import make_engine, migrate, new_session
from kizuna.events.models import Event
from kizuna.orders.models import Order, OrderLine
from kizuna.privacy.subject_export import write_subject_export

DATA = Path(__file__).parent / "data"


def build(path: Path, events: int, orders: int, others: int) -> None:
    path.unlink(missing_ok=True)
    engine = make_engine(f"sqlite:///{path}")
    migrate(engine)
    now = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
    with engine.begin() as conn:
        conn.execute(
            insert(Customer),
            [
                {
                    "id": i,
                    "email": f"c{i}@example.jp",
                    "family_name": "山田",
                    "given_name": f"{i}",
                    "full_name": f"山田 {i}",
                }
                for i in range(1, others + 2)
            ],
        )
        # The subject is customer 1; every other customer gets a tenth as many events, so the table is not theirs.
        rows = [
            {
                "customer_id": 1 if n < events else 2 + n % others,
                "type": ("page_view", "cart_add", "email_open")[n % 3],
                "channel": "web",
                "occurred_at": now - dt.timedelta(minutes=n),
                "source": "bench",
                "properties": {"url": f"https://shop.example.jp/p/{n % 500}", "title": "商品ページ"},
            }
            for n in range(events + events // 10)
        ]
        for start in range(0, len(rows), 20_000):
            conn.execute(insert(Event), rows[start : start + 20_000])
        conn.execute(
            insert(Order),
            [
                {"id": n + 1, "customer_id": 1, "ordered_at": now - dt.timedelta(days=n), "status": "completed",
                 "currency": "JPY", "total_amount": 3 * 1200, "external_id": f"O-{n}"}
                for n in range(orders)
            ],
        )  # fmt: skip
        conn.execute(
            insert(OrderLine),
            [
                {"order_id": n // 3 + 1, "customer_id": 1, "line_no": n % 3 + 1, "sku": f"SKU-{n % 50}", "quantity": 1,
                 "unit_price": 1200, "amount": 1200}
                for n in range(orders * 3)
            ],
        )  # fmt: skip
    engine.dispose()


def floor(path: Path, out: Path) -> float:
    start = time.perf_counter()
    db = sqlite3.connect(path)
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for table in ("events", "orders", "order_lines"):
            cursor = db.execute(f"SELECT * FROM {table} WHERE customer_id = 1 ORDER BY id")  # noqa: S608
            names = [d[0] for d in cursor.description]
            with zf.open(f"{table}.json", "w") as entry:
                entry.write(b"[")
                for i, row in enumerate(cursor):
                    entry.write(b",\n" if i else b"\n")
                    entry.write(
                        json.dumps(dict(zip(names, row, strict=True)), ensure_ascii=False, default=str).encode()
                    )
                entry.write(b"]\n")
    db.close()
    return time.perf_counter() - start


def ours(path: Path, out: Path, *, trace: bool) -> tuple[float, int, dict[str, int]]:
    """One export; with ``trace``, under tracemalloc (which slows it several times: timed runs go without)."""
    engine = make_engine(f"sqlite:///{path}")
    session = new_session(engine)
    if trace:
        tracemalloc.start()
    start = time.perf_counter()
    with out.open("wb") as handle:
        result = write_subject_export(session, actor=Actor.system("bench"), customer_id=1, out=handle)
    seconds = time.perf_counter() - start
    peak = 0
    if trace:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    session.rollback()
    session.close()
    engine.dispose()
    return seconds, peak, result.tables


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--events", type=int, default=100_000)
    p.add_argument("--orders", type=int, default=2000)
    p.add_argument("--others", type=int, default=1000)
    args = p.parse_args()
    DATA.mkdir(exist_ok=True)
    path = DATA / "subject_export.db"
    started = time.perf_counter()
    build(path, args.events, args.orders, args.others)
    print(f"built {args.events:,} events of the subject (+{args.events // 10:,} of others) in "
          f"{time.perf_counter() - started:.1f} s")  # fmt: skip
    # Interleaved, best of three each: the machine's two cores are shared.
    floors, times = [], []
    for _ in range(3):
        floors.append(floor(path, DATA / "subject_floor.zip"))
        seconds, _, tables = ours(path, DATA / "subject_ours.zip", trace=False)
        times.append(seconds)
    floor_s, ours_s = min(floors), min(times)
    _, peak, _ = ours(path, DATA / "subject_ours.zip", trace=True)
    with zipfile.ZipFile(DATA / "subject_ours.zip") as zf:
        events_bytes = zf.getinfo("events.json").file_size
    rows = sum(tables.values())
    print(f"floor (bare sqlite3, 3 tables): {floor_s:.2f} s")
    print(f"ours (every table, context, manifest; {rows:,} rows): {ours_s:.2f} s = {ours_s / floor_s:.2f}x the floor")
    print(f"peak Python memory of ours: {peak / 2**20:.1f} MiB; "
          f"events.json uncompressed: {events_bytes / 2**20:.1f} MiB ({peak / events_bytes:.2f}x)")  # fmt: skip


if __name__ == "__main__":
    main()
