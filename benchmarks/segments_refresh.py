"""A dynamic segment of three conditions over the 1M-customer store: a full refresh, then an incremental one
after 10,000 new events.

Goal (issue 13, "Speed"): the full refresh in under 5 s and the incremental one, after 10,000 new events, in
under 1 s, on a 2-core machine. Data: the analytics benchmark's store (``customer360_data``: 1M customers, 1M
events, 10M orders), with the per-customer metrics filled by ``analytics_refresh.py`` (run it first). The new
events go in through the events service (as the API records them: each one an outbox message naming its
customer, which is what the incremental refresh follows); their writing is not timed.

    .venv/bin/python benchmarks/segments_refresh.py
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
import customer360_data as data  # noqa: E402

RULE = {
    "all": [
        {"attribute": "prefecture", "op": "eq", "value": "東京都"},
        {"event": "page_view", "min_count": 1, "within_days": 90},
        {"metric": "rfm_segment", "op": "in", "value": ["champions", "loyal", "potential_loyalist", "at_risk"]},
    ]
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--orders", type=int, default=10_000_000)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--new-events", type=int, default=10_000)
    args = parser.parse_args()
    params = data.Params(customers=args.customers, events=args.events, orders=args.orders, seed=args.seed)
    url = data.sqlite_database(HERE / "data", params, rebuild=False)
    os.environ["KIZUNA_DATABASE_URL"] = url
    from sqlalchemy import delete, func, select

    from kizuna.analytics.models import CustomerMetrics
    from kizuna.auth.permissions import Actor
    from kizuna.db import make_engine, migrate, transaction
    from kizuna.events import service as events
    from kizuna.events.schemas import EventCreate
    from kizuna.segments import service
    from kizuna.segments.models import Segment
    from kizuna.segments.schemas import SegmentCreate

    engine = make_engine(url)
    migrate(engine)
    actor = Actor.system("bench")
    with transaction(engine) as s:
        if not s.scalar(select(func.count()).select_from(CustomerMetrics)):
            sys.exit("no per-customer metrics: run benchmarks/analytics_refresh.py first")
        s.execute(delete(Segment).where(Segment.name == "bench: tokyo, recent visit, good RFM"))
    with transaction(engine) as s:
        segment = service.create_segment(
            s, actor=actor, data=SegmentCreate(name="bench: tokyo, recent visit, good RFM", rule=RULE)
        )
        segment_id = segment.id
    started = time.perf_counter()
    with transaction(engine) as s:
        full = service.refresh(s, segment_id, actor=actor, full=True)
    full_s = time.perf_counter() - started
    print(f"full refresh: {full_s:.2f} s ({full.member_count:,} members, {full.entered:,} entered) "
          f"goal < 5 s: {'PASS' if full_s < 5 else 'FAIL'}", flush=True)  # fmt: skip
    now = dt.datetime.now(dt.UTC)
    with transaction(engine) as s:
        for n in range(args.new_events):
            events.record_event(
                s,
                actor=actor,
                data=EventCreate(customer_id=1 + (n * 7919) % args.customers, type="page_view", channel="web",
                                 occurred_at=now - dt.timedelta(seconds=n)),
            )  # fmt: skip
    started = time.perf_counter()
    with transaction(engine) as s:
        inc = service.refresh(s, segment_id, actor=actor, full=False)
    inc_s = time.perf_counter() - started
    print(f"incremental refresh after {args.new_events:,} new events: {inc_s:.2f} s ({inc.evaluated:,} customers "
          f"re-evaluated, {inc.entered:,} entered, {inc.exited:,} exited) goal < 1 s: "
          f"{'PASS' if inc_s < 1 else 'FAIL'}")  # fmt: skip
    engine.dispose()


if __name__ == "__main__":
    main()
