"""Putting customers into a live journey, many at once, by its re-entry rule.

Every way in (an outbox message, a daily scan, a manual or API enrolment) ends here. An entry carries a key (the
outbox message, the date occurrence, the dormancy spell, the manual request) and the database keeps the key
unique per customer and journey, so an entry seen twice enrols once; it also keeps at most one open enrollment
per customer and journey, so two workers racing cannot put a customer in twice. Re-entry:

- ``never``: a customer enters the journey once, ever;
- ``after_exit``: again once the previous pass has finished, and ``reentry_after_days`` after it at the earliest.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from kizuna.customers.models import Customer
from kizuna.db import utcnow
from kizuna.journeys.definition import Definition
from kizuna.journeys.models import JourneyEnrollment

_CHUNK = 5000


@dataclass(frozen=True)
class Entry:
    customer_id: int
    entry_key: str
    # When the first step runs (now, or a date trigger's time of day).
    start_at: dt.datetime | None = None


def enroll(
    session: Session,
    *,
    journey_id: int,
    version_id: int,
    definition: Definition,
    entries: list[Entry],
    now: dt.datetime | None = None,
) -> int:
    """Enrol the entries' active customers that the re-entry rule lets in; returns how many were enrolled."""
    now = now or utcnow()
    first: dict[int, Entry] = {}
    for entry in entries:
        first.setdefault(entry.customer_id, entry)
    ids = sorted(first)
    enrolled = 0
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start : start + _CHUNK]
        allowed = set(session.scalars(select(Customer.id).where(Customer.id.in_(chunk), Customer.status == "active")))
        blocked = _blocked(session, journey_id, chunk, definition, now, {first[i].entry_key for i in chunk})
        rows = [
            {
                "journey_id": journey_id,
                "version_id": version_id,
                "customer_id": i,
                "entry_key": first[i].entry_key,
                "status": "active",
                "step": definition.start,
                "next_at": now if first[i].start_at is None or first[i].start_at < now else first[i].start_at,
                "attempts": 0,
                "holdout": False,
                "entered_at": now,
            }
            for i in chunk
            if i in allowed and (i, first[i].entry_key) not in blocked and i not in blocked
        ]
        if not rows:
            continue
        # RETURNING names the rows written (a duplicate entry or a racing worker's is skipped, and not counted).
        inserted = session.connection().execute(
            _insert_ignoring_duplicates(session).returning(JourneyEnrollment.__table__.c.id), rows
        )
        enrolled += len(inserted.all())
    return enrolled


def _blocked(
    session: Session, journey_id: int, chunk: list[int], definition: Definition, now: dt.datetime, keys: set[str]
) -> set[object]:
    """Customer ids the re-entry rule keeps out, and (customer id, entry key) pairs already entered."""
    e = JourneyEnrollment
    blocked: set[object] = set()
    since = now - dt.timedelta(days=definition.reentry_after_days)
    rows = session.execute(
        select(e.customer_id, e.entry_key, e.finished_at).where(e.journey_id == journey_id, e.customer_id.in_(chunk))
    )
    for customer_id, entry_key, finished_at in rows:
        if entry_key in keys:
            blocked.add((customer_id, entry_key))
        if definition.reentry == "never" or finished_at is None or finished_at > since:
            blocked.add(customer_id)
    return blocked


def _insert_ignoring_duplicates(session: Session):  # noqa: ANN202 - a dialect's Insert
    table = JourneyEnrollment.__table__
    if session.get_bind().dialect.name == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing()
    return sqlite.insert(table).on_conflict_do_nothing()
