"""Journey steps that send nothing, and the trigger path, on SQLite with one worker.

Goal (issue 14, "Speed"): steps that send nothing (waits, branches, tags) run at 5,000 or more per second.

1. Steps: 100,000 customers enrolled in a journey wait 0 → branch (prefecture is 東京都) → tag (yes: "tokyo",
   no: "elsewhere") → exit, four steps each, run by ``journeys.engine.run_pass`` (the worker's pump) until nothing
   is due. The floor, measured in the same run on a copy of the same database: the same writes with bare
   ``sqlite3`` and nothing else, batch for batch (the step log's rows, the tag links, one set-based UPDATE of the
   enrollments per batch), without reading the definition, the branch's query, the audit entries or the outbox
   messages the tags write.
2. Triggers: a segment refresh writes 100,000 ``segment.entered`` messages; the worker's outbox loop (claims of
   100, the journeys subscriber topping them up to batches of 500) turns them into 100,000 enrollments. Floor:
   one bare ``executemany`` of the same 100,000 enrollment rows. Beside it, a tenth of the customers through
   one delivery per transaction, as the outbox delivered before batch subscribers.

    .venv/bin/python benchmarks/journey_steps.py
    .venv/bin/python benchmarks/journey_steps.py --customers 20000
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import sqlite3
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

STEPS = [
    {"id": "w", "type": "wait", "duration": "P0D", "next": "b"},
    {"id": "b", "type": "branch", "condition": {"attribute": "prefecture", "op": "eq", "value": "東京都"},
     "yes": "t_yes", "no": "t_no"},
    {"id": "t_yes", "type": "tag", "add": ["tokyo"], "next": "x"},
    {"id": "t_no", "type": "tag", "add": ["elsewhere"], "next": "x"},
    {"id": "x", "type": "exit"},
]  # fmt: skip


def load_customers(path: Path, count: int) -> None:
    """``count`` customers, a third of them in Tokyo, written with bare sqlite3 (not timed)."""
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S.000000")
    prefectures = ("東京都", "大阪府", "愛知県")
    con = sqlite3.connect(path)
    con.executemany(
        "INSERT INTO customers (full_name, family_name, prefecture, timezone, locale, lifecycle_stage, status, "
        "attributes, version, created_at, updated_at) VALUES (?, ?, ?, 'Asia/Tokyo', 'ja', 'customer', 'active', "
        "'{}', 1, ?, ?)",
        ((f"客{n}", f"客{n}", prefectures[n % 3], now, now) for n in range(count)),
    )
    con.commit()
    con.close()


def checkpoint(path: Path) -> None:
    con = sqlite3.connect(path)
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()


def floor_steps(path: Path, batch: int) -> tuple[float, int]:
    """The engine's writes for the enrolled customers with bare sqlite3, batch for batch: (seconds, steps)."""
    con = sqlite3.connect(path, isolation_level=None)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=NORMAL")
    rows = con.execute(
        "SELECT e.id, e.journey_id, e.customer_id, c.prefecture FROM journey_enrollments e "
        "JOIN customers c ON c.id = e.customer_id ORDER BY e.id"
    ).fetchall()
    con.execute("INSERT INTO tags (name) VALUES ('tokyo'), ('elsewhere')")
    tag = dict(con.execute("SELECT name, id FROM tags WHERE name IN ('tokyo', 'elsewhere')").fetchall())
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    started = time.perf_counter()
    steps = 0
    for first in range(0, len(rows), batch):
        part = rows[first : first + batch]
        con.execute("BEGIN IMMEDIATE")
        log = []
        for enrollment, journey, _, prefecture in part:
            branch = "t_yes" if prefecture == "東京都" else "t_no"
            log += [(enrollment, journey, "w", None, now), (enrollment, journey, "b", "w", now),
                    (enrollment, journey, branch, "b", now), (enrollment, journey, "x", branch, now)]  # fmt: skip
        con.executemany(
            "INSERT INTO journey_steps (enrollment_id, journey_id, step, from_step, at) VALUES (?, ?, ?, ?, ?)", log
        )
        con.executemany(
            "INSERT INTO customer_tags (customer_id, tag_id) VALUES (?, ?)",
            [(c, tag["tokyo" if p == "東京都" else "elsewhere"]) for _, _, c, p in part],
        )
        ids = ",".join(str(r[0]) for r in part)
        con.execute(
            "UPDATE journey_enrollments SET status = 'completed', step = 'x', next_at = NULL, finished_at = ?, "
            f"locked_by = NULL, locked_until = NULL, attempts = 0 WHERE id IN ({ids})",
            (now,),
        )
        con.execute("COMMIT")
        steps += len(log)
    return time.perf_counter() - started, steps


