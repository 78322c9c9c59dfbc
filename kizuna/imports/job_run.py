"""Running an import job in this process (the request for a small file, the worker for a big one).

A run claims the job, beats a heartbeat while ``run_import`` works, and records the outcome. A job whose runner
stopped beating (its process was killed) is taken over by the next worker and imported again from the start:
every kind of import is idempotent, so rows the dead run committed are found unchanged.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from kizuna.auth import service as auth
from kizuna.auth.permissions import Actor, require
from kizuna.config import get_settings
from kizuna.db import take_write_lock, transaction, utcnow
from kizuna.errors import KizunaError, NotFound
from kizuna.imports.jobs import FINISHED, file_path, imports_dir, is_stalled, options_of
from kizuna.imports.models import ImportJob
from kizuna.imports.runner import ImportAborted, run_import
from kizuna.outbox.service import worker_name


class JobBusy(KizunaError):
    """Another process is running this job and is alive; the worker's delivery tries again later."""

    status_code = 409
    code = "import_running"


class LeaseLost(Exception):
    """The worker's lease on the job's delivery passed to another worker: this run stops."""


def execute(
    engine: Engine,
    job_id: int,
    *,
    runner: str | None = None,
    keep_alive: Callable[[], bool] | None = None,
) -> str:
    """Run a queued job's import now, in this process; returns ``done``, ``failed``, ``busy`` (another live
    process runs it), ``finished`` (it ran already), ``lost`` (``keep_alive`` said another worker took over) or
    ``gone``.

    A job whose runner stopped renewing its heartbeat is taken over and imported again from the start (every
    kind of import is idempotent). ``keep_alive`` is called with each heartbeat (the worker renews its lease on
    the delivery); it returns False when this run must stop.
    """
    runner = (runner or f"web:{worker_name()}")[:100]
    claimed = _claim(engine, job_id, runner)
    if claimed in ("busy", "finished", "gone"):
        return claimed
    refusal = ""
    actor: Actor | None = None
    with transaction(engine) as session:
        job = session.get(ImportJob, job_id)
        assert job is not None
        kind, path, encoding = job.kind, file_path(job), job.encoding or None
        report_name = f"{Path(job.stored_name).stem}-rejects.csv"
        overrides, attributes = options_of(job)
        try:
            actor = _owner(session, job.user_id)
        except KizunaError as exc:
            refusal = exc.message
    if actor is None:
        _finish(engine, job_id, runner, status="failed", error=refusal)
        return "failed"
    stop = threading.Event()
    lost = threading.Event()
    beat = threading.Thread(
        target=_heartbeat, args=(engine, job_id, runner, keep_alive, stop, lost), name="kizuna-import-heartbeat"
    )
    beat.daemon = True
    beat.start()

    def progress(done: int, estimate: int) -> None:
        if lost.is_set():
            raise LeaseLost(f"import {job_id}: another worker took the job over")
        _progress(engine, job_id, runner, done, estimate)

    try:
        report = run_import(
            engine,
            kind,
            path,
            actor=actor,
            mapping=overrides,
            report_path=imports_dir() / report_name,
            progress=progress,
            extra_to_attributes=attributes,
            encoding=encoding,
        )
    except LeaseLost:
        return "lost"
    except ImportAborted as exc:
        _finish(
            engine, job_id, runner, status="failed", error=exc.message, counts=exc.report.counts(), report=report_name
        )
        return "failed"
    except KizunaError as exc:
        _finish(engine, job_id, runner, status="failed", error=exc.message)
        return "failed"
    except Exception as exc:  # noqa: BLE001 - recorded on the job for the user, never left "running"
        _finish(engine, job_id, runner, status="failed", error=f"{type(exc).__name__}: {exc}")
        return "failed"
    finally:
        stop.set()
        beat.join(timeout=30)
    _finish(engine, job_id, runner, status="done", counts=report.counts(), report=report_name)
    return "done"


def _owner(session: Session, user_id: int | None) -> Actor:
    """The uploader as the actor of the run: their role must still allow importing when it runs."""
    if user_id is None:
        raise NotFound("the user who started this import no longer exists")
    actor = auth.actor_for_email(session, auth.email_of(session, user_id))
    require(actor, "data:import")
    return actor


def _claim(engine: Engine, job_id: int, runner: str) -> str:
    with transaction(engine) as session:
        take_write_lock(session.connection())
        query = select(ImportJob).where(ImportJob.id == job_id)
        if engine.dialect.name != "sqlite":
            query = query.with_for_update()
        job = session.scalar(query)
        if job is None:
            return "gone"
        now = utcnow()
        if job.status in FINISHED:
            return "finished"
        if job.status == "running" and not is_stalled(job, now) and job.runner != runner:
            return "busy"
        if job.status not in ("queued", "running"):
            return "gone"  # its mapping is being edited again: a new start queues it anew
        job.status = "running"
        job.runner = runner
        job.heartbeat_at = now
        job.started_at = now
        job.rows_done = 0
        return "claimed"


def _progress(engine: Engine, job_id: int, runner: str, done: int, estimate: int) -> None:
    with transaction(engine) as session:
        take_write_lock(session.connection())
        session.execute(
            update(ImportJob)
            .where(ImportJob.id == job_id, ImportJob.runner == runner, ImportJob.status == "running")
            .values(rows_done=done, rows_total=max(done, estimate - 1), heartbeat_at=utcnow())
            .execution_options(synchronize_session=False)
        )


def _heartbeat(
    engine: Engine,
    job_id: int,
    runner: str,
    keep_alive: Callable[[], bool] | None,
    stop: threading.Event,
    lost: threading.Event,
) -> None:
    """Say the run is alive every third of a lease, between batches as well as during a long one."""
    every = max(1.0, get_settings().outbox_lease_seconds / 3)
    while not stop.wait(every):
        try:
            if keep_alive is not None and not keep_alive():
                lost.set()
                return
            with transaction(engine) as session:
                take_write_lock(session.connection())
                session.execute(
                    update(ImportJob)
                    .where(ImportJob.id == job_id, ImportJob.runner == runner)
                    .values(heartbeat_at=utcnow())
                    .execution_options(synchronize_session=False)
                )
        except Exception:  # noqa: BLE001, S112 - a missed beat is retried at the next one
            continue


def _finish(
    engine: Engine,
    job_id: int,
    runner: str,
    *,
    status: str,
    error: str | None = None,
    counts: dict[str, int] | None = None,
    report: str | None = None,
) -> None:
    counts = counts or {}
    values: dict[str, Any] = {
        "status": status,
        "error": error[:4000] if error else None,
        "finished_at": utcnow(),
        "runner": None,
        "counts": counts,
        "report_name": report,
    }
    for name in ("inserted", "updated", "unchanged", "rejected"):
        values[name] = int(counts.get(name, 0))
    if "read" in counts:
        values["rows_done"] = values["rows_total"] = int(counts["read"])
    with transaction(engine) as session:
        take_write_lock(session.connection())
        session.execute(
            update(ImportJob)
            .where(ImportJob.id == job_id, ImportJob.runner == runner)
            .values(**values)
            .execution_options(synchronize_session=False)
        )
