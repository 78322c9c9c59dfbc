"""The journey engine: a worker pump that moves due enrollments through their steps, a batch at a time.

A pass claims up to ``BATCH`` due enrollments of live journeys with a lease (``SELECT ... FOR UPDATE SKIP
LOCKED`` on PostgreSQL; SQLite has one writer at a time) and counts the attempt, in a transaction of its own, so
that an enrollment that kills the worker every time still ends up failed. A second transaction then runs every
step that does not wait, for the whole batch at once (each step type's handler gets every enrollment standing
at that step), until each enrollment waits, ends or reaches a step it cannot pass; the step log, the messages,
the tags and the enrollments' new places commit together, under the lease, or not at all.

When that transaction fails, each enrollment is run again alone, so one customer's failure does not hold back
the others; a customer who keeps failing ends ``failed`` with the error after ``MAX_ATTEMPTS`` tries, and the
journey goes on for everyone else.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from kizuna.auth.permissions import Actor
from kizuna.config import get_settings
from kizuna.db import new_session, take_write_lock, utcnow
from kizuna.imports.bulk import insert_tuples
from kizuna.journeys.definition import Definition, parse_definition
from kizuna.journeys.models import OPEN_STATUSES, Journey, JourneyEnrollment, JourneyStep, JourneyVersion
from kizuna.journeys.steps import End, Next, Outcome, Run, StepContext, Wait, step_type

log = logging.getLogger(__name__)

BATCH = 1000
MAX_ATTEMPTS = 5
# Steps one enrollment may take in one pass: every loop passes a wait, so this only guards against a step type
# that never lets go; an enrollment still going is left due and continues in the next pass.
MAX_HOPS = 100
ACTOR = Actor.system("journeys", origin="worker")
_DEFINITIONS: dict[str, Definition] = {}
E = JourneyEnrollment


def definition_of(session: Session, version_id: int) -> Definition:
    """A published version's definition, parsed once per process for each distinct text (versions never change,
    but a cache by id alone could outlive a database that reuses ids: a test's, or a restored backup)."""
    raw = session.scalar(select(JourneyVersion.definition).where(JourneyVersion.id == version_id))
    if raw is None:
        raise LookupError(f"journey version {version_id} does not exist")
    key = json.dumps(raw, sort_keys=True, ensure_ascii=False)
    found = _DEFINITIONS.get(key)
    if found is None:
        found = parse_definition(raw)
        if len(_DEFINITIONS) > 500:
            _DEFINITIONS.clear()
        _DEFINITIONS[key] = found
    return found


def run_pass(engine: Engine, worker: str, *, limit: int = BATCH) -> int:
    """Claim and run one batch of due enrollments; returns how many were claimed (0: nothing was due)."""
    ids = claim(engine, worker, limit=limit)
    if not ids:
        return 0
    try:
        process(engine, worker, ids)
    except Exception:  # noqa: BLE001 - the batch failed: run each enrollment alone to find who fails
        log.warning("journey batch of %d failed; running each enrollment alone", len(ids), exc_info=True)
        for enrollment_id in ids:
            try:
                process(engine, worker, [enrollment_id])
            except Exception as exc:  # noqa: BLE001 - recorded on the enrollment, never fatal to the worker
                record_failure(engine, worker, enrollment_id, f"{type(exc).__name__}: {exc}")
    return len(ids)


