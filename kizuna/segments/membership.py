"""The membership side of a refresh: a segment's current members made equal to a set of matches.

The matches go into a temporary table, exits are one ``UPDATE`` and entries one ``INSERT ... SELECT`` against
it, and one ``segment.entered`` / ``segment.exited`` outbox message per changed customer is written by
``emit_rows``, all in the caller's transaction, without a round trip per row.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from sqlalchemy import Column, Integer, MetaData, Table, exists, func, insert, literal, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from kizuna.db import take_write_lock
from kizuna.errors import NotFound
from kizuna.outbox.service import emit_rows, json_object
from kizuna.segments import changes
from kizuna.segments.changes import ENTERED, EXITED
from kizuna.segments.models import Segment, SegmentMembership

_scratch = MetaData()
# The matches of the refresh in hand. Temporary: private to the connection, gone with it (and dropped at
# commit on PostgreSQL); the primary key is what the anti-joins below probe.
matches = Table(
    "segment_refreshmatches",
    _scratch,
    Column("customer_id", Integer, primary_key=True),
    prefixes=["TEMPORARY"],
    postgresql_on_commit="DROP",
)


def lock(session: Session, segment_id: int) -> Segment:
    """The segment row, held against a second refresh of it until this transaction ends."""
    connection = session.connection()
    if connection.dialect.name == "sqlite":
        raw = connection.connection.dbapi_connection
        # BEGIN IMMEDIATE can only start a transaction; one that has written already holds the lock.
        if raw is not None and not raw.in_transaction:
            take_write_lock(connection)
        segment = session.get(Segment, segment_id)
    else:
        segment = session.scalar(select(Segment).where(Segment.id == segment_id).with_for_update())
    if segment is None:
        raise NotFound(f"segment {segment_id} not found", key="error.segment_not_found", params={"id": segment_id})
    session.refresh(segment)
    return segment


def apply(
    session: Session,
    segment: Segment,
    fill: Callable[[Connection], None],
    *,
    now: dt.datetime,
    incremental: bool,
    mode: str,
) -> tuple[int, int]:
    """Make the segment's current members equal the matches ``fill`` writes to ``matches`` (among the
    customers of ``changes.candidates`` only, when ``incremental``); returns (entered, exited). One
    transaction, no round trip per row."""
    connection = session.connection()
    matches.drop(connection, checkfirst=True)
    matches.create(connection)
    try:
        fill(connection)
        m = SegmentMembership.__table__.c
        current = [m.segment_id == segment.id, m.exited_at.is_(None)]
        gone = update(SegmentMembership.__table__).where(
            *current, ~exists().where(matches.c.customer_id == m.customer_id)
        )
        if incremental:
            gone = gone.where(m.customer_id.in_(select(changes.candidates.c.customer_id)))
        session.execute(gone.values(exited_at=now))
        session.execute(
            insert(SegmentMembership.__table__).from_select(
                ["segment_id", "customer_id", "entered_at"],
                select(literal(segment.id), matches.c.customer_id, literal(now, m.entered_at.type)).where(
                    ~exists().where(*current, m.customer_id == matches.c.customer_id)
                ),
            )
        )
    finally:
        matches.drop(connection)
    payload = json_object(
        session,
        {
            "segment_id": literal(segment.id),
            "segment": literal(segment.name),
            "customer_id": m.customer_id,
            "refresh": literal(mode),
        },
    )
    at = literal(now, m.entered_at.type)
    entered = emit_rows(
        session,
        ENTERED,
        select(payload.label("payload"), m.customer_id, at.label("occurred_at")).where(
            m.segment_id == segment.id, m.entered_at == now, m.exited_at.is_(None)
        ),
        origin="system",
    )
    exited = emit_rows(
        session,
        EXITED,
        select(payload.label("payload"), m.customer_id, at.label("occurred_at")).where(
            m.segment_id == segment.id, m.exited_at == now
        ),
        origin="system",
    )
    return entered, exited


def count(session: Session, segment_id: int) -> int:
    return int(
        session.scalar(
            select(func.count()).where(
                SegmentMembership.segment_id == segment_id, SegmentMembership.exited_at.is_(None)
            )
        )
        or 0
    )
