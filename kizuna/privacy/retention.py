"""The worker's daily purge of provision records past their retention.

A chain of ``privacy.purge_due`` outbox messages, each due a day after the last (the same pattern as the segment
refresh schedule): it starts when the first record is written (``ensure_scheduled``), needs no timer of its
own and survives restarts like any other delivery.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session

from kizuna.auth.permissions import Actor
from kizuna.db import utcnow
from kizuna.outbox import registry
from kizuna.outbox.models import OutboxDelivery, OutboxMessage
from kizuna.outbox.registry import Delivery, declare
from kizuna.outbox.service import emit

TOPIC = "privacy.purge_due"
SUBSCRIBER = "privacy.retention"
EVERY = dt.timedelta(days=1)


def ensure_scheduled(session: Session, *, exclude_delivery: int | None = None) -> None:
    """Queue the next purge a day from now unless one is already waiting."""
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
    from kizuna.privacy.service import purge_expired_unchecked

    purge_expired_unchecked(session, actor=Actor.system("privacy", origin="worker"))
    ensure_scheduled(session, exclude_delivery=delivery.id)
