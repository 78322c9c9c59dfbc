"""NPS reports over many answers: by month, segment, touchpoint and owner, each against a floor measured in the
same run.

No speed goal is set for NPS (issue 17); this records what a report costs and keeps it honest: every breakdown is
counted in the database (the month by one CASE over the months' first instants in the configured zone), so a
report should stay a small multiple of the **floor**: one hand-written query that reads every answer of the
survey once and counts them by score (``SELECT score, count(*) ... GROUP BY score``), the least any NPS needs.

Data (deterministic, seed 17): 50,000 customers (a fifth each owned by one of five users), a segment holding a
third of them, and ``--answers`` answers of one survey spread over 24 months with four touchpoints.

    .venv/bin/python benchmarks/nps_report.py
    .venv/bin/python benchmarks/nps_report.py --answers 1000000
    .venv/bin/python benchmarks/nps_report.py --database postgresql --pg-url postgresql+psycopg://postgres@127.0.0.1:5432/kz_bench_nps
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from sqlalchemy import insert, text  # noqa: E402

CUSTOMERS = 50_000
TOUCHPOINTS = ("purchase", "support", "delivery", "onboarding")


def build(engine, answers: int) -> int:  # noqa: ANN001
    from kizuna.auth.models import User
    from kizuna.customers.models import Customer
    from kizuna.db import transaction
    from kizuna.segments.models import Segment, SegmentMembership
    from kizuna.surveys.models import Survey, SurveyResponse

    rng = random.Random(17)
    now = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
    with transaction(engine) as s:
        s.execute(
            insert(User), [{"email": f"owner{i}@example.com", "name": f"担当{i}", "role": "sales"} for i in range(5)]
        )
        owners = [None, *s.scalars(text("SELECT id FROM users ORDER BY id"))]
        s.execute(
            insert(Customer),
            [{"email": f"c{i}@example.jp", "owner_id": owners[i % 6]} for i in range(CUSTOMERS)],
        )
        ids = list(s.scalars(text("SELECT id FROM customers ORDER BY id")))
        s.execute(insert(Segment), [{"name": "bench segment", "kind": "static"}])
        segment_id = s.scalar(text("SELECT id FROM segments"))
        s.execute(
            insert(SegmentMembership),
            [{"segment_id": segment_id, "customer_id": c, "entered_at": now} for c in ids[::3]],
        )
        s.execute(insert(Survey), [{"name": "bench", "question_ja": "?", "question_en": "?", "touchpoint": "purchase"}])
        survey_id = s.scalar(text("SELECT id FROM surveys"))
        rows = []
        for n in range(answers):
            at = now - dt.timedelta(seconds=rng.randrange(0, 730 * 86400))
            rows.append({
                "survey_id": survey_id, "customer_id": ids[n % CUSTOMERS], "score": rng.choice(range(11)),
                "comment": "", "touchpoint": TOUCHPOINTS[n % 4], "source": "link", "send_key": f"k{n}",
                "answered_at": at, "updated_at": at,
            })  # fmt: skip
            if len(rows) == 50_000:
                s.execute(insert(SurveyResponse), rows)
                rows = []
        if rows:
            s.execute(insert(SurveyResponse), rows)
    return survey_id


def timed(fn, repeat: int = 5) -> float:  # noqa: ANN001
    runs = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - start)
    return statistics.median(runs)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--answers", type=int, default=200_000)
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--pg-url", default="")
    args = parser.parse_args()
    from kizuna.db import make_engine, migrate, new_session

    if args.database == "sqlite":
        path = HERE / "data" / "nps.db"
        path.parent.mkdir(exist_ok=True)
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        engine = make_engine(f"sqlite:///{path}")
    else:
        if "bench" not in args.pg_url:
            sys.exit("--pg-url must name a database whose name contains 'bench' (it is emptied)")
        engine = make_engine(args.pg_url)
        with engine.begin() as conn:
            conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
    migrate(engine)
    survey_id = build(engine, args.answers)
    from kizuna.surveys.report import report

    floor_sql = text("SELECT score, count(*) FROM survey_responses WHERE survey_id = :s GROUP BY score")
    with new_session(engine) as session:
        floor = timed(lambda: session.execute(floor_sql, {"s": survey_id}).all())
        print(f"{args.answers:,} answers, {args.database}; floor (count by score): {floor * 1000:.1f} ms")
        for by in ("month", "segment", "touchpoint", "owner"):
            found = report(session, survey_id, by=by)
            took = timed(lambda by=by: report(session, survey_id, by=by))
            shown = f"({len(found.rows)} rows, NPS {found.total.nps})"
            print(f"  by {by:<10} {took * 1000:8.1f} ms  {took / floor:5.1f}x floor  {shown}")


if __name__ == "__main__":
    main()
