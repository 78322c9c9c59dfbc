"""``kizuna worker``: delivers outbox messages; several may run at once on PostgreSQL."""

from __future__ import annotations

import time

from sqlalchemy.engine import Engine

from kizuna.db import new_session
from kizuna.outbox import service


def run_once(engine: Engine | None = None, *, worker: str | None = None, limit: int = 100) -> int:
    """Deliver one batch of due messages; returns how many were delivered."""
    worker = worker or service.worker_name()
    session = new_session(engine)
    try:
        messages = service.claim(session, worker=worker, limit=limit)
        session.commit()
        delivered = 0
        for message in messages:
            try:
                service.deliver(session, message)
                session.commit()
                delivered += 1
            except Exception as exc:  # noqa: BLE001 - one bad message must not stop the others
                session.rollback()
                message = session.merge(message)
                service.fail(session, message, f"{type(exc).__name__}: {exc}")
                session.commit()
        return delivered
    finally:
        session.close()


def run_forever(engine: Engine | None = None, *, poll_seconds: float = 1.0) -> None:
    while True:
        if run_once(engine) == 0:
            time.sleep(poll_seconds)