def floor_enrollments(path: Path, count: int, journey_id: int, version_id: int) -> float:
    con = sqlite3.connect(path, isolation_level=None)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=NORMAL")
    con.execute("DELETE FROM journey_enrollments")
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    started = time.perf_counter()
    con.execute("BEGIN IMMEDIATE")
    con.executemany(
        "INSERT INTO journey_enrollments (journey_id, version_id, customer_id, entry_key, status, step, next_at, "
        "attempts, holdout, entered_at) VALUES (?, ?, ?, ?, 'active', 'w', ?, 0, 0, ?)",
        ((journey_id, version_id, n + 1, f"m:{n}", now, now) for n in range(count)),
    )
    con.execute("COMMIT")
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=1000, help="enrollments per engine pass (the pump's default)")
    args = parser.parse_args()
    work = HERE / "data" / "journeys"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    os.environ["KIZUNA_HOME"] = str(work)
    db = work / "kizuna.db"
    url = f"sqlite:///{db}"
    os.environ["KIZUNA_DATABASE_URL"] = url
    from sqlalchemy import func, select

    from kizuna.auth.permissions import Actor
    from kizuna.db import make_engine, migrate, new_session, transaction
    from kizuna.journeys import engine as journey_engine
    from kizuna.journeys import service
    from kizuna.journeys.models import JourneyEnrollment, JourneyStep
    from kizuna.outbox import registry
    from kizuna.outbox import service as outbox
    from kizuna.segments import service as segments
    from kizuna.segments.schemas import SegmentCreate

    engine = make_engine(url)
    migrate(engine)
    registry.load()
    load_customers(db, args.customers)
    actor = Actor.system("bench")
    print(f"{args.customers:,} customers on SQLite ({db}); engine passes of {args.batch:,}", flush=True)

    # --- 1. steps that send nothing ---
    with transaction(engine) as s:
        definition = {"name": "bench: steps", "trigger": {"type": "manual"}, "start": "w", "steps": STEPS}
        journey_id = service.apply(s, actor=actor, definition=definition).journey.id
    ids = list(range(1, args.customers + 1))
    with transaction(engine) as s:
        service.enroll_customers(s, journey_id, actor=actor, customer_ids=ids)
    checkpoint(db)
    copy = work / "floor.db"
    shutil.copyfile(db, copy)
    started = time.perf_counter()
    handled = journey_engine.run_until_idle(engine, "bench-worker", limit=args.batch)
    took = time.perf_counter() - started
    with new_session(engine) as s:
        steps = s.scalar(select(func.count()).select_from(JourneyStep))
        done = s.scalar(select(func.count()).where(JourneyEnrollment.status == "completed"))
    floor_s, floor_n = floor_steps(copy, args.batch)
    rate, floor_rate = steps / took, floor_n / floor_s
    print(f"steps: {steps:,} steps for {handled:,} enrollments ({done:,} completed) in {took:.2f} s = "
          f"{rate:,.0f} steps/s; floor (bare sqlite3, same writes) {floor_n:,} in {floor_s:.2f} s = "
          f"{floor_rate:,.0f} steps/s; engine/floor {rate / floor_rate:.2f}; goal >= 5,000 steps/s: "
          f"{'PASS' if rate >= 5000 else 'FAIL'}", flush=True)  # fmt: skip

    # --- 2. the trigger path: segment.entered messages -> enrollments ---
    # What it cost before batch delivery, on a tenth of the customers: each delivery in its own transaction.
    tenth = max(1, args.customers // 10)
    with transaction(engine) as s:
        few = segments.create_segment(
            s,
            actor=actor,
            data=SegmentCreate(name="bench: a tenth", rule={"attribute": "id", "op": "lte", "value": tenth}),
        )
        trigger = {"type": "segment_entered", "segment": few.id, "include_initial": True}
        single_id = service.apply(
            s, actor=actor, definition={**definition, "name": "bench: one by one", "trigger": trigger}
        ).journey.id
    with transaction(engine) as s:
        segments.refresh(s, few.id, actor=actor)
    started = time.perf_counter()
    worker = outbox.worker_name()
    while True:
        with new_session(engine) as s:
            claimed = outbox.claim(s, worker=worker, limit=100)
            s.commit()
        if not claimed:
            break
        for delivery_id in claimed:
            outbox.deliver(engine, worker=worker, delivery_id=delivery_id)
    single_s = time.perf_counter() - started
    with new_session(engine) as s:
        single_n = s.scalar(select(func.count()).where(JourneyEnrollment.journey_id == single_id))
    print(f"triggers one delivery per transaction (as before batch delivery): {single_n:,} enrollments in "
          f"{single_s:.2f} s = {single_n / single_s:,.0f}/s", flush=True)  # fmt: skip
    with transaction(engine) as s:
        segment = segments.create_segment(
            s,
            actor=actor,
            data=SegmentCreate(name="bench: everyone", rule={"attribute": "locale", "op": "eq", "value": "ja"}),
        )
        trigger = {"type": "segment_entered", "segment": segment.id, "include_initial": True}
        applied = service.apply(s, actor=actor, definition={**definition, "name": "bench: trigger", "trigger": trigger})
        second, version_id = applied.journey.id, applied.version.id
    started = time.perf_counter()
    with transaction(engine) as s:
        entered = segments.refresh(s, segment.id, actor=actor).entered
    refresh_s = time.perf_counter() - started
    started = time.perf_counter()
    while True:
        with new_session(engine) as s:
            claimed = outbox.claim(s, worker=worker, limit=100)
            s.commit()
        if not claimed:
            break
        outbox.deliver_claimed(engine, worker=worker, delivery_ids=claimed)
    trigger_s = time.perf_counter() - started
    with new_session(engine) as s:
        enrolled = s.scalar(select(func.count()).where(JourneyEnrollment.journey_id == second))
    floor_e = floor_enrollments(copy, args.customers, second, version_id)
    print(f"triggers: segment refresh wrote {entered:,} segment.entered messages in {refresh_s:.2f} s (not counted); "
          f"the worker turned them into {enrolled:,} enrollments in {trigger_s:.2f} s = {enrolled / trigger_s:,.0f}/s; "
          f"floor (bare executemany of the rows) {floor_e:.2f} s = {args.customers / floor_e:,.0f}/s")  # fmt: skip
    engine.dispose()


if __name__ == "__main__":
    main()
