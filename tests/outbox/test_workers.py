"""Real ``kizuna worker`` processes racing on one queue, and one killed with SIGKILL mid-batch.

Database effects (an audit row per handling) must happen exactly once per delivery; outside effects (a POST
to a real HTTP receiver) at least once, under one key per delivery, so that repeats are countable.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from sqlalchemy import func, select

from kizuna.auth.models import AuditEntry
from kizuna.db import transaction
from kizuna.outbox import service as outbox
from kizuna.outbox.models import OutboxDelivery

ROOT = Path(__file__).resolve().parents[2]


def start_worker(engine, tmp_path: Path, *, batch: int, lease: int = 30) -> subprocess.Popen:  # noqa: ANN001
    env = {
        **os.environ,
        "KIZUNA_DATABASE_URL": engine.url.render_as_string(hide_password=False),
        "KIZUNA_HOME": str(tmp_path),
        "KIZUNA_EXTRA_SUBSCRIBERS": "tests.outbox.probe",
        "KIZUNA_OUTBOX_LEASE_SECONDS": str(lease),
        "PYTHONPATH": str(ROOT),
    }
    return subprocess.Popen(
        [sys.executable, "-m", "kizuna", "worker", "--batch", str(batch), "--poll", "0.05"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def wait_ready(procs: list[subprocess.Popen]) -> None:
    """Each worker has migrated, loaded its subscribers and entered its loop (it says so on stdout)."""
    for p in procs:
        line = p.stdout.readline().decode()
        assert "worker running" in line, p.stderr.read().decode()[-2000:]


def wait_until(predicate, seconds: float, procs: list[subprocess.Popen]) -> None:  # noqa: ANN001
    deadline = time.monotonic() + seconds
    while not predicate():
        for p in procs:
            if p.poll() is not None and p.returncode not in (0, -signal.SIGKILL):
                raise AssertionError(f"worker exited with {p.returncode}: {p.stderr.read().decode()[-2000:]}")
        if time.monotonic() > deadline:
            raise AssertionError("deliveries did not finish in time")
        time.sleep(0.1)


def stop(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(15)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def unfinished(engine) -> int:  # noqa: ANN001
    with transaction(engine) as s:
        return s.scalar(select(func.count()).select_from(OutboxDelivery).where(OutboxDelivery.status != "done"))


def effects(engine) -> list[AuditEntry]:  # noqa: ANN001
    with transaction(engine) as s:
        return list(s.scalars(select(AuditEntry).where(AuditEntry.entity_type == "outbox_probe")))


def test_three_workers_racing_deliver_every_message_once_per_subscriber(db, tmp_path, probe, receiver):
    messages = 60
    workers = [start_worker(db, tmp_path, batch=7) for _ in range(3)]
    try:
        wait_ready(workers)  # all three are polling before the first message commits: a real race
        with transaction(db) as s:
            for n in range(messages):
                payload = {"n": n, "url": receiver.url, "sleep": 0.01, "targets": ["t1", "t2"]}
                outbox.emit(s, "probe.ping", payload, origin="api")
        wait_until(lambda: unfinished(db) == 0, 120, workers)
    finally:
        stop(workers)

    rows = effects(db)
    per_key = Counter(r.entity_id for r in rows)
    # probe-a, probe-b and two fan-out targets handle each message; probe-fan's own delivery only fans out.
    expected = messages * 4
    assert len(per_key) == expected
    assert max(per_key.values()) == 1, f"database effects repeated: {per_key.most_common(3)}"
    assert set(receiver.raw) == set(per_key)
    # The race was real: more than one process did the work. On PostgreSQL workers claim side by side (SKIP
    # LOCKED), so all three take part. On SQLite every delivery takes the one write lock, and which waiting
    # process gets it next is up to the scheduler: on a busy machine one worker may take every batch, which
    # is correct behaviour (the claims above still raced), so only PostgreSQL is held to it.
    if db.dialect.name == "postgresql":
        assert len({r.details["worker"] for r in rows}) >= 2
    print(f"\n{expected} deliveries, outside calls {sum(receiver.raw.values())}, raw repeats {receiver.repeats}")


def test_a_worker_killed_mid_batch_loses_nothing_and_repeats_no_database_effect(db, tmp_path, probe, receiver):
    messages = 24
    with transaction(db) as s:
        for n in range(messages):
            outbox.emit(s, "probe.slow", {"n": n, "url": receiver.url, "sleep": 0.15}, origin="api")
    victim = start_worker(db, tmp_path, batch=20, lease=2)
    try:
        # Kill it once it is well into its batch: it has finished some deliveries and holds leases on more.
        wait_until(lambda: len(effects(db)) >= 4, 60, [victim])
        victim.send_signal(signal.SIGKILL)
        victim.wait(10)
        killed_after = len(effects(db))
        assert killed_after < messages
        rescuers = [start_worker(db, tmp_path, batch=5, lease=2) for _ in range(2)]
        try:
            wait_until(lambda: unfinished(db) == 0, 120, rescuers)
        finally:
            stop(rescuers)
    finally:
        if victim.poll() is None:
            victim.kill()

    per_key = Counter(r.entity_id for r in effects(db))
    assert len(per_key) == messages
    assert max(per_key.values()) == 1, f"database effects repeated: {per_key.most_common(3)}"
    assert set(receiver.raw) == set(per_key)
    with transaction(db) as s:
        retaken = s.scalar(select(func.count()).select_from(OutboxDelivery).where(OutboxDelivery.attempts > 1))
    assert retaken >= 1  # the deliveries the victim held were taken over after its lease
    print(f"\nkilled after {killed_after}; raw repeats of outside calls {receiver.repeats}, retaken {retaken}")


def test_outbox_cli_shows_status_lists_dead_and_retries(db, tmp_path, probe):
    from sqlalchemy import update

    with transaction(db) as s:
        outbox.emit(s, "probe.slow", {"n": 1}, origin="cli")
    with transaction(db) as s:
        s.execute(update(OutboxDelivery).values(status="dead", attempts=10, last_error="RuntimeError: gone"))
    env = {
        **os.environ,
        "KIZUNA_DATABASE_URL": db.url.render_as_string(hide_password=False),
        "KIZUNA_HOME": str(tmp_path),
        "KIZUNA_EXTRA_SUBSCRIBERS": "tests.outbox.probe",
        "PYTHONPATH": str(ROOT),
    }

    def kizuna(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "kizuna", "outbox", *args], cwd=ROOT, env=env, capture_output=True, text=True
        )

    status = kizuna("status", "--json")
    assert status.returncode == 0, status.stderr
    import json

    rows = {r["subscriber"]: r for r in json.loads(status.stdout)}
    assert rows["probe-a"]["dead"] == 1 and rows["probe-b"]["dead"] == 0
    dead = json.loads(kizuna("dead", "--json").stdout)
    assert [(d["subscriber"], d["topic"], d["last_error"]) for d in dead] == [
        ("probe-a", "probe.slow", "RuntimeError: gone")
    ]
    assert kizuna("retry").returncode == 2  # names nothing to retry
    retried = kizuna("retry", "--subscriber", "probe-a")
    assert retried.returncode == 0 and "1 dead deliveries will be retried" in retried.stdout
    once = subprocess.run(
        [sys.executable, "-m", "kizuna", "worker", "--once"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert once.returncode == 0 and '"done": 1' in once.stdout
