"""Scoring speed: ``kizuna scoring train`` on 100,000 closed deals takes under 60 s.

Goal (issue 16, "Speed"). The data, written in bulk: 20,000 customers (lifecycle stage and source varied) at
2,000 companies (``attributes.employees``), 20 reps, 100,000 closed deals of the default pipeline (won or lost
by a logistic rule over the meetings, the furthest stage, the amount and the customer's prior orders) with
their stage history (creation, the furthest open stage, the close), about 200,000 activities on them, 30,000
orders, and 2,000 open deals and 1,000 leads to score.

Timed: ``service.train`` end to end as the CLI runs it: reading the features (a handful of grouped queries),
fitting the deal model (5-fold cross-validated AUC and calibration table, then the final calibrated fit), the
lead model on the customers' history, storing both, and rescoring every open deal and lead.
The floor, measured in the same run on the same deal matrix: one bare ``LogisticRegression().fit`` (what any
model of this kind costs at least), and the feature read alone.

    .venv/bin/python benchmarks/scoring_train.py                                   # SQLite (a scratch file)
    .venv/bin/python benchmarks/scoring_train.py --pg-url postgresql+psycopg://postgres@127.0.0.1:5432/kz_bench
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import os
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

GOAL_S = 60.0
CUSTOMERS = 20_000
COMPANIES = 2_000
BATCH = 20_000


def _batches(rows: list[dict], size: int = BATCH):  # noqa: ANN202
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


def build(engine: Any, closed: int) -> None:
    from sqlalchemy import insert, select

    from kizuna.auth import service as auth
    from kizuna.auth.permissions import Actor
    from kizuna.customers.models import Company, Customer
    from kizuna.db import transaction
    from kizuna.orders.models import Order
    from kizuna.sales import pipelines
    from kizuna.sales.models import Activity, Deal, DealStageChange

    rng = random.Random(16)
    system = Actor.system("bench")
    now = dt.datetime.now(dt.UTC)
    with transaction(engine) as s:
        reps = [
            auth.create_user(s, actor=system, email=f"rep{i}@example.com", password="bench-password-123", role="sales")
            for i in range(20)
        ]
        s.flush()
        rep_ids = [r.id for r in reps]
        s.execute(
            insert(Company),
            [{"name": f"株式会社ベンチ{i:04d}", "attributes": {"employees": int(10 ** rng.uniform(1, 4))}}
             for i in range(COMPANIES)],
        )  # fmt: skip
        s.execute(
            insert(Customer),
            [
                {
                    "family_name": "山田", "given_name": f"太郎{i}", "full_name": f"山田 太郎{i}", "attributes": {},
                    "company_id": rng.randint(1, COMPANIES), "owner_id": rng.choice(rep_ids),
                    "lifecycle_stage": rng.choice(("lead", "prospect", "customer", "customer")),
                    "source": rng.choice(("web", "展示会", "紹介", "広告", None)),
                }
                for i in range(CUSTOMERS)
            ],
        )  # fmt: skip
        s.execute(
            insert(Order),
            [
                {"customer_id": rng.randint(1, CUSTOMERS), "ordered_at": now - dt.timedelta(days=rng.randint(400, 900)),
                 "total_amount": rng.randint(1, 200) * 1000, "currency": "JPY", "status": "completed",
                 "attributes": {}}
                for _ in range(30_000)
            ],
        )  # fmt: skip
        stages = pipelines.stages_of(s, pipelines.default_pipeline(s).id)
    open_stages = [st for st in stages if st.kind == "open"]
    won = next(st for st in stages if st.kind == "won")
    lost = next(st for st in stages if st.kind == "lost")
    kinds = ("call", "meeting", "visit", "email")

    deals, outcomes = [], []
    for i in range(closed + 2000):
        is_open = i >= closed
        furthest = rng.randrange(len(open_stages))
        meetings = rng.randint(0, 4)
        amount = rng.randint(1, 500) * 10_000
        logit = -2.0 + 0.8 * meetings + 0.6 * furthest - 0.3 * math.log10(amount / 10_000 + 1)
        is_won = rng.random() < 1 / (1 + math.exp(-logit))
        created = now - dt.timedelta(days=rng.randint(30, 700))
        stage = open_stages[furthest] if is_open else (won if is_won else lost)
        deals.append(
            {
                "name": f"案件 {i:06d}", "pipeline_id": stage.pipeline_id, "stage_id": stage.id,
                "customer_id": rng.randint(1, CUSTOMERS), "company_id": None, "amount": amount, "currency": "JPY",
                "probability": stage.probability, "owner_id": rng.choice(rep_ids),
                "lost_reason": None if is_open or is_won else "予算不足",
                "closed_at": None if is_open else created + dt.timedelta(days=rng.randint(5, 120)),
                "created_at": created, "updated_at": created, "attributes": {}, "version": 1,
            }
        )  # fmt: skip
        outcomes.append((furthest, meetings, created, is_open, stage.id))
    with transaction(engine) as s:
        for batch in _batches(deals):
            s.execute(insert(Deal), batch)
        ids = list(s.scalars(select(Deal.id).order_by(Deal.id)))
    changes, activities = [], []
    for deal_id, (furthest, meetings, created, is_open, stage_id) in zip(ids, outcomes, strict=True):
        changes.append({"deal_id": deal_id, "to_stage_id": open_stages[0].id, "changed_at": created, "actor": "bench"})
        if furthest:
            first, reached = open_stages[0].id, open_stages[furthest].id
            changes.append({"deal_id": deal_id, "from_stage_id": first, "to_stage_id": reached,
                            "changed_at": created, "actor": "bench"})  # fmt: skip
        if not is_open:
            changes.append({"deal_id": deal_id, "from_stage_id": open_stages[furthest].id, "to_stage_id": stage_id,
                            "changed_at": created + dt.timedelta(days=3), "actor": "bench"})  # fmt: skip
        for m in range(meetings):
            activities.append({"kind": "meeting", "subject": "打合せ", "deal_id": deal_id,
                               "occurred_at": created + dt.timedelta(days=m), "version": 1})  # fmt: skip
        if rng.random() < 0.3:
            activities.append({"kind": rng.choice(kinds), "subject": "連絡", "deal_id": deal_id,
                               "occurred_at": created + dt.timedelta(days=1), "version": 1})  # fmt: skip
    for _ in range(5000):  # leads' own activities
        activities.append({"kind": rng.choice(kinds), "subject": "連絡", "customer_id": rng.randint(1, CUSTOMERS),
                           "occurred_at": now - dt.timedelta(days=rng.randint(0, 90)), "version": 1})  # fmt: skip
    with transaction(engine) as s:
        for batch in _batches(changes):
            s.execute(insert(DealStageChange), batch)
        for batch in _batches(activities):
            s.execute(insert(Activity), batch)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pg-url", help="a PostgreSQL database to use (emptied first); default: a SQLite file")
    parser.add_argument("--closed", type=int, default=100_000)
    args = parser.parse_args()
    os.environ.setdefault("KIZUNA_HOME", tempfile.mkdtemp(prefix="kizuna-scoring-"))
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sqlalchemy import text

    from kizuna.auth.permissions import Actor
    from kizuna.db import make_engine, migrate, transaction
    from kizuna.outbox import registry
    from kizuna.sales.scoring import features, model, service

    if args.pg_url:
        engine = make_engine(args.pg_url)
        with engine.begin() as conn:
            conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
    else:
        engine = make_engine(f"sqlite:///{Path(os.environ['KIZUNA_HOME']) / 'scoring.db'}")
    migrate(engine)
    registry.load()
    started = time.perf_counter()
    build(engine, args.closed)
    built = time.perf_counter() - started
    print(f"{engine.dialect.name}: {args.closed:,} closed deals (+2,000 open) built in {built:.1f} s")
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            conn.execute(text("ANALYZE"))

    started = time.perf_counter()
    with transaction(engine) as s:
        if os.environ.get("BENCH_PROFILE"):
            import cProfile

            profiler = cProfile.Profile()
            result = profiler.runcall(service.train, s, actor=Actor.system("bench", origin="cli"))
            profiler.dump_stats(os.environ["BENCH_PROFILE"])
        else:
            result = service.train(s, actor=Actor.system("bench", origin="cli"))
    total = time.perf_counter() - started

    # Floors, on the same data: the feature read alone, and one bare logistic regression on the deal matrix.
    started = time.perf_counter()
    with transaction(engine) as s:
        rows = features.deal_rows(s, closed=True)
    read = time.perf_counter() - started
    columns = model.encoding(rows, features.DEAL_NUMERIC, features.DEAL_CATEGORICAL)
    x = model.matrix(rows, columns)
    y = np.array([r.label for r in rows])
    x = (x - x.mean(axis=0)) / np.maximum(x.std(axis=0), 1e-3)
    started = time.perf_counter()
    LogisticRegression(max_iter=1000).fit(x, y)
    bare = time.perf_counter() - started

    for m in result["models"]:
        print(f"  {m['subject']} model: {m['rows']:,} rows, cross-validated AUC {m['cv_auc']:.3f}")
    print(f"  scored: {result['scored']}")
    print(f"train (read, 5-fold CV, calibrated fit, lead model, store, rescore): {total:.1f} s (goal < {GOAL_S:.0f} s)")
    shape = f"{x.shape[0]:,}×{x.shape[1]}"
    print(
        f"floor: feature read alone {read:.1f} s; bare LogisticRegression fit on the same {shape} matrix {bare:.2f} s"
    )
    print("goal met" if total < GOAL_S else "GOAL MISSED")


if __name__ == "__main__":
    main()
