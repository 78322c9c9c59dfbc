"""A journey that mails: N customers enter a segment → wait 0 → branch (email consent) → email, run by ONE
worker on SQLite to an SMTP sink in another process, against the bare ``smtplib`` floor sending the same
rendered mails over one connection to the same sink, in the same run.

Goal (issue 14, "Speed"): the journey delivers at 80% or more of the floor's rate, every mail received once.
Timed from the segment refresh that lets the customers in (writing the ``segment.entered`` messages) until the
worker has nothing left: the outbox's batch deliveries enrol them, the engine runs the steps and queues the
messages, and the sender gates, renders and sends them (`kizuna.outbox.worker.run_once`, as `kizuna worker`).

    .venv/bin/python benchmarks/journey_email.py                     # 100,000 customers
    .venv/bin/python benchmarks/journey_email.py --customers 10000
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from email_send import IDENTITY, TEMPLATE, Sink, consented_customers, floor, rendered_mails  # noqa: E402


def build(engine, customers: int) -> int:  # noqa: ANN001
    """Consented customers, the template, the sender identity, a segment and the live journey; the segment id."""
    from kizuna.auth.permissions import Actor
    from kizuna.db import transaction
    from kizuna.journeys import service as journeys
    from kizuna.messaging import service, settings
    from kizuna.messaging.schemas import TemplateCreate
    from kizuna.segments import service as segments
    from kizuna.segments.schemas import SegmentCreate

    actor = Actor.system("bench")
    with transaction(engine) as s:
        consented_customers(s, customers)
        settings.save(s, actor=actor, channel="email", values=IDENTITY)
        service.create_template(s, actor=actor, data=TemplateCreate(**TEMPLATE))
        rule = {"attribute": "email", "op": "is_not_empty"}
        segment = segments.create_segment(s, actor=actor, data=SegmentCreate(name="bench: everyone", rule=rule))
        s.flush()
        definition = {
            "name": "bench: welcome",
            "trigger": {"type": "segment_entered", "segment": segment.id, "include_initial": True},
            "start": "w",
            "steps": [
                {"id": "w", "type": "wait", "duration": {"minutes": 0}, "next": "b"},
                {"id": "b", "type": "branch", "condition": {"consent": {"channel": "email"}}, "yes": "m", "no": "x"},
                {"id": "m", "type": "send", "channel": "email", "template": TEMPLATE["name"], "next": "x"},
                {"id": "x", "type": "exit"},
            ],
        }
        journeys.apply(s, actor=actor, definition=definition)
        return segment.id


def run(engine, segment_id: int) -> tuple[float, float, float]:  # noqa: ANN001
    """(seconds for the refresh, seconds for the worker until idle, seconds of this process's CPU for both)."""
    from kizuna.auth.permissions import Actor
    from kizuna.db import transaction
    from kizuna.outbox.worker import run_once
    from kizuna.segments import service as segments

    started, cpu = time.perf_counter(), time.process_time()
    with transaction(engine) as s:
        segments.refresh(s, segment_id, actor=Actor.system("bench"))
    refreshed = time.perf_counter()
    idle = 0
    while idle < 2:  # twice nothing: the engine's and the sender's last batches are behind us
        tally = run_once(engine, worker="bench-worker", limit=500)
        idle = idle + 1 if not (tally.done or tally.failed or tally.pumped) else 0
    return refreshed - started, time.perf_counter() - refreshed, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=100_000)
    args = parser.parse_args()
    data = HERE / "data"
    data.mkdir(exist_ok=True)
    db_path = data / "journey_email.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db_path}{suffix}").unlink(missing_ok=True)
    sink = Sink()
    os.environ.update(
        KIZUNA_DATABASE_URL=f"sqlite:///{db_path}",
        KIZUNA_HOME=str(data / "journey_email_home"),
        KIZUNA_SMTP_URL=f"smtp://127.0.0.1:{sink.port}",
        KIZUNA_PUBLIC_URL="https://crm.example.com",
    )
    from kizuna.config import get_settings
    from kizuna.db import make_engine, migrate

    engine = make_engine(get_settings().resolved_database_url)
    migrate(engine)
    segment_id = build(engine, args.customers)
    print(f"{args.customers:,} customers enter a segment → wait 0 → branch → email; SQLite, one worker, "
          "SMTP sink in another process", flush=True)  # fmt: skip
    try:
        sink.ask("reset")
        sink_cpu = sink.cpu()
        refresh_s, worker_s, worker_cpu = run(engine, segment_id)
        journey_sink = sink.cpu() - sink_cpu
        stats = sink.stats()
        once = stats["received"] == stats["unique"] == args.customers
        total = refresh_s + worker_s
        mails = rendered_mails(engine)
        sink.ask("reset")
        sink_cpu = sink.cpu()
        floor_s, floor_cpu = floor(sink.port, mails)
        floor_sink = sink.cpu() - sink_cpu
        journey_rate, floor_rate = args.customers / total, len(mails) / floor_s
        ratio = journey_rate / floor_rate
        print(
            f"journey: {journey_rate:,.0f} mails/s "
            f"({total:.1f} s: refresh {refresh_s:.1f} s, worker {worker_s:.1f} s); "
            f"floor (smtplib loop, same rendered mails) {floor_rate:,.0f} mails/s ({floor_s:.1f} s); "
            f"journey/floor {ratio:.0%} (goal >= 80%: {'PASS' if ratio >= 0.8 else 'FAIL'}); "
            f"every mail received exactly once: {'yes' if once else f'NO {stats}'}",
            flush=True,
        )
        per = 1e6 / args.customers
        print(
            f"CPU per mail: journey worker {worker_cpu * per:,.0f} µs + sink {journey_sink * per:,.0f} µs; "
            f"floor client {floor_cpu * per:,.0f} µs + sink {floor_sink * per:,.0f} µs; "
            f"load average {os.getloadavg()[0]:.1f}",
            flush=True,
        )
    finally:
        sink.close()


if __name__ == "__main__":
    main()
