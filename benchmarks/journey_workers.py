"""Are two workers faster than one? A journey that mails (segment entered → wait 0 → branch → email), run by one
and then by two real ``kizuna worker`` processes on PostgreSQL, to an SMTP sink in another process that takes
a few milliseconds to accept each mail, as a relay across a network does.

Goal (issue 14, "Worker"): on PostgreSQL, two workers are faster than one; every mail received exactly once.
Each run starts from a fresh database: N consented customers, the live journey, then the segment refresh that
lets them in; timed from starting the workers until the sink has every mail.

    .venv/bin/python benchmarks/journey_workers.py                           # 5,000 customers, 5 ms per mail
    .venv/bin/python benchmarks/journey_workers.py --customers 2000 --delay-ms 0
    .venv/bin/python benchmarks/journey_workers.py --database postgresql+psycopg://postgres@127.0.0.1:5432/kz_bench
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from email_send import Sink  # noqa: E402
from journey_email import build  # noqa: E402

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/kz_bench_workers"


def fresh_database(url: str) -> None:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    target = make_url(url)
    admin = create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{target.database}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{target.database}"'))
    admin.dispose()


def one_run(url: str, customers: int, workers: int, sink: Sink, home: Path) -> tuple[float, dict[str, int]]:
    from kizuna.auth.permissions import Actor
    from kizuna.db import make_engine, migrate, transaction
    from kizuna.segments import service as segments

    fresh_database(url)
    engine = make_engine(url)
    migrate(engine)
    segment_id = build(engine, customers)
    with transaction(engine) as s:
        segments.refresh(s, segment_id, actor=Actor.system("bench"))
    engine.dispose()
    sink.ask("reset")
    env = {**os.environ, "PYTHONPATH": str(HERE.parent)}
    started = time.perf_counter()
    procs = [
        subprocess.Popen(  # noqa: S603 - our interpreter, our CLI
            [sys.executable, "-m", "kizuna", "worker", "--poll", "0.05"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=(home / f"worker{n}.log").open("wb"),
        )
        for n in range(workers)
    ]
    try:
        deadline = started + 3600
        while (stats := sink.stats())["received"] < customers:
            if time.perf_counter() > deadline or any(p.poll() is not None for p in procs):
                raise SystemExit(f"the workers stopped or took too long: {stats}; see {home}/worker*.log")
            time.sleep(0.05)
        elapsed = time.perf_counter() - started
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            p.wait(30)
    time.sleep(0.5)  # a mail in flight at the end would show as a repeat
    return elapsed, sink.stats()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=5000)
    parser.add_argument("--delay-ms", type=float, default=5.0, help="how long the sink takes to accept each mail")
    parser.add_argument("--database", default=DEFAULT_URL, help="a PostgreSQL URL; the database is dropped first")
    args = parser.parse_args()
    home = HERE / "data" / "journey_workers_home"
    home.mkdir(parents=True, exist_ok=True)
    sink = Sink(delay_ms=args.delay_ms)
    os.environ.update(
        KIZUNA_DATABASE_URL=args.database,
        KIZUNA_HOME=str(home),
        KIZUNA_SMTP_URL=f"smtp://127.0.0.1:{sink.port}",
        KIZUNA_PUBLIC_URL="https://crm.example.com",
    )
    print(
        f"{args.customers:,} customers enter a segment → wait 0 → branch → email; PostgreSQL; "
        f"an SMTP sink in another process taking {args.delay_ms:g} ms per mail",
        flush=True,
    )
    try:
        rates = {}
        for workers in (1, 2):
            elapsed, stats = one_run(args.database, args.customers, workers, sink, home)
            once = stats["received"] == stats["unique"] == args.customers
            rates[workers] = args.customers / elapsed
            print(
                f"{workers} worker{'s' if workers > 1 else ''}: {rates[workers]:,.0f} mails/s ({elapsed:.1f} s); "
                f"every mail received exactly once: {'yes' if once else f'NO {stats}'}",
                flush=True,
            )
        speedup = rates[2] / rates[1]
        print(
            f"two workers / one: {speedup:.2f}x (goal > 1: {'PASS' if speedup > 1 else 'FAIL'}); "
            f"load average {os.getloadavg()[0]:.1f}",
            flush=True,
        )
    finally:
        sink.close()


if __name__ == "__main__":
    main()