def claim(engine: Engine, worker: str, *, limit: int = BATCH, now: dt.datetime | None = None) -> list[int]:
    """Lease up to ``limit`` due enrollments of live journeys to ``worker``; counts an attempt for each."""
    now = now or utcnow()
    lease = dt.timedelta(seconds=get_settings().outbox_lease_seconds)
    due = (
        select(E.id)
        # "+ 0" keeps SQLite (no statistics on a fresh database) from walking every enrollment of the live
        # journey by ix_journey_enrollments_step and sorting them: a claim then cost O(enrollments), 6 ms a
        # batch at 100,000; through ix_journey_enrollments_due it reads only the due rows, in order.
        .join(Journey, Journey.id == E.journey_id + 0)
        .where(
            E.next_at <= now,
            E.status.in_(OPEN_STATUSES),
            or_(E.locked_until.is_(None), E.locked_until < now),
            Journey.status == "live",
        )
        .order_by(E.next_at, E.id)
        .limit(limit)
    )
    session = new_session(engine)
    try:
        # Look before taking SQLite's write lock: an idle pump must not compete with the web process for it.
        if session.scalar(due.limit(1)) is None:
            session.rollback()
            return []
        take_write_lock(session.connection())
        if session.get_bind().dialect.name == "postgresql":
            due = due.with_for_update(of=E, skip_locked=True)
        ids = sorted(
            session.scalars(
                update(E)
                .where(E.id.in_(due.scalar_subquery()))
                .values(locked_by=worker, locked_until=now + lease, attempts=E.attempts + 1)
                .returning(E.id)
                .execution_options(synchronize_session=False)
            )
        )
        session.commit()
        return ids
    finally:
        session.close()


def process(engine: Engine, worker: str, ids: list[int], *, now: dt.datetime | None = None) -> int:
    """Run the claimed enrollments ``ids`` as far as they go, in one transaction; returns the steps run."""
    now = now or utcnow()
    session = new_session(engine)
    try:
        take_write_lock(session.connection())
        query = select(
            E.id, E.customer_id, E.journey_id, E.version_id, E.step, E.status, E.entered_at, E.variant, E.holdout
        ).where(E.id.in_(ids), E.locked_by == worker, E.status.in_(OPEN_STATUSES))
        if session.get_bind().dialect.name == "postgresql":
            query = query.with_for_update(of=E)
        runs = [Run(*row) for row in session.execute(query)]
        journeys = select(Journey.id, Journey.name).where(Journey.id.in_({r.journey_id for r in runs}))
        names: dict[int, str] = {i: n for i, n in session.execute(journeys)}
        by_version: dict[int, list[Run]] = defaultdict(list)
        for run in runs:
            by_version[run.version_id].append(run)
        log_rows: list[tuple[Any, ...]] = []
        finals: dict[int, tuple[Any, ...]] = {}
        for version_id, group in by_version.items():
            ctx = StepContext(
                session=session,
                now=now,
                journey_id=group[0].journey_id,
                journey_name=names.get(group[0].journey_id, ""),
                version_id=version_id,
                definition=definition_of(session, version_id),
                actor=ACTOR,
            )
            _advance(ctx, group, log_rows, finals)
        insert_tuples(
            session, JourneyStep.__table__, ("enrollment_id", "journey_id", "step", "from_step", "at"), log_rows
        )
        _write_finals(session, finals, now)
        session.commit()
        return len(log_rows)
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def _advance(
    ctx: StepContext, runs: list[Run], log_rows: list[tuple[Any, ...]], finals: dict[int, tuple[Any, ...]]
) -> None:
    """Move ``runs`` (one version's) through the steps that do not wait; fills the log and the final places."""
    definition: Definition = ctx.definition
    # (run, mode, where it came from): "run" the step it stands at, or "resume" the wait it finished.
    current = [(r, "resume" if r.status == "waiting" else "run", None) for r in runs]
    hops = 0
    while current:
        if hops >= MAX_HOPS:
            for run, _, _ in current:
                finals[run.id] = ("active", run.step, ctx.now, None, run)
            return
        hops += 1
        groups: dict[tuple[str, str], list[tuple[Run, str | None]]] = defaultdict(list)
        for run, mode, came_from in current:
            groups[(run.step, mode)].append((run, came_from))
        current = []
        for (step_id, mode), members in groups.items():
            batch = [run for run, _ in members]
            step = definition.steps.get(step_id)
            if step is None:
                for run in batch:
                    finals[run.id] = (
                        "failed",
                        step_id,
                        None,
                        f"step '{step_id}' is not in version {ctx.version_id}",
                        run,
                    )
                continue
            kind = step_type(step.type)
            if kind is None:
                for run in batch:
                    finals[run.id] = ("failed", step_id, None, f"no step type '{step.type}' in this worker", run)
                continue
            if mode == "run":
                log_rows.extend((run.id, run.journey_id, step_id, came_from, ctx.now) for run, came_from in members)
                outcomes = kind.run(ctx, step, batch)
            elif kind.resume is not None:
                outcomes = kind.resume(ctx, step, batch)
            else:
                following = getattr(step, "next", None)
                outcomes = {run.id: Next(following) if following else End("completed") for run in batch}
            for run in batch:
                outcome: Outcome = outcomes[run.id]
                if isinstance(outcome, Next):
                    run.step = outcome.step
                    current.append((run, "run", step_id))
                elif isinstance(outcome, Wait):
                    finals[run.id] = ("waiting", step_id, outcome.until, None, run)
                else:
                    finals[run.id] = (outcome.status, step_id, None, outcome.reason, run)


