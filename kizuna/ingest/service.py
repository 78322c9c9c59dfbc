"""The write path of the tracking API: a call or a batch of Segment-spec messages into events, in one transaction.

Per batch: one query per identity kind (``stitching``), one query for already-stored message ids, one multi-row
insert of the event rows through the driver (``events.rows``), and one ``events.recorded`` outbox message naming
them all (journeys' event triggers read it within a second while a worker runs, one occurrence per event). No ORM
object per event.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import String, any_, bindparam, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from kizuna.auth.permissions import Actor
from kizuna.db import take_write_lock, utcnow
from kizuna.events import recorded
from kizuna.events import rows as event_rows
from kizuna.events.models import Event
from kizuna.ingest import sources, spec
from kizuna.ingest.spec import Message, MessageError
from kizuna.ingest.stitching import Stitcher

# SQLite has one writer. Batches of one process take turns here instead of in SQLite's busy handler (which
# retries BEGIN IMMEDIATE after random 5-50 ms sleeps: the p99 of a batch went to ~900 ms with 4 connections),
# and the moments between them have no open transaction, so the WAL checkpoint can restart the log (with
# overlapping transactions it never could, and the WAL grew past 3 GB in a 1M-event run).
_SQLITE_WRITER = threading.Lock()


@contextmanager
def one_writer(engine: Engine) -> Iterator[None]:
    """Hold while a batch's transaction is open: on SQLite one batch at a time per process, elsewhere no wait."""
    if engine.dialect.name != "sqlite":
        yield
        return
    with _SQLITE_WRITER:
        yield


# The statements every batch runs, built once: building them per batch (coercions, cache keys) cost more Python
# than running them.
_STORED = select(Event.external_id).where(Event.external_id.in_(bindparam("ids", expanding=True)))
# PostgreSQL: one array parameter, not 100 (psycopg parses a query of over 50 parameters again each time).
_STORED_PG = select(Event.external_id).where(Event.external_id == any_(bindparam("ids", type_=ARRAY(String))))


@dataclass
class Rejected:
    index: int
    message_id: str | None
    error: str
    field: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"index": self.index, "messageId": self.message_id, "field": self.field, "error": self.error}


@dataclass
class Outcome:
    accepted: int = 0
    duplicates: int = 0
    rejected: list[Rejected] = field(default_factory=list)
    customers_created: int = 0

    def as_dict(self) -> dict[str, Any]:
        # Segment answers {"success": true} for every call it took, whatever it later drops; the counts and the
        # rejected messages say more, and Segment's SDKs ignore the extra keys.
        return {
            "success": True,
            "accepted": self.accepted,
            "duplicates": self.duplicates,
            "rejected": [r.as_dict() for r in self.rejected],
        }


def _external_id(source_id: int, message_id: str) -> str:
    """The event's ``external_id``: the message id within its source (a hash when it would not fit 128 characters)."""
    key = f"{source_id}:{message_id}"
    if len(key) <= 128:
        return key
    return f"{source_id}:sha256:{hashlib.sha256(message_id.encode()).hexdigest()}"


def _message_id(raw: object) -> str | None:
    value = raw.get("messageId") if isinstance(raw, dict) else None
    return str(value)[:200] if isinstance(value, (str, int)) else None


@dataclass
class Incoming:
    """One request's messages, for ``ingest_many``: a call (``call`` given) or a batch."""

    messages: list[Any]
    call: str | None = None
    sent_at: dt.datetime | None = None
    check_sizes: bool = False


def ingest(
    session: Session,
    *,
    source: sources.KnownSource,
    messages: list[Any],
    call: str | None = None,
    sent_at: dt.datetime | None = None,
    check_sizes: bool = False,
) -> Outcome:
    """Record a call (``call`` given) or a batch's messages; bad messages are rejected one by one, not the batch."""
    return ingest_many(session, source=source, incoming=[Incoming(messages, call, sent_at, check_sizes)])[0]


