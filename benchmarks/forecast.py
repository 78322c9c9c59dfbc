"""Forecast speed: ``sales.forecast.forecast`` over 10,000 open deals and 5,000 closed deals with their history.

No goal is set by the issue; this records what the forecast page, the API and the CLI cost at a team's scale.
The data: the kanban benchmark's 10,000 open deals (20 owners, four open stages, a year of close dates) plus
5,000 deals closed over 2029 (two thirds won), each with three stage changes. Timed: the runner called in
process (one session, the whole result built), for all time and for one quarter. Floor, measured in the same
run: the two reads the runner cannot avoid (open deals grouped by currency, owner, stage, close date and
probability; every closed deal's stage history) through the bare driver, with nothing built from them.

    .venv/bin/python benchmarks/forecast.py                                   # SQLite (a scratch file)
    .venv/bin/python benchmarks/forecast.py --pg-url postgresql+psycopg://postgres@127.0.0.1:5432/kz_bench
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))


def add_closed(engine: Any, closed: int) -> None:
    from sqlalchemy import insert, select

    from kizuna.auth.models import User
    from kizuna.db import transaction
    from kizuna.sales import pipelines
    from kizuna.sales.models import Deal, DealStageChange

    rng = random.Random(17)
    with transaction(engine) as s:
        stages = pipelines.stages_of(s, pipelines.default_pipeline(s).id)
        won, lost = next(x for x in stages if x.kind == "won"), next(x for x in stages if x.kind == "lost")
        owners = list(s.scalars(select(User.id)))
        start = dt.datetime(2029, 1, 1, tzinfo=dt.UTC)
        rows, history = [], []
        first = (s.scalar(select(Deal.id).order_by(Deal.id.desc()).limit(1)) or 0) + 1
        for i in range(closed):
            created = start + dt.timedelta(days=rng.randint(0, 300), hours=rng.randint(0, 23))
            end = won if i % 3 else lost
            closed_at = created + dt.timedelta(days=rng.randint(5, 60))
            rows.append(
                {
                    "id": first + i, "name": f"済 {i:05d}", "pipeline_id": end.pipeline_id, "stage_id": end.id,
                    "customer_id": rng.randint(1, 2000), "amount": rng.randint(1, 5000) * 1000, "currency": "JPY",
                    "probability": end.probability, "owner_id": rng.choice(owners), "closed_at": closed_at,
                    "lost_reason": None if i % 3 else "予算", "attributes": {}, "version": 1,
                }
            )  # fmt: skip
            middle = stages[rng.randint(1, 3)]
            history += [
                {"deal_id": first + i, "from_stage_id": None, "to_stage_id": stages[0].id, "changed_at": created},
                {"deal_id": first + i, "from_stage_id": stages[0].id, "to_stage_id": middle.id,
                 "changed_at": created + dt.timedelta(days=2)},
                {"deal_id": first + i, "from_stage_id": middle.id, "to_stage_id": end.id, "changed_at": closed_at},
            ]  # fmt: skip
        s.execute(insert(Deal), rows)
        s.execute(insert(DealStageChange), [{**h, "actor": "bench"} for h in history])


def floor(engine: Any) -> float:
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        started = time.perf_counter()
        cursor.execute(
            "SELECT d.currency, d.owner_id, d.stage_id, d.expected_close_date, d.probability, count(*), sum(d.amount) "
            "FROM deals d JOIN pipeline_stages s ON s.id = d.stage_id WHERE s.kind = 'open' "
            "GROUP BY d.currency, d.owner_id, d.stage_id, d.expected_close_date, d.probability"
        )
        cursor.fetchall()
        cursor.execute(
            "SELECT c.deal_id, c.to_stage_id, c.changed_at FROM deal_stage_changes c JOIN deals d ON d.id = c.deal_id "
            "JOIN pipeline_stages s ON s.id = d.stage_id WHERE s.kind IN ('won', 'lost')"
        )
        cursor.fetchall()
        return (time.perf_counter() - started) * 1000
    finally:
        raw.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pg-url", help="a PostgreSQL database to use (emptied first); default: a SQLite file")
    parser.add_argument("--deals", type=int, default=10_000)
    parser.add_argument("--closed", type=int, default=5_000)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    os.environ.setdefault("KIZUNA_HOME", tempfile.mkdtemp(prefix="kizuna-forecast-"))
    from kanban import build
    from sqlalchemy import text

    from kizuna.auth.permissions import Actor
    from kizuna.db import make_engine, migrate, new_session
    from kizuna.sales import forecast

    if args.pg_url:
        engine = make_engine(args.pg_url)
        with engine.begin() as conn:
            conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
    else:
        engine = make_engine(f"sqlite:///{Path(os.environ['KIZUNA_HOME']) / 'forecast.db'}")
    migrate(engine)
    started = time.perf_counter()
    build(engine, args.deals)
    add_closed(engine, args.closed)
    built = time.perf_counter() - started
    print(f"{engine.dialect.name}: {args.deals:,} open + {args.closed:,} closed deals built in {built:.1f} s")
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            conn.execute(text("ANALYZE"))
    actor = Actor.system("bench")
    specs = {
        "all time": forecast.ForecastSpec(),
        "one quarter": forecast.spec_of(start="2029-04-01", end="2029-06-30"),
    }
    for name, spec in specs.items():
        times, floors = [], []
        for i in range(args.runs + 1):
            session = new_session(engine)
            try:
                began = time.perf_counter()
                result = forecast.forecast(session, actor=actor, spec=spec)
                elapsed = (time.perf_counter() - began) * 1000
            finally:
                session.close()
            if i:  # the first run warms caches
                times.append(elapsed)
                floors.append(floor(engine))
        print(
            f"  {name:<12} forecast p50 {statistics.median(times):7.1f} ms  max {max(times):7.1f} ms   "
            f"floor p50 {statistics.median(floors):7.1f} ms   ({result.overall.closed:,} closed, "
            f"{sum(r.deals for r in result.totals):,} open)"
        )


if __name__ == "__main__":
    main()
