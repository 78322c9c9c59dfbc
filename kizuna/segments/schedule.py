"""The worker's side of segments: a refresh of every dynamic segment every KIZUNA_SEGMENT_REFRESH_MINUTES, and
at once after an import completes.

The schedule is a chain of outbox messages: each ``segments.refresh_due`` delivery refreshes the segments and
writes the next one, due ``segment_refresh_minutes`` later (``emit(..., available_at=...)``), so it needs no
timer of its own and survives restarts like any other delivery. Creating a segment starts the chain when no
tick is waiting (``ensure_scheduled``). Each refresh is incremental (only the customers changed since the last
one) unless a full one is due for the day (see ``service.needs_full``).
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from kizuna.auth.permissions import Actor
from kizuna.config import get_settings
from kizuna.db import new_session, utcnow
from kizuna.outbox.models import OutboxDelivery, OutboxMessage
from kizuna.outbox.registry import Delivery, declare
from kizuna.outbox.service import emit

TOPIC = "segments.refresh_due"
SUBSCRIBER = "segments.refresh"


def ensure_scheduled(session: Session, *, exclude_delivery: int | None = None) -> None:
    """Queue the next scheduled refresh unless one is already waiting (in this transaction)."""
    waiting = select(OutboxDelivery.id).where(
        OutboxDelivery.subscriber == SUBSCRIBER,
        OutboxDelivery.status == "pending",
        OutboxDelivery.message_id.in_(select(OutboxMessage.id).where(OutboxMessage.topic == TOPIC)),
    )
    if exclude_delivery is not None:
        waiting = waiting.where(OutboxDelivery.id != exclude_delivery)
    if session.scalar(waiting.limit(1)) is not None:
        return
    due = utcnow() + dt.timedelta(minutes=get_settings().segment_refresh_minutes)
    emit(session, TOPIC, {}, available_at=due)


class RefreshFailed(RuntimeError):
    """Some segments could not be refreshed; the others were, and the delivery is retried."""


@declare(SUBSCRIBER, TOPIC, "import.completed")
def refresh_segments(session: Session, delivery: Delivery) -> None:
    """Refresh every dynamic segment, each in a transaction of its own (a failing rule does not hold back the
    others), then queue the next tick in the delivery's own transaction."""
    from kizuna.segments import service

    engine = session.get_bind()
    assert isinstance(engine, Engine)
    # The delivery's transaction holds SQLite's write lock: end it, so each segment's refresh can take it.
    session.commit()
    _, errors = service.refresh_due(lambda: new_session(engine), actor=Actor.system("segments", origin="worker"))
    if delivery.topic == TOPIC:
        ensure_scheduled(session, exclude_delivery=delivery.id)
    if errors:
        raise RefreshFailed("; ".join(errors))
