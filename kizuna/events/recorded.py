"""What the outbox says when events are recorded, and how its readers get the events back.

Two topics name the same fact:

- ``event.recorded``: one event, ``{"event_id", "customer_id", "type"}`` (the events API, event imports);
- ``events.recorded``: the events one tracking batch stored, ``{"event_ids": [[first, last], ...], "count": n}``
  (the ids as closed ranges: a batch's ids are mostly consecutive). One message and one delivery per subscriber
  per batch, where a message and a delivery per event cost a quarter of a tracking batch's CPU; the readers fan
  it out to one occurrence per event themselves (``read``), and each event still counts once.

A reader reads the events as stored when it handles the message: an event moved by a merge in between belongs
to the surviving customer, and a deleted one (its customer erased) is no longer there to trigger anything.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from kizuna.events.models import Event
from kizuna.outbox.service import emit_batch

TOPIC = "event.recorded"
BATCH_TOPIC = "events.recorded"
# Ranges per statement when reading events back (each is one ``BETWEEN`` over the primary key).
_RANGES_PER_QUERY = 200


def ranges(ids: Iterable[int]) -> list[list[int]]:
    """``[3, 4, 5, 9]`` -> ``[[3, 5], [9, 9]]`` (sorted, duplicates dropped)."""
    out: list[list[int]] = []
    for i in sorted(set(ids)):
        if out and out[-1][1] == i - 1:
            out[-1][1] = i
        else:
            out.append([i, i])
    return out


def ids_of(payload: dict[str, Any]) -> Iterator[int]:
    """The event ids an ``events.recorded`` payload names."""
    for first, last in _ranges_of(payload):
        yield from range(first, last + 1)


def emit_recorded(session: Session, ids: list[int], *, origin: str) -> None:
    """One ``events.recorded`` message for these just-stored events, in the caller's transaction."""
    if ids:
        emit_batch(session, BATCH_TOPIC, [({"event_ids": ranges(ids), "count": len(ids)}, None, None)], origin=origin)


@dataclass(frozen=True)
class Recorded:
    """One stored event, as the readers of ``events.recorded`` see it."""

    id: int
    customer_id: int | None
    type: str
    occurred_at: dt.datetime
    channel: str
    properties: dict[str, Any]


def read(
    session: Session, payloads: list[dict[str, Any]], *, types: Iterable[str] | None = None
) -> dict[int, Recorded]:
    """The events the payloads name that still exist (of ``types`` only, when given), by id."""
    spans = [span for payload in payloads for span in _ranges_of(payload)]
    wanted = sorted(set(types)) if types is not None else None
    if not spans or wanted == []:
        return {}
    found: dict[int, Recorded] = {}
    columns = (Event.id, Event.customer_id, Event.type, Event.occurred_at, Event.channel, Event.properties)
    for start in range(0, len(spans), _RANGES_PER_QUERY):
        chunk = spans[start : start + _RANGES_PER_QUERY]
        query = select(*columns).where(or_(*(Event.id.between(first, last) for first, last in chunk)))
        if wanted is not None:
            query = query.where(Event.type.in_(wanted))
        for row in session.execute(query):
            found[row[0]] = Recorded(row[0], row[1], row[2], row[3], row[4], row[5] or {})
    return found


def _ranges_of(payload: dict[str, Any]) -> list[tuple[int, int]]:
    out = []
    for span in payload.get("event_ids") or []:
        if isinstance(span, list) and len(span) == 2 and all(isinstance(i, int) for i in span) and span[0] <= span[1]:
            out.append((span[0], span[1]))
    return out