def _write_finals(session: Session, finals: dict[int, tuple[Any, ...]], now: dt.datetime) -> None:
    """Each enrollment's new place, one UPDATE per distinct place (most of a batch shares a few)."""
    places: dict[tuple[Any, ...], list[int]] = defaultdict(list)
    for enrollment_id, (status, step, next_at, reason, run) in finals.items():
        places[(status, step, next_at, reason, run.variant, run.holdout)].append(enrollment_id)
    for (status, step, next_at, reason, variant, holdout), ids in places.items():
        finished = status not in OPEN_STATUSES
        values: dict[str, Any] = {
            "status": status,
            "step": step,
            "next_at": None if finished else next_at,
            "variant": variant,
            "holdout": holdout,
            "locked_by": None,
            "locked_until": None,
            "attempts": 0,
            "last_error": reason if status == "failed" else None,
        }
        if finished:
            values["finished_at"] = now
        for start in range(0, len(ids), 5000):
            session.execute(
                update(E)
                .where(E.id.in_(ids[start : start + 5000]))
                .values(**values)
                .execution_options(synchronize_session=False)
            )


def record_failure(
    engine: Engine, worker: str, enrollment_id: int, error: str, *, now: dt.datetime | None = None
) -> str:
    """A run of one enrollment failed: try again later with back-off, or end it ``failed`` after MAX_ATTEMPTS."""
    now = now or utcnow()
    session = new_session(engine)
    try:
        take_write_lock(session.connection())
        attempts = session.scalar(select(E.attempts).where(E.id == enrollment_id, E.locked_by == worker))
        if attempts is None:
            session.rollback()
            return "lost"
        values: dict[str, Any] = {"last_error": error[:2000], "locked_by": None, "locked_until": None}
        if attempts >= MAX_ATTEMPTS:
            values.update(status="failed", finished_at=now, next_at=None)
        else:
            values["next_at"] = now + dt.timedelta(seconds=min(3600, 10 * 2**attempts))
        session.execute(update(E).where(E.id == enrollment_id, E.locked_by == worker).values(**values))
        session.commit()
        return "failed" if attempts >= MAX_ATTEMPTS else "retry"
    finally:
        session.close()


def run_until_idle(engine: Engine, worker: str = "journeys", *, limit: int = BATCH) -> int:
    """Passes until nothing is due (tests, the benchmark, ``kizuna journeys run``); returns enrollments handled."""
    total = 0
    while True:
        handled = run_pass(engine, worker, limit=limit)
        if not handled:
            return total
        total += handled


def due_count(session: Session, journey_ids: Iterable[int] | None = None) -> int:
    from sqlalchemy import func

    query = select(func.count()).where(E.next_at <= utcnow(), E.status.in_(OPEN_STATUSES))
    if journey_ids is not None:
        query = query.where(E.journey_id.in_(list(journey_ids)))
    return int(session.scalar(query) or 0)
