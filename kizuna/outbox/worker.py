"""``kizuna worker``: delivers outbox messages. Several may run at once, on SQLite and on PostgreSQL."""

from __future__ import annotations

import logging
import os
import signal
import threading
from dataclasses import dataclass, field

from sqlalchemy.engine import Engine

from kizuna.db import get_engine, new_session
from kizuna.outbox import registry, service

log = logging.getLogger(__name__)


@dataclass
class Tally:
    done: int = 0
    failed: int = 0
    dead: int = 0
    lost: int = 0
    # Items the pumps (sender, journey engine) handled.
    pumped: int = 0
    errors: list[str] = field(default_factory=list)

    def add(self, outcome: service.Outcome) -> None:
        setattr(self, outcome.result, getattr(self, outcome.result) + 1)
        if outcome.error and len(self.errors) < 20:
            self.errors.append(f"delivery {outcome.delivery_id}: {outcome.error}")


def run_once(engine: Engine | None = None, *, worker: str | None = None, limit: int = 100) -> Tally:
    """Claim one batch of due deliveries and run each in its own transaction."""
    engine = engine or get_engine()
    registry.load()
    worker = worker or service.worker_name()
    session = new_session(engine)
    try:
        ids = service.claim(session, worker=worker, limit=limit)
        session.commit()
    finally:
        session.close()
    tally = Tally()
    for outcome in service.deliver_claimed(engine, worker=worker, delivery_ids=ids):
        tally.add(outcome)
    tally.pumped = run_pumps(engine, worker)
    return tally


def run_pumps(engine: Engine, worker: str, stop: threading.Event | None = None) -> int:
    """One batch of every pump; a pump that raises is logged and the others still run (its items stay due)."""
    handled = 0
    for name, pump in registry.pumps():
        if stop is not None and stop.is_set():
            break
        try:
            handled += pump(engine, worker)
        except Exception:  # noqa: BLE001 - one broken pump must not stop deliveries and the other pumps
            log.exception("pump %s failed; its work stays due and is retried", name)
    return handled


def run_forever(
    engine: Engine | None = None,
    *,
    poll_seconds: float = 1.0,
    batch: int = 100,
    stop: threading.Event | None = None,
    parent_pid: int | None = None,
) -> None:
    """Deliver until SIGTERM/SIGINT (or ``stop``), finishing the delivery in hand before leaving.

    With ``parent_pid`` (a worker started by ``kizuna serve``), also stop once that process is gone: a server
    ended by a signal may exit without stopping its worker, which would otherwise live on alone.
    """
    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
    worker = service.worker_name()
    while not stop.is_set():
        if parent_pid is not None and os.getppid() != parent_pid:
            break
        engine = engine or get_engine()
        registry.load()
        session = new_session(engine)
        try:
            ids = service.claim(session, worker=worker, limit=batch)
            session.commit()
        finally:
            session.close()
        service.deliver_claimed(engine, worker=worker, delivery_ids=ids, stop=stop)
        pumped = run_pumps(engine, worker, stop)
        if not ids and not pumped:
            stop.wait(poll_seconds)
