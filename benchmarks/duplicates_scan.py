"""Duplicate scan on 1,000,000 customers: the background job against its 60 s target, and its floor.

    .venv/bin/python benchmarks/duplicates_scan.py                      # SQLite, 1M customers (built once)
    .venv/bin/python benchmarks/duplicates_scan.py --database postgresql \\
        --pg-url postgresql+psycopg://postgres@127.0.0.1:5432/kz_dups  # schema dups_bench of that database
    .venv/bin/python benchmarks/duplicates_scan.py --customers 100000    # quick

What runs, in order, on the data set of ``duplicates_data.py`` (pairs and scans of earlier runs removed first):

1. **worker path** (the figure against the target): "scan now" as the UI asks it (``request_scan``: a scan row
   and a ``duplicates.scan_requested`` message, committed), then one ``run_once`` of the outbox worker in this
   process, timed from the claim to the commit of the delivery with every new pair stored;
2. **again** (``run_scan`` directly): every pair is known by now, so nothing is proposed (idempotence), and
   the time is the rules plus the look-up of known pairs;
3. **floor**: each rule's statement (``duplicate_scan.key_query``, compiled with its values inlined) run
   through bare ``sqlite3`` / ``psycopg`` (a server-side cursor, as SQLAlchemy's ``yield_per`` streams it),
   every key put in a plain dict: reading and grouping the keys, without SQLAlchemy, without pairing them or
   storing anything.

The CPU figures are this process's: on SQLite they include the database's own work (it runs in-process), on
PostgreSQL they do not (the server's is apart). On this shared 2-core machine wall time swings with other
engineers' jobs, so the load average is printed with the figures.

It also reads how many planted duplicates the scan proposed (recall, per kind) and how many other pairs
(people who share a name and a phone, a reading and a birth date ... by chance in this data).
"""

from __future__ import annotations

import argparse
import os
import resource
import sqlite3
import sys
import time
from pathlib import Path

import duplicates_data as data
from customer360_data import _pg, prewarm_postgresql, prewarm_sqlite

TARGET_SECONDS = 60.0
HERE = Path(__file__).parent


def _clear(engine) -> None:  # noqa: ANN001
    from sqlalchemy import text

    with engine.begin() as conn:
        for table in ("outbox_deliveries", "outbox", "customer_duplicates", "customer_duplicate_scans", "audit_log"):
            conn.execute(text(f"DELETE FROM {table}"))