def ingest_many(session: Session, *, source: sources.KnownSource, incoming: list[Incoming]) -> list[Outcome]:
    """Record several requests of one source in the session's transaction, with one statement of each kind for
    all of them (the group commit's batches: each statement's fixed cost in SQLAlchemy and the driver was paid
    once per batch of 100 before). Each request gets its own outcome; a message id repeated in a later request
    of the same group is that request's duplicate, as it would be one commit later."""
    received_at = utcnow()
    outcomes = [Outcome() for _ in incoming]
    parsed: list[tuple[int, Message]] = []
    for number, request in enumerate(incoming):
        outcome = outcomes[number]
        for index, raw in enumerate(request.messages):
            try:
                if request.check_sizes and spec.message_size(raw) > spec.MAX_CALL_BYTES:
                    raise MessageError(f"a message is at most {spec.MAX_CALL_BYTES // 1024} KB")
                message = spec.parse(
                    raw, index=index, call=request.call, received_at=received_at, sent_at=request.sent_at
                )
                parsed.append((number, message))
            except MessageError as exc:
                outcome.rejected.append(Rejected(index, _message_id(raw), str(exc), exc.field))
    # SQLite: take the write lock before reading identities, so no other batch creates the same visitor between
    # our read and our write.
    connection = session.connection()
    take_write_lock(connection)
    postgres = connection.dialect.name == "postgresql"
    if postgres:
        # psycopg prepares a statement run five times, and PostgreSQL may then keep one generic plan for it, made
        # while the tables looked empty (a new install; autovacuum had not analysed them yet): in an in-process
        # profile a batch at 30,000 events took 113 ms of wall time, 20 ms with a plan per execution (the same
        # 10 ms of CPU), most of the difference waiting on the look-ups' scans.
        connection.exec_driver_sql("SET LOCAL plan_cache_mode = force_custom_plan")
    actor = Actor.system(f"source:{source.name}", origin="tracking")
    stitcher = Stitcher(session, actor, source=source.name)
    stitcher.load(m for _, m in parsed)
    wanted = [_external_id(source.id, m.message_id) for _, m in parsed if m.message_id]
    stored: set[str] = set()
    for start in range(0, len(wanted), 1000):
        stored.update(session.scalars(_STORED_PG if postgres else _STORED, {"ids": wanted[start : start + 1000]}))
    rows: list[tuple[Any, ...]] = []
    seen: set[str] = set()
    name = source.name[:64]
    for number, m in parsed:
        outcome = outcomes[number]
        external_id = _external_id(source.id, m.message_id) if m.message_id else None
        if external_id is not None and (external_id in stored or external_id in seen):
            # A retried batch (the SDKs retry on timeouts): the message was kept the first time.
            outcome.duplicates += 1
            continue
        created = stitcher.created
        try:
            # Only an alias between two customers is refused here, and before anything is written for it.
            customer_id = stitcher.resolve(m)
        except MessageError as exc:
            outcome.rejected.append(Rejected(m.index, m.message_id, str(exc), exc.field))
            continue
        outcome.customers_created += stitcher.created - created
        if external_id is not None:
            seen.add(external_id)
        if m.event is not None:
            rows.append(
                (
                    external_id,
                    customer_id,
                    m.anonymous_id,
                    m.event,
                    m.channel,
                    m.occurred_at,
                    received_at,
                    name,
                    m.properties,
                )
            )
        outcome.accepted += 1
    for outcome in outcomes:
        outcome.rejected.sort(key=lambda r: r.index)
    if rows:
        # Straight to the driver (``events.rows``): binding through the ORM cost a fifth of the batch's CPU.
        ids = event_rows.insert_events(session, rows)
        # One events.recorded message for the batch (journeys' event triggers read it within a second and fan
        # it out per event): a message and a delivery per event cost a quarter of the batch's CPU.
        recorded.emit_recorded(session, ids, origin="tracking")
    accepted = sum(o.accepted for o in outcomes)
    rejected = sum(len(o.rejected) for o in outcomes)
    sources.count_use(session, source.id, accepted=accepted, rejected=rejected)
    return outcomes
