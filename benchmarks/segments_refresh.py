"""A dynamic segment of three conditions over the 1M-customer store: a full refresh, then incremental ones
after 10,000 new events each; and the first refresh of a broad segment, which emits one message per member.

Goal (issue 13, "Speed"): the full refresh in under 5 s and the incremental one, after 10,000 new events, in
under 1 s, on a 2-core machine. Data: the analytics benchmark's store (``customer360_data``: 1M customers, 1M
events, 10M orders), with the per-customer metrics filled by ``analytics_refresh.py`` (run it first, with the
same ``--database``). The new events go in through the events service (as the API records them: each one an
outbox message naming its customer, which is what the incremental refresh follows); their writing is not
timed. Printed beside ours, in the same run:

- **floor**: the same rule as one hand-written SQL query that only counts the matches (no membership rows, no
  messages): over every customer for the full refresh, over the 10,000 touched customers (ids given, driven
  from them) for the incremental one;
- **first refresh of a broad segment** (Tokyo: about 140,000 customers): every member's entry and its
  ``segment.entered`` message (with a delivery to a stand-in subscriber, as journeys will be), against a
  second full refresh of it that changes nothing.

    .venv/bin/python benchmarks/segments_refresh.py
    .venv/bin/python benchmarks/segments_refresh.py --database postgresql --pg-url postgresql+psycopg://.../kz_bench
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
import customer360_data as data  # noqa: E402

GOOD_RFM = ["champions", "loyal", "potential_loyalist", "at_risk"]
RULE = {
    "all": [
        {"attribute": "prefecture", "op": "eq", "value": "東京都"},
        {"event": "page_view", "min_count": 1, "within_days": 90},
        {"metric": "rfm_segment", "op": "in", "value": GOOD_RFM},
    ]
}
BROAD = {"attribute": "prefecture", "op": "eq", "value": "東京都"}
NAMES = ("bench: tokyo, recent visit, good RFM", "bench: tokyo")
# The rule by hand. The incremental floor is driven from the touched ids (CROSS JOIN keeps SQLite's join order)
# and reads each one's events through the (customer_id, occurred_at) index.
FLOOR_FULL = """SELECT count(*) FROM customers c WHERE c.status = 'active' AND c.prefecture = :pref
  AND c.id IN (SELECT customer_id FROM events WHERE type = 'page_view' AND occurred_at >= :since)
  AND c.id IN (SELECT customer_id FROM customer_metrics WHERE rfm_segment IN ({rfm}))"""
FLOOR_SOME = """SELECT count(*) FROM bench_touched t CROSS JOIN customers c WHERE c.id = t.id
  AND c.status = 'active' AND c.prefecture = :pref
  AND EXISTS (SELECT 1 FROM events e {hint} WHERE e.customer_id = c.id AND e.type = 'page_view'
              AND e.occurred_at >= :since)
  AND EXISTS (SELECT 1 FROM customer_metrics m WHERE m.customer_id = c.id AND m.rfm_segment IN ({rfm}))"""


def timed(fn):  # noqa: ANN001, ANN201
    started = time.perf_counter()
    result = fn()
    return time.perf_counter() - started, result


def main() -> None:  # noqa: PLR0915 - one linear script
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--orders", type=int, default=10_000_000)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--new-events", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3, help="Timed full and incremental refreshes (median).")
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--pg-url", default="")
    args = parser.parse_args()
    params = data.Params(customers=args.customers, events=args.events, orders=args.orders, seed=args.seed)
    if args.database == "sqlite":
        url = data.sqlite_database(HERE / "data", params, rebuild=False)
        data.prewarm_sqlite(url)
    else:
        if "bench" not in args.pg_url:
            sys.exit("--pg-url must name a database whose name contains 'bench' (the run writes into it)")
        url = data.postgresql_database(args.pg_url, params, schema="public", rebuild=False)
        data.prewarm_postgresql(url)
    os.environ["KIZUNA_DATABASE_URL"] = url
    from sqlalchemy import delete, func, select, text

    from kizuna.analytics.models import CustomerMetrics
    from kizuna.auth.permissions import Actor
    from kizuna.db import make_engine, migrate, transaction
    from kizuna.events import service as events
    from kizuna.events.models import Event
    from kizuna.events.schemas import EventCreate
    from kizuna.outbox import registry
    from kizuna.outbox.models import OutboxDelivery, OutboxMessage
    from kizuna.segments import compile as compiler
    from kizuna.segments import service
    from kizuna.segments.models import Segment, SegmentMembership
    from kizuna.segments.schemas import SegmentCreate

    engine = make_engine(url)
    migrate(engine)
    sqlite = engine.dialect.name == "sqlite"
    actor = Actor.system("bench")
    # Journeys will subscribe to segment entries: a stand-in, so each message gets its delivery as it will then.
    registry.register(
        registry.Subscriber(name="bench-journeys", topics=frozenset({"segment.*"}), handle=lambda s, d: None)
    )
    with transaction(engine) as s:
        if not s.scalar(select(func.count()).select_from(CustomerMetrics)):
            sys.exit("no per-customer metrics: run benchmarks/analytics_refresh.py first (same --database)")
        old = select(Segment.id).where(Segment.name.in_(NAMES))
        s.execute(delete(SegmentMembership).where(SegmentMembership.segment_id.in_(old)))
        s.execute(delete(Segment).where(Segment.name.in_(NAMES)))
    with transaction(engine) as s:
        # What this run adds (events, messages) is removed at its end, so the next run measures the same store.
        first_event = s.scalar(select(func.coalesce(func.max(Event.id), 0)))
        first_message = s.scalar(select(func.coalesce(func.max(OutboxMessage.id), 0)))
        segment_id = service.create_segment(s, actor=actor, data=SegmentCreate(name=NAMES[0], rule=RULE)).id
        broad_id = service.create_segment(s, actor=actor, data=SegmentCreate(name=NAMES[1], rule=BROAD)).id

    since = compiler.since(90)
    binds = {"pref": "東京都", "since": f"{since:%Y-%m-%d %H:%M:%S.%f}" if sqlite else since}
    binds |= {f"r{i}": v for i, v in enumerate(GOOD_RFM)}
    rfm = ", ".join(f":r{i}" for i in range(len(GOOD_RFM)))
    hint = "INDEXED BY ix_events_customer_occurred" if sqlite else ""

    def floor(sql: str) -> int:
        with engine.connect() as conn:
            return int(conn.execute(text(sql.format(rfm=rfm, hint=hint)), binds).scalar() or 0)

    # --- full ---------------------------------------------------------------------------------------------
    def full_refresh() -> service.RefreshResult:
        with transaction(engine) as s:
            return service.refresh(s, segment_id, actor=actor, full=True)

    first_s, first = timed(full_refresh)
    fulls, floors = [], []
    for _ in range(args.repeat):
        fulls.append(timed(full_refresh)[0])
        seconds, count = timed(lambda: floor(FLOOR_FULL))
        floors.append(seconds)
        if count != first.member_count:
            sys.exit(f"the floor counts {count:,} members, ours {first.member_count:,}")
    full_s, floor_s = statistics.median(fulls), statistics.median(floors)
    print(f"{args.database}: {args.customers:,} customers, {args.orders:,} orders", flush=True)
    print(f"full refresh, first (initial: {first.entered:,} entered): {first_s:.2f} s")
    print(f"full refresh (median of {args.repeat}): {full_s:.2f} s ({first.member_count:,} members); "
          f"floor {floor_s:.2f} s = {full_s / floor_s:.1f}x; goal < 5 s: {'PASS' if full_s < 5 else 'FAIL'}",
          flush=True)  # fmt: skip

    # --- incremental --------------------------------------------------------------------------------------
    now = dt.datetime.now(dt.UTC)
    incs, inc_floors, results = [], [], []
    for run in range(args.repeat):
        touched = [1 + (n * 7919 + run * 104_729) % args.customers for n in range(args.new_events)]
        with transaction(engine) as s:
            for n, customer_id in enumerate(touched):
                events.record_event(
                    s,
                    actor=actor,
                    data=EventCreate(customer_id=customer_id, type="page_view", channel="web",
                                     occurred_at=now - dt.timedelta(seconds=n + run)),
                )  # fmt: skip

        def incremental() -> service.RefreshResult:
            with transaction(engine) as s:
                return service.refresh(s, segment_id, actor=actor, full=False)

        seconds, result = timed(incremental)
        incs.append(seconds)
        results.append(result)
        with engine.begin() as conn:
            conn.execute(text("CREATE TEMPORARY TABLE IF NOT EXISTS bench_touched (id INTEGER PRIMARY KEY)"))
            conn.execute(text("DELETE FROM bench_touched"))
            conn.execute(text("INSERT INTO bench_touched VALUES (:id)"), [{"id": i} for i in set(touched)])
            started = time.perf_counter()
            conn.execute(text(FLOOR_SOME.format(rfm=rfm, hint=hint)), binds).scalar()
            inc_floors.append(time.perf_counter() - started)
            conn.execute(text("DROP TABLE bench_touched"))
        print(f"  incremental {run + 1}: {seconds:.2f} s ({result.mode}, {result.evaluated:,} customers "
              f"re-evaluated, {result.entered:,} entered, {result.exited:,} exited); floor {inc_floors[-1]:.3f} s",
              flush=True)  # fmt: skip
    inc_s, inc_floor_s = statistics.median(incs), statistics.median(inc_floors)
    print(f"incremental refresh after {args.new_events:,} new events (median of {args.repeat}): {inc_s:.2f} s; "
          f"floor {inc_floor_s:.3f} s; goal < 1 s: {'PASS' if inc_s < 1 else 'FAIL'}")  # fmt: skip

    # --- the first refresh of a broad segment: one message (and delivery) per member --------------------------
    with transaction(engine) as s:
        before = s.scalar(select(func.coalesce(func.max(OutboxMessage.id), 0)))

    def broad() -> service.RefreshResult:
        with transaction(engine) as s:
            return service.refresh(s, broad_id, actor=actor, full=True)

    broad_s, entered = timed(broad)
    again_s, _ = timed(broad)
    with transaction(engine) as s:
        written = s.scalar(
            select(func.count()).where(OutboxMessage.id > before, OutboxMessage.topic == "segment.entered")
        )
        delivered = s.scalar(
            select(func.count()).where(
                OutboxDelivery.message_id > before, OutboxDelivery.subscriber == "bench-journeys"
            )
        )
    print(f"first refresh of '{NAMES[1]}': {broad_s:.2f} s ({entered.entered:,} entered, {written:,} messages, "
          f"{delivered:,} deliveries); the same refresh again (nothing changes): {again_s:.2f} s; "
          f"entries and messages: {broad_s - again_s:.2f} s = "
          f"{(broad_s - again_s) / max(entered.entered, 1) * 1e6:.1f} µs per member")  # fmt: skip
    with transaction(engine) as s:
        s.execute(delete(Segment).where(Segment.name.in_(NAMES)))
        s.execute(delete(Event).where(Event.id > first_event))
        s.execute(delete(OutboxDelivery).where(OutboxDelivery.message_id > first_message))
        s.execute(delete(OutboxMessage).where(OutboxMessage.id > first_message))
    engine.dispose()


if __name__ == "__main__":
    main()
