"""The write path of the tracking API: a call or a batch of Segment-spec messages into events, in one transaction.

Per batch: one query per identity kind (``stitching``), one query for already-stored message ids, one
executemany of the event rows, and one ``INSERT ... SELECT`` of their ``event.recorded`` outbox messages
(journeys' event triggers read those within a second while a worker runs). No ORM object per event.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from kizuna.auth.permissions import Actor
from kizuna.db import take_write_lock, utcnow
from kizuna.events.models import Event
from kizuna.ingest import sources, spec
from kizuna.ingest.spec import Message, MessageError
from kizuna.ingest.stitching import Stitcher
from kizuna.outbox.service import emit_batch

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


_COLUMNS = ("external_id", "customer_id", "anonymous_id", "type", "channel", "occurred_at", "received_at")
_COLUMNS += ("source", "properties")


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
    received_at = utcnow()
    outcome = Outcome()
    parsed: list[Message] = []
    for index, raw in enumerate(messages):
        try:
            if check_sizes and spec.message_size(raw) > spec.MAX_CALL_BYTES:
                raise MessageError(f"a message is at most {spec.MAX_CALL_BYTES // 1024} KB")
            parsed.append(spec.parse(raw, index=index, call=call, received_at=received_at, sent_at=sent_at))
        except MessageError as exc:
            outcome.rejected.append(Rejected(index, _message_id(raw), str(exc), exc.field))
    # SQLite: take the write lock before reading identities, so no other batch creates the same visitor between
    # our read and our write.
    take_write_lock(session.connection())
    actor = Actor.system(f"source:{source.name}", origin="tracking")
    stitcher = Stitcher(session, actor, source=source.name)
    stitcher.load(parsed)
    wanted = [_external_id(source.id, m.message_id) for m in parsed if m.message_id]
    stored: set[str] = set()
    for start in range(0, len(wanted), 1000):
        stored.update(
            session.scalars(select(Event.external_id).where(Event.external_id.in_(wanted[start : start + 1000])))
        )
    rows: list[tuple[Any, ...]] = []
    seen: set[str] = set()
    name = source.name[:64]
    for m in parsed:
        external_id = _external_id(source.id, m.message_id) if m.message_id else None
        if external_id is not None and (external_id in stored or external_id in seen):
            # A retried batch (the SDKs retry on timeouts): the message was kept the first time.
            outcome.duplicates += 1
            continue
        try:
            # Only an alias between two customers is refused here, and before anything is written for it.
            customer_id = stitcher.resolve(m)
        except MessageError as exc:
            outcome.rejected.append(Rejected(m.index, m.message_id, str(exc), exc.field))
            continue
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
    outcome.rejected.sort(key=lambda r: r.index)
    if rows:
        table = Event.__table__
        returning = insert(table).returning(table.c.id, sort_by_parameter_order=True)
        ids = list(session.scalars(returning, [dict(zip(_COLUMNS, row, strict=True)) for row in rows]))
        # The same event.recorded the events API emits: journeys' event triggers read it within a second.
        emit_batch(
            session,
            "event.recorded",
            [
                ({"event_id": event_id, "customer_id": row[1], "type": row[3]}, row[1], row[5])
                for event_id, row in zip(ids, rows, strict=True)
            ],
            origin="tracking",
        )
    outcome.customers_created = stitcher.created
    sources.count_use(session, source.id, accepted=outcome.accepted, rejected=len(outcome.rejected))
    return outcome