def _floor(engine, url: str) -> list[tuple[str, float, float, int]]:  # noqa: ANN001
    """Each rule's key statement through the bare driver, its keys grouped in a plain dict: (rule, wall, CPU,
    customers in shared keys)."""
    from kizuna.customers import duplicate_scan

    results = []
    dialect = engine.dialect
    for rule in duplicate_scan.rules(dialect.name):
        statement = str(duplicate_scan.key_query(rule).compile(dialect=dialect, compile_kwargs={"literal_binds": True}))
        started, cpu = time.perf_counter(), time.process_time()
        if dialect.name == "sqlite":
            con = sqlite3.connect(url.split("///", 1)[1])
            con.execute("PRAGMA cache_size=-65536")  # as kizuna.db's engine sets it
            rows = con.execute(statement)
        else:
            con = _pg(url)
            rows = con.cursor(name="floor")  # server-side, as SQLAlchemy's yield_per streams it
            rows.itersize = 50_000
            rows.execute(statement.replace("%", "%%"))
        first: dict = {}
        shared = 0
        for customer_id, key, _detail in rows:
            if key is not None and first.setdefault(key, customer_id) != customer_id:
                shared += 1
        con.close()
        results.append((rule.name, time.perf_counter() - started, time.process_time() - cpu, shared))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--dup-rate", type=float, default=0.02)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--pg-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/kz_dups")
    parser.add_argument("--pg-schema", default="dups_bench")
    parser.add_argument("--rebuild", action="store_true")
    args = parser.parse_args()

    folder = HERE / "data"
    folder.mkdir(exist_ok=True)
    os.environ.setdefault("KIZUNA_HOME", str(folder / "home"))
    p = data.Params(customers=args.customers, dup_rate=args.dup_rate, seed=args.seed)
    if args.database == "sqlite":
        url = data.sqlite_database(folder, p, rebuild=args.rebuild)
        prewarm_sqlite(url)
    else:
        url = data.postgresql_database(args.pg_url, folder, p, schema=args.pg_schema, rebuild=args.rebuild)
        prewarm_postgresql(url)

    from sqlalchemy import func, select

    from kizuna.auth.permissions import Actor
    from kizuna.customers import duplicate_scan
    from kizuna.customers.models import Customer, DuplicatePair, DuplicateScan
    from kizuna.db import make_engine, migrate, transaction
    from kizuna.outbox.worker import run_once

    engine = make_engine(url)
    migrate(engine)
    _clear(engine)
    actor = Actor.system("bench", origin="ui")
    with transaction(engine) as session:
        active = session.scalar(select(func.count()).select_from(Customer).where(Customer.status == "active"))
        scan_id = duplicate_scan.request_scan(session, actor=actor).id

    started = time.perf_counter()
    cpu = time.process_time()
    tally = run_once(engine)
    worker_wall, worker_cpu = time.perf_counter() - started, time.process_time() - cpu
    if tally.done != 1:
        sys.exit(f"the worker did not finish the scan: {tally}")
    with transaction(engine) as session:
        scan = session.get(DuplicateScan, scan_id)
        assert scan is not None and scan.status == "done"
        first = {"candidates": scan.candidates, "proposed": scan.proposed, "details": scan.details}
        found = {(a, b): r for a, b, r in session.execute(select(DuplicatePair.customer_id,
                                                                   DuplicatePair.other_customer_id,
                                                                   DuplicatePair.reason))}  # fmt: skip

    started = time.perf_counter()
    with transaction(engine) as session:
        again = duplicate_scan.run_scan(session, actor=actor)
        again_proposed = again.proposed
    again_wall = time.perf_counter() - started
    floor = _floor(engine, url)
    floor_total = sum(took for _, took, _, _ in floor)
    floor_cpu = sum(cpu for _, _, cpu, _ in floor)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    planted = data.planted_pairs(folder, p)
    by_kind: dict[str, list[int]] = {}
    for original, duplicate, kind in planted:
        hit = (min(original, duplicate), max(original, duplicate)) in found
        by_kind.setdefault(kind, [0, 0])
        by_kind[kind][0] += hit
        by_kind[kind][1] += 1
    planted_keys = {(min(a, b), max(a, b)) for a, b, _ in planted}
    others = sum(1 for key in found if key not in planted_keys)

    print()
    print(
        f"{args.database}: {active:,} active customers, max block {duplicate_scan.MAX_BLOCK}, "
        f"load {os.getloadavg()[0]:.1f}"
    )
    print(f"{'rule':<14}{'blocks':>10}{'pairs':>10}{'too large':>11}{'seconds':>9}   floor s  floor CPU s")
    for name, took, cpu_, _ in floor:
        tally_ = first["details"]["rules"][name]
        print(
            f"{name:<14}{tally_['blocks']:>10,}{tally_['pairs']:>10,}{tally_['oversized']:>11,}"
            f"{tally_['seconds']:>9.2f}{took:>10.2f}{cpu_:>12.2f}"
        )
    verdict = "PASS" if worker_wall < TARGET_SECONDS else "FAIL"
    print(
        f"worker path: {worker_wall:.1f} s wall ({worker_cpu:.1f} s CPU in this process), "
        f"{first['candidates']:,} candidate pairs, {first['proposed']:,} proposed: target < {TARGET_SECONDS:.0f} s "
        f"{verdict}"
    )
    print(f"storing the pairs (known ones read, new ones inserted): {first['details']['store_seconds']:.1f} s")
    print(f"again (all known): {again_wall:.1f} s, {again_proposed:,} proposed")
    print(f"floor (the rules' statements, bare driver, keys grouped in a dict): {floor_total:.1f} s wall, "
          f"{floor_cpu:.1f} s CPU; worker path / floor = {worker_wall / floor_total:.2f}x wall")  # fmt: skip
    recall = ", ".join(f"{kind} {hit:,}/{n:,}" for kind, (hit, n) in sorted(by_kind.items()))
    total_hit = sum(h for h, _ in by_kind.values())
    print(f"planted duplicates proposed: {total_hit:,}/{len(planted):,} ({recall}); other pairs: {others:,}")
    print(f"peak memory of this process: {peak_mb:,.0f} MB")
    engine.dispose()


if __name__ == "__main__":
    main()
