"""The worker's side of import jobs: ``import.queued`` runs the job's import (see ``job_run.execute``)."""

from __future__ import annotations

from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from kizuna.imports import job_run
from kizuna.outbox.registry import Delivery, declare
from kizuna.outbox.service import renew_lease


@declare("import-jobs", "import.queued")
def run_queued_import(session: Session, delivery: Delivery) -> None:
    """Run the queued job, renewing the delivery's lease while the import runs.

    The delivery's transaction is ended first: on SQLite it holds the only write lock, and the import commits
    batch by batch on connections of its own. While it runs, the renewed lease keeps other workers off the
    delivery and the job's claim keeps two runs of one job apart; the delivery is marked done afterwards,
    under the lease, in a new transaction of ``deliver``'s session.
    """
    engine = session.get_bind()
    assert isinstance(engine, Engine)
    session.rollback()
    outcome = job_run.execute(
        engine,
        int(delivery.payload["job_id"]),
        runner=delivery.worker or None,
        keep_alive=lambda: renew_lease(engine, delivery=delivery),
    )
    if outcome == "busy":
        # Another process runs it and is alive: look again later (the outbox backs off), when it has finished
        # or its heartbeat has stopped.
        raise job_run.JobBusy(f"import {delivery.payload['job_id']} is being run by another process")
    if outcome == "lost":
        raise job_run.LeaseLost(f"import {delivery.payload['job_id']}: the lease passed to another worker")
