"""The outbox: domain events written with the change that causes them, delivered after commit by workers.

A message (``outbox``) is a fact; each subscriber's handling of it is a delivery (``outbox_deliveries``) with
its own attempts, back-off, lease and dead state. What "once" means here:

- A handler's database effects commit in the same transaction that marks its delivery done, and that mark
  is conditional on the worker still holding the lease (``WHERE locked_by = :me``), so they happen once.
- While a delivery runs its row stays locked (``FOR UPDATE`` on PostgreSQL, the write lock on SQLite), so a
  handler that outlives its lease cannot be started again by another worker; a worker that dies releases it
  and the next worker retakes the delivery once the lease has run out.
- Effects outside the database (a mail, a LINE push, a webhook) are at least once, under ``Delivery.key``,
  fixed when the message was written, so a receiver can recognise and drop a repeat.
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
import socket
import threading
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, case, exists, func, insert, literal, or_, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from kizuna.auth import audit
from kizuna.auth.permissions import Actor, require
from kizuna.config import get_settings
from kizuna.db import new_session, take_write_lock, utcnow
from kizuna.errors import NotFound, ValidationError
from kizuna.outbox import registry
from kizuna.outbox.models import ORIGINS, OutboxDelivery, OutboxMessage
from kizuna.outbox.registry import Delivery, Subscriber

STATUSES = ("pending", "done", "dead")


def emit(
    session: Session,
    topic: str,
    payload: dict[str, Any],
    *,
    customer_id: int | None = None,
    origin: str = "system",
    occurred_at: dt.datetime | None = None,
    available_at: dt.datetime | None = None,
) -> OutboxMessage:
    """Record that something happened (``customer.created``, ``consent.withdrawn`` ...) in this transaction.

    Every declared subscriber of ``topic`` gets a delivery, due at ``available_at`` (now by default: a later
    time schedules it, as journeys do for their waits). ``occurred_at`` defaults to now.
    """
    _check_origin(origin)
    now = utcnow()
    message = OutboxMessage(
        topic=topic,
        payload=payload,
        customer_id=customer_id,
        origin=origin,
        occurred_at=occurred_at or now,
        created_at=now,
        available_at=available_at or now,
    )
    session.add(message)
    subscribers = registry.for_topic(topic, session)
    if subscribers:
        session.flush()
        session.add_all(
            OutboxDelivery(message_id=message.id, subscriber=s.name, available_at=message.available_at, created_at=now)
            for s in subscribers
        )
    return message


def emit_rows(
    session: Session,
    topic: str,
    rows: Select[Any],
    *,
    origin: str,
) -> int:
    """Set-based ``emit`` for bulk paths (imports): one message per row of ``rows``; returns how many.

    ``rows`` selects the columns ``payload`` (see ``json_object``), ``customer_id`` and ``occurred_at``; the
    messages and their deliveries are written by ``INSERT ... SELECT`` without a round trip per row.
    """
    _check_origin(origin)
    now = utcnow()
    before = session.scalar(select(func.coalesce(func.max(OutboxMessage.id), 0)))
    source = rows.subquery()
    session.execute(
        insert(OutboxMessage).from_select(
            ["topic", "payload", "customer_id", "origin", "occurred_at", "created_at", "available_at"],
            select(
                literal(topic),
                source.c.payload,
                source.c.customer_id,
                literal(origin),
                func.coalesce(source.c.occurred_at, literal(now, OutboxMessage.occurred_at.type)),
                literal(now, OutboxMessage.created_at.type),
                literal(now, OutboxMessage.available_at.type),
            ),
        )
    )
    # Counted, not taken from rowcount: psycopg reports -1 for INSERT ... SELECT here.
    written = session.scalar(
        select(func.count()).where(
            OutboxMessage.id > before, OutboxMessage.topic == topic, OutboxMessage.created_at == now
        )
    )
    _fan_out_since(session, topic, before)
    return int(written or 0)


def emit_many(
    session: Session,
    topic: str,
    messages: list[tuple[dict[str, Any], int | None, dt.datetime | None]],
    *,
    origin: str,
) -> int:
    """``emit`` for many (payload, customer_id, occurred_at) at once: one executemany, deliveries set-based."""
    if not messages:
        return 0
    _check_origin(origin)
    from kizuna.imports.bulk import insert_rows  # the bulk writer lives with the importers

    now = utcnow()
    before = session.scalar(select(func.coalesce(func.max(OutboxMessage.id), 0)))
    insert_rows(
        session,
        OutboxMessage.__table__,
        [
            {
                "topic": topic,
                "payload": payload,
                "customer_id": customer_id,
                "origin": origin,
                "occurred_at": occurred_at or now,
                "created_at": now,
                "available_at": now,
            }
            for payload, customer_id, occurred_at in messages
        ],
    )
    _fan_out_since(session, topic, before)
    return len(messages)


def emit_batch(
    session: Session,
    topic: str,
    messages: list[tuple[dict[str, Any], int | None, dt.datetime | None]],
    *,
    origin: str,
) -> int:
    """``emit`` for a request-sized batch of (payload, customer_id, occurred_at): one multi-row INSERT ... RETURNING
    for the messages and one per subscriber for their deliveries.

    For the tracking API's batches of ~100: every statement goes by primary key, where ``emit_many``'s set-based
    fan-out (an ``INSERT ... SELECT`` over the outbox's newest ids with ``NOT EXISTS``) cost PostgreSQL up to
    300 ms a batch on a table that grew faster than autovacuum analysed it.
    """
    if not messages:
        return 0
    _check_origin(origin)
    now = utcnow()
    table = OutboxMessage.__table__
    rows = [
        {
            "topic": topic,
            "payload": payload,
            "customer_id": customer_id,
            "origin": origin,
            "occurred_at": occurred_at or now,
            "created_at": now,
            "available_at": now,
        }
        for payload, customer_id, occurred_at in messages
    ]
    ids = list(session.scalars(insert(table).returning(table.c.id, sort_by_parameter_order=True), rows))
    for subscriber in registry.for_topic(topic):
        session.execute(
            insert(OutboxDelivery.__table__),
            [
                {
                    "message_id": message_id,
                    "subscriber": subscriber.name,
                    "target": "",
                    "status": "pending",
                    "attempts": 0,
                    "available_at": now,
                    "created_at": now,
                }
                for message_id in ids
            ],
        )
    return len(ids)


def _fan_out_since(session: Session, topic: str, before: int) -> None:
    """Deliveries for the messages of ``topic`` this transaction wrote after id ``before``, set-based."""
    for subscriber in registry.for_topic(topic, session):
        # Messages that other transactions committed meanwhile already carry their deliveries.
        session.execute(
            insert(OutboxDelivery).from_select(
                ["message_id", "subscriber", "target", "status", "attempts", "available_at", "created_at"],
                select(
                    OutboxMessage.id,
                    literal(subscriber.name),
                    literal(""),
                    literal("pending"),
                    literal(0),
                    OutboxMessage.available_at,
                    OutboxMessage.created_at,
                ).where(
                    OutboxMessage.id > before,
                    OutboxMessage.topic == topic,
                    ~exists().where(
                        OutboxDelivery.message_id == OutboxMessage.id, OutboxDelivery.subscriber == subscriber.name
                    ),
                ),
            )
        )


def json_object(session: Session, fields: Mapping[str, ColumnElement[Any]]) -> ColumnElement[Any]:
    """A JSON object built in SQL from named columns, for ``emit_rows`` payloads."""
    args: list[Any] = []
    for name, column in fields.items():
        args.extend((literal(name), column))
    if session.get_bind().dialect.name == "postgresql":
        return func.jsonb_build_object(*args)
    return func.json_object(*args)


def _check_origin(origin: str) -> None:
    if origin not in ORIGINS:
        raise ValueError(f"unknown origin {origin!r}; one of {', '.join(ORIGINS)}")


def worker_name() -> str:
    """Host, pid and a random part: a restarted worker that reuses a pid never mistakes old leases for its own."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


def _is_sqlite(session: Session) -> bool:
    return session.get_bind().dialect.name == "sqlite"


def _begin(session: Session) -> None:
    # SQLite: take the write lock before reading, so a read can never be overtaken by another worker's write
    # between our SELECT and our UPDATE (the driver would otherwise begin only at the first write).
    take_write_lock(session.connection())


def claim(
    session: Session,
    *,
    worker: str,
    limit: int = 100,
    lease_seconds: int | None = None,
    subscriber: str | None = None,
) -> list[int]:
    """Lease up to ``limit`` due deliveries (of one ``subscriber`` when given) to ``worker`` in one statement;
    returns their ids.

    Call it on a session with no transaction open; the caller commits. The attempt is counted here, at the
    claim, so that a delivery whose handler kills the worker every time still ends up dead.
    """
    lease = lease_seconds if lease_seconds is not None else get_settings().outbox_lease_seconds
    now = utcnow()
    due = (
        select(OutboxDelivery.id)
        .where(
            OutboxDelivery.status == "pending",
            OutboxDelivery.available_at <= now,
            or_(OutboxDelivery.locked_until.is_(None), OutboxDelivery.locked_until < now),
        )
        .order_by(OutboxDelivery.available_at, OutboxDelivery.id)
        .limit(limit)
    )
    if subscriber is not None:
        due = due.where(OutboxDelivery.subscriber == subscriber)
    # Look before taking the write lock: an idle worker polling every second must not compete with the web
    # process for SQLite's single writer (a reader never blocks one).
    if session.scalar(due.limit(1)) is None:
        session.rollback()
        return []
    _begin(session)
    if not _is_sqlite(session):
        due = due.with_for_update(skip_locked=True)
    claimed = session.scalars(
        update(OutboxDelivery)
        .where(OutboxDelivery.id.in_(due.scalar_subquery()))
        .values(
            locked_by=worker,
            locked_until=now + dt.timedelta(seconds=lease),
            attempts=OutboxDelivery.attempts + 1,
        )
        .returning(OutboxDelivery.id)
        .execution_options(synchronize_session=False)
    )
    return sorted(claimed)


def release(session: Session, *, worker: str, delivery_ids: list[int]) -> None:
    """Hand claimed deliveries back without running them (a worker stopping mid-batch); counts no attempt."""
    if delivery_ids:
        session.execute(
            update(OutboxDelivery)
            .where(OutboxDelivery.id.in_(delivery_ids), OutboxDelivery.locked_by == worker)
            .values(locked_by=None, locked_until=None, attempts=OutboxDelivery.attempts - 1)
            .execution_options(synchronize_session=False)
        )


@dataclass(frozen=True)
class Outcome:
    delivery_id: int
    result: str  # done | failed | dead | lost
    error: str | None = None


def deliver(engine: Engine, *, worker: str, delivery_id: int) -> Outcome:
    """Run one claimed delivery in its own transaction and mark it done, under the lease.

    ``lost``: the lease had passed to another worker, so nothing was run or written.
    """
    session = new_session(engine)
    try:
        taken = _take(session, delivery_id, worker)
        if isinstance(taken, Outcome):
            return taken
        record, message, subscriber = taken
        delivery = _delivery(record, message, worker)
        if subscriber.effect is not None and record.target:
            # The outside part runs with nothing locked (``Subscriber.effect``); the row is taken again after it.
            session.rollback()
            effect = subscriber.effect(engine, delivery)
            taken = _take(session, delivery_id, worker)
            if isinstance(taken, Outcome):
                return taken
            record, message, subscriber = taken
            delivery = replace(_delivery(record, message, worker), effect=effect)
        _run(session, subscriber, delivery, record)
        if not _finish(session, delivery_id, worker, status="done"):
            session.rollback()
            return Outcome(delivery_id, "lost")
        session.commit()
        return Outcome(delivery_id, "done")
    except Exception as exc:  # noqa: BLE001 - a failing handler is recorded on its delivery, never fatal
        session.rollback()
        error = f"{type(exc).__name__}: {exc}"
        return _record_failure(session, delivery_id, worker, error, give_up=isinstance(exc, registry.GiveUp))
    finally:
        session.close()


def _take(
    session: Session, delivery_id: int, worker: str
) -> tuple[OutboxDelivery, OutboxMessage, Subscriber] | Outcome:
    """Begin, and lock the claimed delivery with its message and subscriber; or the outcome when there is
    nothing to run (``lost``: no longer this worker's; ``dead``: earlier attempts never reported back)."""
    _begin(session)
    query = (
        select(OutboxDelivery, OutboxMessage)
        .join(OutboxMessage, OutboxMessage.id == OutboxDelivery.message_id)
        .where(
            OutboxDelivery.id == delivery_id,
            OutboxDelivery.locked_by == worker,
            OutboxDelivery.status == "pending",
        )
    )
    if not _is_sqlite(session):
        query = query.with_for_update(of=OutboxDelivery)
    row = session.execute(query).first()
    if row is None:
        session.rollback()
        return Outcome(delivery_id, "lost")
    record, message = row
    subscriber = registry.get(record.subscriber)
    if record.attempts > _max_attempts(subscriber):
        # Earlier attempts never reported back (the worker died or the lease ran out each time).
        _finish(session, delivery_id, worker, status="dead", error=record.last_error or _no_report(record))
        session.commit()
        return Outcome(delivery_id, "dead", record.last_error)
    if subscriber is None:
        raise LookupError(f"no subscriber named {record.subscriber!r} is declared in this worker")
    return record, message, subscriber


def _delivery(record: OutboxDelivery, message: OutboxMessage, worker: str) -> Delivery:
    return Delivery(
        id=record.id,
        message_id=message.id,
        topic=message.topic,
        payload=message.payload or {},
        customer_id=message.customer_id,
        origin=message.origin,
        occurred_at=message.occurred_at,
        subscriber=record.subscriber,
        target=record.target,
        attempt=record.attempts,
        worker=worker,
    )


def deliver_batch(engine: Engine, *, worker: str, delivery_ids: list[int]) -> list[Outcome]:
    """Run claimed deliveries of one batch subscriber in one transaction and mark them done together.

    When the batch fails, each delivery is run again alone (``deliver``), so one bad delivery is retried alone
    and the others go through.
    """
    session = new_session(engine)
    try:
        _begin(session)
        d, m = OutboxDelivery, OutboxMessage
        # Columns, not ORM objects: a batch is hundreds of rows, read once and never changed through the ORM.
        query = (
            select(
                d.id, d.attempts, d.last_error, d.subscriber, d.target, m.id.label("message_id"), m.topic, m.payload,
                m.customer_id, m.origin, m.occurred_at,
            )
            .join(m, m.id == d.message_id)
            .where(d.id.in_(delivery_ids), d.locked_by == worker, d.status == "pending")
            .order_by(d.id)
        )  # fmt: skip
        if not _is_sqlite(session):
            query = query.with_for_update(of=OutboxDelivery)
        rows = session.execute(query).all()
        found = {row.id for row in rows}
        outcomes = [Outcome(i, "lost") for i in delivery_ids if i not in found]
        names = {row.subscriber for row in rows}
        if len(names) > 1:
            raise ValueError(f"a batch holds deliveries of several subscribers: {', '.join(sorted(names))}")
        subscriber = registry.get(names.pop()) if names else None
        todo: list[Delivery] = []
        for row in rows:
            if row.attempts > _max_attempts(subscriber):
                error = row.last_error or _no_report(row)  # type: ignore[arg-type]
                _finish(session, row.id, worker, status="dead", error=error)
                outcomes.append(Outcome(row.id, "dead", row.last_error))
            else:
                todo.append(
                    Delivery(
                        id=row.id,
                        message_id=row.message_id,
                        topic=row.topic,
                        payload=row.payload or {},
                        customer_id=row.customer_id,
                        origin=row.origin,
                        occurred_at=row.occurred_at,
                        subscriber=row.subscriber,
                        target=row.target,
                        attempt=row.attempts,
                        worker=worker,
                    )
                )
        if todo:
            if subscriber is None or not subscriber.batch:
                raise LookupError(f"no batch subscriber named {rows[0].subscriber!r} is declared in this worker")
            subscriber.handle(session, todo)  # type: ignore[arg-type,call-arg]
            session.execute(
                update(OutboxDelivery)
                .where(OutboxDelivery.id.in_([d.id for d in todo]), OutboxDelivery.locked_by == worker)
                .values(status="done", finished_at=utcnow(), locked_by=None, locked_until=None)
                .execution_options(synchronize_session=False)
            )
        session.commit()
        return outcomes + [Outcome(d.id, "done") for d in todo]
    except Exception:  # noqa: BLE001 - the batch failed: each delivery is tried alone below
        session.rollback()
    finally:
        session.close()
    return [deliver(engine, worker=worker, delivery_id=i) for i in delivery_ids]


def deliver_claimed(
    engine: Engine, *, worker: str, delivery_ids: list[int], stop: threading.Event | None = None
) -> list[Outcome]:
    """Run claimed deliveries: one by one, and those of batch subscribers in batches (topped up with more of
    that subscriber's due deliveries, up to its batch size). With ``stop`` set midway, the rest are released."""
    single, batched = _split_batched(engine, delivery_ids)
    outcomes: list[Outcome] = []
    for n, delivery_id in enumerate(single):
        if stop is not None and stop.is_set():
            _release_rest(engine, worker, single[n:] + [i for ids in batched.values() for i in ids])
            return outcomes
        outcomes.append(deliver(engine, worker=worker, delivery_id=delivery_id))
    names = list(batched)
    for n, name in enumerate(names):
        if stop is not None and stop.is_set():
            _release_rest(engine, worker, [i for rest in names[n:] for i in batched[rest]])
            return outcomes
        subscriber = registry.get(name)
        assert subscriber is not None
        ids = batched[name] + _top_up(engine, worker, subscriber, len(batched[name]))
        for first in range(0, len(ids), subscriber.batch):
            outcomes.extend(deliver_batch(engine, worker=worker, delivery_ids=ids[first : first + subscriber.batch]))
    return outcomes


def _split_batched(engine: Engine, delivery_ids: list[int]) -> tuple[list[int], dict[str, list[int]]]:
    """The claimed ids to run alone, and those of each batch subscriber."""
    if not delivery_ids or not any(s.batch for s in registry.subscribers()):
        return list(delivery_ids), {}
    session = new_session(engine)
    try:
        owner = dict(
            session.execute(
                select(OutboxDelivery.id, OutboxDelivery.subscriber).where(OutboxDelivery.id.in_(delivery_ids))
            ).all()
        )
        session.rollback()
    finally:
        session.close()
    single: list[int] = []
    batched: dict[str, list[int]] = {}
    for delivery_id in delivery_ids:
        subscriber = registry.get(owner.get(delivery_id, ""))
        if subscriber is not None and subscriber.batch:
            batched.setdefault(subscriber.name, []).append(delivery_id)
        else:
            single.append(delivery_id)
    return single, batched


def _top_up(engine: Engine, worker: str, subscriber: Subscriber, have: int) -> list[int]:
    """More due deliveries of ``subscriber`` so that its last batch is full (a claim of 100 deliveries should
    not cut 100,000 segment entries into batches of 100)."""
    want = subscriber.batch - have % subscriber.batch if have % subscriber.batch else 0
    if not want:
        return []
    session = new_session(engine)
    try:
        ids = claim(session, worker=worker, limit=want, subscriber=subscriber.name)
        session.commit()
        return ids
    finally:
        session.close()


def _release_rest(engine: Engine, worker: str, ids: list[int]) -> None:
    session = new_session(engine)
    try:
        release(session, worker=worker, delivery_ids=ids)
        session.commit()
    finally:
        session.close()


def _run(session: Session, subscriber: Subscriber, delivery: Delivery, record: OutboxDelivery) -> None:
    if subscriber.targets is not None and not delivery.target:
        now = utcnow()
        targets = sorted({str(t) for t in subscriber.targets(session, delivery)})
        too_long = [t for t in targets if not t or len(t) > 200]
        if too_long:
            raise ValueError(f"subscriber {subscriber.name!r} named targets that are empty or over 200 characters")
        session.add_all(
            OutboxDelivery(
                message_id=delivery.message_id,
                subscriber=delivery.subscriber,
                target=t,
                available_at=now,
                created_at=now,
            )
            for t in targets
        )
        return
    if subscriber.batch:
        subscriber.handle(session, [delivery])  # type: ignore[arg-type]
    else:
        subscriber.handle(session, delivery)  # type: ignore[arg-type]


def renew_lease(engine: Engine, *, delivery: Delivery, seconds: int | None = None) -> bool:
    """Extend the lease of a delivery its handler is still working on, in a transaction of its own.

    For handlers that run longer than a lease (an import in the worker); False when the lease is no longer this
    worker's (it ran out and another worker took the delivery), so the handler should stop.
    """
    lease = seconds if seconds is not None else get_settings().outbox_lease_seconds
    session = new_session(engine)
    try:
        _begin(session)
        result = session.execute(
            update(OutboxDelivery)
            .where(
                OutboxDelivery.id == delivery.id,
                OutboxDelivery.locked_by == delivery.worker,
                OutboxDelivery.status == "pending",
            )
            .values(locked_until=utcnow() + dt.timedelta(seconds=lease))
            .execution_options(synchronize_session=False)
        )
        session.commit()
        return result.rowcount == 1
    finally:
        session.close()


def _finish(session: Session, delivery_id: int, worker: str, *, status: str, error: str | None = None) -> bool:
    values: dict[str, Any] = {"status": status, "finished_at": utcnow(), "locked_by": None, "locked_until": None}
    if error is not None:
        values["last_error"] = error
    result = session.execute(
        update(OutboxDelivery)
        .where(OutboxDelivery.id == delivery_id, OutboxDelivery.locked_by == worker)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


def _record_failure(session: Session, delivery_id: int, worker: str, error: str, *, give_up: bool = False) -> Outcome:
    _begin(session)
    record = session.get(OutboxDelivery, delivery_id)
    if record is None or record.locked_by != worker:
        session.rollback()
        return Outcome(delivery_id, "lost", error)
    limit = _max_attempts(registry.get(record.subscriber))
    dead = give_up or record.attempts >= limit
    values: dict[str, Any] = {"last_error": error[:2000], "locked_by": None, "locked_until": None}
    if dead:
        values.update(status="dead", finished_at=utcnow())
    else:
        # Back off exponentially, capped at an hour, so a broken receiver is not hammered.
        values["available_at"] = utcnow() + dt.timedelta(seconds=min(3600, 2**record.attempts))
    session.execute(
        update(OutboxDelivery)
        .where(OutboxDelivery.id == delivery_id, OutboxDelivery.locked_by == worker)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    session.commit()
    return Outcome(delivery_id, "dead" if dead else "failed", error)


def _max_attempts(subscriber: Subscriber | None) -> int:
    if subscriber is not None and subscriber.max_attempts:
        return subscriber.max_attempts
    return get_settings().outbox_max_attempts


def _no_report(record: OutboxDelivery) -> str:
    return f"gave up after {record.attempts - 1} attempts that never reported back (worker died or lease ran out)"


# --- what admins see and do -------------------------------------------------------------------------------


@dataclass(frozen=True)
class SubscriberStatus:
    subscriber: str
    declared: bool
    due: int
    scheduled: int
    running: int
    retrying: int
    dead: int
    done: int
    oldest_due: dt.datetime | None


def status(session: Session, *, actor: Actor) -> list[SubscriberStatus]:
    """Per subscriber: deliveries due now, scheduled for later, running under a lease, retrying, dead, done."""
    require(actor, "outbox:manage")
    now = utcnow()
    d = OutboxDelivery
    pending = d.status == "pending"
    leased = and_(pending, d.locked_until.is_not(None), d.locked_until >= now)

    def count(condition: ColumnElement[bool]) -> Any:
        return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)

    rows = session.execute(
        select(
            d.subscriber,
            count(and_(pending, d.available_at <= now, ~leased)),
            count(and_(pending, d.available_at > now)),
            count(leased),
            count(and_(pending, d.attempts > 0, d.last_error.is_not(None))),
            count(d.status == "dead"),
            count(d.status == "done"),
            func.min(case((and_(pending, d.available_at <= now), d.available_at))),
        ).group_by(d.subscriber)
    ).all()
    seen = {r[0]: r for r in rows}
    names = sorted(set(seen) | {s.name for s in registry.subscribers()})
    declared = {s.name for s in registry.subscribers()}
    out = []
    for name in names:
        r = seen.get(name)
        oldest = r[7] if r is not None else None
        if isinstance(oldest, str):  # SQLite hands back MIN() of a timestamp as text
            oldest = dt.datetime.fromisoformat(oldest).replace(tzinfo=dt.UTC)
        out.append(
            SubscriberStatus(
                subscriber=name,
                declared=name in declared,
                due=int(r[1]) if r else 0,
                scheduled=int(r[2]) if r else 0,
                running=int(r[3]) if r else 0,
                retrying=int(r[4]) if r else 0,
                dead=int(r[5]) if r else 0,
                done=int(r[6]) if r else 0,
                oldest_due=oldest,
            )
        )
    return out


def list_deliveries(
    session: Session, *, actor: Actor, status: str = "dead", subscriber: str | None = None, limit: int = 100
) -> list[tuple[OutboxDelivery, OutboxMessage]]:
    """Deliveries in ``status`` with their messages, newest first (the dead-letter view)."""
    require(actor, "outbox:manage")
    if status not in STATUSES:
        raise ValidationError(f"unknown delivery status {status!r}; one of {', '.join(STATUSES)}", field="status")
    query = (
        select(OutboxDelivery, OutboxMessage)
        .join(OutboxMessage, OutboxMessage.id == OutboxDelivery.message_id)
        .where(OutboxDelivery.status == status)
        .order_by(OutboxDelivery.id.desc())
        .limit(limit)
    )
    if subscriber:
        query = query.where(OutboxDelivery.subscriber == subscriber)
    return [(d, m) for d, m in session.execute(query).all()]


def retry(
    session: Session,
    *,
    actor: Actor,
    delivery_ids: list[int] | None = None,
    subscriber: str | None = None,
) -> int:
    """Give dead deliveries (all, one subscriber's, or the listed ones) a fresh set of attempts, due now."""
    require(actor, "outbox:manage")
    query = update(OutboxDelivery).where(OutboxDelivery.status == "dead")
    if delivery_ids:
        found = set(session.scalars(select(OutboxDelivery.id).where(OutboxDelivery.id.in_(delivery_ids))))
        missing = sorted(set(delivery_ids) - found)
        if missing:
            raise NotFound(f"no delivery with id {', '.join(map(str, missing))}", field="delivery_ids")
        query = query.where(OutboxDelivery.id.in_(delivery_ids))
    if subscriber:
        query = query.where(OutboxDelivery.subscriber == subscriber)
    result = session.execute(
        query.values(
            status="pending", attempts=0, available_at=utcnow(), finished_at=None, locked_by=None, locked_until=None
        ).execution_options(synchronize_session=False)
    )
    count = result.rowcount
    if count:
        audit.record(
            session,
            actor=actor,
            action="outbox.retry",
            entity_type="outbox_delivery",
            details={"deliveries": count, "ids": sorted(delivery_ids or [])[:100], "subscriber": subscriber},
            summary=f"retried {count} dead deliveries",
        )
    return count
