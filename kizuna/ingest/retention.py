"""Anonymous visitor profiles age out: removed after ``KIZUNA_ANONYMOUS_RETENTION_DAYS`` without an event.

``kizuna worker`` does it once a day: a chain of ``ingest.purge_due`` outbox messages, each due a day after the
last (as the provision records' purge), started when the first tracking source is made; ``kizuna sources
purge-anonymous`` does it at once.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import delete, exists, select
from sqlalchemy.orm import Session

from kizuna.auth import audit
from kizuna.auth.permissions import Actor, require
from kizuna.config import get_settings
from kizuna.customers.models import Customer
from kizuna.db import utcnow
from kizuna.events.models import Event
from kizuna.ingest.stitching import ANONYMOUS
from kizuna.outbox import registry
from kizuna.outbox.models import OutboxDelivery, OutboxMessage
from kizuna.outbox.registry import Delivery, declare
from kizuna.outbox.service import emit

TOPIC = "ingest.purge_due"
SUBSCRIBER = "ingest.retention"
EVERY = dt.timedelta(days=1)
# One day's purge removes at most this many profiles (in transactions of PURGE_BATCH); the rest waits a day.
DAILY_MOST = 200_000
PURGE_BATCH = 10_000


def purge_anonymous(session: Session, *, actor: Actor, days: int | None = None, limit: int = 10_000) -> int:
    """Delete up to ``limit`` anonymous profiles with no event received in ``days``; returns how many.

    Their events, identities and everything else that names them go with them (the foreign keys cascade); a
    profile that has been identified is no longer ``anonymous`` and is never touched.
    """
    require(actor, "customers:delete")
    days = days or get_settings().anonymous_retention_days
    cutoff: dt.datetime = utcnow() - dt.timedelta(days=days)
    recent = exists().where(Event.customer_id == Customer.id, Event.received_at >= cutoff)
    ids = list(
        session.scalars(
            select(Customer.id)
            .where(Customer.status == ANONYMOUS, Customer.created_at < cutoff, ~recent)
            .order_by(Customer.id)
            .limit(limit)
        )
    )
    if not ids:
        return 0
    for start in range(0, len(ids), 1000):
        chunk = ids[start : start + 1000]
        session.execute(delete(Customer).where(Customer.id.in_(chunk)).execution_options(synchronize_session=False))
    audit.record(
        session,
        actor=actor,
        action="customer.purge_anonymous",
        entity_type="customer",
        details={"count": len(ids), "days": days, "first_id": ids[0], "last_id": ids[-1]},
        summary=f"{len(ids)} anonymous profiles older than {days} days",
    )
    return len(ids)


def ensure_scheduled(session: Session, *, exclude_delivery: int | None = None) -> None:
    """Queue the next daily purge unless one is already waiting."""
    waiting = select(OutboxDelivery.id).where(
        OutboxDelivery.subscriber == SUBSCRIBER,
        OutboxDelivery.status == "pending",
        OutboxDelivery.message_id.in_(select(OutboxMessage.id).where(OutboxMessage.topic == TOPIC)),
    )
    if exclude_delivery is not None:
        waiting = waiting.where(OutboxDelivery.id != exclude_delivery)
    # A process that did not load this subscriber would write a message nobody receives, on every call.
    if not registry.for_topic(TOPIC) or session.scalar(waiting.limit(1)) is not None:
        return
    emit(session, TOPIC, {}, available_at=utcnow() + EVERY)


@declare(SUBSCRIBER, TOPIC)
def purge_due(session: Session, delivery: Delivery) -> None:
    actor = Actor.system("ingest", origin="worker")
    removed = 0
    while removed < DAILY_MOST:
        done = purge_anonymous(session, actor=actor, limit=PURGE_BATCH)
        removed += done
        if done < PURGE_BATCH:
            break
    ensure_scheduled(session, exclude_delivery=delivery.id)
