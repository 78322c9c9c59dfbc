"""The outbox: domain events written with the change that causes them, delivered after commit by the worker."""

from __future__ import annotations

import datetime as dt
import os
import socket
from collections.abc import Callable
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from kizuna.db import utcnow
from kizuna.outbox.models import OutboxMessage

Handler = Callable[[Session, OutboxMessage], None]
_HANDLERS: dict[str, list[Handler]] = {}


def emit(session: Session, topic: str, payload: dict[str, Any], *, customer_id: int | None = None) -> None:
    """Record that something happened (``customer.created``, ``consent.withdrawn`` ...) in this transaction."""
    session.add(OutboxMessage(topic=topic, payload=payload, customer_id=customer_id))


def subscribe(topic: str, handler: Handler) -> None:
    _HANDLERS.setdefault(topic, []).append(handler)


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def claim(session: Session, *, worker: str, limit: int = 100, lease_seconds: int = 60) -> list[OutboxMessage]:
    """Lease up to ``limit`` due messages to this worker.

    On PostgreSQL ``FOR UPDATE SKIP LOCKED`` lets several workers claim disjoint rows; SQLite has one writer,
    so the plain UPDATE is already exclusive. A worker that dies loses its lease after ``lease_seconds``.
    """
    now = utcnow()
    query = (
        select(OutboxMessage.id)
        .where(
            OutboxMessage.delivered_at.is_(None),
            OutboxMessage.available_at <= now,
            or_(OutboxMessage.locked_until.is_(None), OutboxMessage.locked_until < now),
        )
        .order_by(OutboxMessage.id)
        .limit(limit)
    )
    if session.bind is not None and session.bind.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    ids = list(session.scalars(query))
    if not ids:
        return []
    session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id.in_(ids))
        .values(locked_by=worker, locked_until=now + dt.timedelta(seconds=lease_seconds))
    )
    return list(session.scalars(select(OutboxMessage).where(OutboxMessage.id.in_(ids)).order_by(OutboxMessage.id)))


def deliver(session: Session, message: OutboxMessage) -> None:
    """Run every handler subscribed to the message's topic; the caller commits."""
    for handler in _HANDLERS.get(message.topic, []):
        handler(session, message)
    message.delivered_at = utcnow()
    message.locked_by = None
    message.locked_until = None


def fail(session: Session, message: OutboxMessage, error: str) -> None:
    message.attempts += 1
    message.last_error = error[:2000]
    message.locked_by = None
    message.locked_until = None
    # Back off exponentially, capped at an hour, so a broken handler does not spin.
    message.available_at = utcnow() + dt.timedelta(seconds=min(3600, 2**message.attempts))
