"""CPU per tracking batch, in process: ``service.ingest`` on prepared batches of 100, no HTTP, one commit a batch.

Prints the wall and CPU milliseconds per batch and, with ``--profile``, the functions that took the most time
(cProfile, cumulative and own time). The batches are ``ingest_batch.py``'s (page and track calls of
``events / 50`` browsers, one in ten signed in), so the figures explain that benchmark's server side.

    .venv/bin/python benchmarks/ingest_profile.py --events 20000 --profile
    .venv/bin/python benchmarks/ingest_profile.py --pg-url postgresql+psycopg://postgres@127.0.0.1:5432/kz_bench_x
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ingest_batch import bodies, prepare  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=20_000, help="events stored before the measured batches")
    parser.add_argument("--measure", type=int, default=100, help="batches measured (after --events)")
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--pg-url", default="", help="a PostgreSQL database whose name contains 'bench' (emptied)")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--top", type=int, default=30)
    args = parser.parse_args()
    if args.pg_url and "bench" not in args.pg_url.rsplit("/", 1)[-1]:
        raise SystemExit("--pg-url must name a database whose name contains 'bench' (the run empties it)")
    tmp = tempfile.mkdtemp(prefix="kz-ingest-profile-")
    url = args.pg_url or f"sqlite:///{tmp}/ingest.db"
    key = prepare(url)

    from kizuna.db import make_engine, new_session
    from kizuna.ingest import service, sources

    total = args.events + args.measure * args.batch
    visitors = max(1, total // 50)
    payloads = [json.loads(b)["batch"] for b in bodies(total, args.batch, visitors)]
    engine = make_engine(url)

    def store(messages: list) -> None:
        with service.one_writer(engine):
            session = new_session(engine)
            try:
                source = sources.authenticate(session, key)
                outcome = service.ingest(session, source=source, messages=messages)
                session.commit()
            finally:
                session.close()
        assert not outcome.rejected, outcome.rejected[:3]

    warm = args.events // args.batch
    for messages in payloads[:warm]:
        store(messages)
    measured = payloads[warm:]
    profile = cProfile.Profile() if args.profile else None
    wall, cpu = time.perf_counter(), time.process_time()
    if profile is not None:
        profile.enable()
    for messages in measured:
        store(messages)
    if profile is not None:
        profile.disable()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    n = len(measured)
    print(
        f"{engine.dialect.name}: {n} batches of {args.batch} after {args.events:,} events: "
        f"{wall / n * 1000:.1f} ms wall, {cpu / n * 1000:.1f} ms CPU per batch "
        f"({n * args.batch / cpu:,.0f} events per CPU second){' (profiled)' if profile else ''}"
    )
    if profile is not None:
        stats = pstats.Stats(profile)
        stats.sort_stats("cumulative").print_stats(args.top)
        stats.sort_stats("tottime").print_stats(args.top)
    engine.dispose()
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
