"""The worker's retraining every KIZUNA_SCORING_RETRAIN_DAYS days.

A chain of ``scoring.retrain_due`` outbox messages, each due that many days after the last (the pattern of the
segment refresh and the privacy purge): the first training starts it, it needs no timer of its own and
survives restarts. A tick with too little history rescores by the rules instead, and the chain goes on.
0 days turns the schedule off (a waiting tick then ends the chain).
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session

from kizuna.auth.permissions import Actor
from kizuna.config import get_settings
from kizuna.db import utcnow
from kizuna.outbox import registry
from kizuna.outbox.models import OutboxDelivery, OutboxMessage
from kizuna.outbox.registry import Delivery, declare
from kizuna.outbox.service import emit

TOPIC = "scoring.retrain_due"
SUBSCRIBER = "scoring.retrain"


def ensure_scheduled(session: Session, *, exclude_delivery: int | None = None) -> None:
    """Queue the next retraining unless one is already waiting or the schedule is off."""
    days = get_settings().scoring_retrain_days
    if days <= 0 or not registry.for_topic(TOPIC):
        return
    waiting = select(OutboxDelivery.id).where(
        OutboxDelivery.subscriber == SUBSCRIBER,
        OutboxDelivery.status == "pending",
        OutboxDelivery.message_id.in_(select(OutboxMessage.id).where(OutboxMessage.topic == TOPIC)),
    )
    if exclude_delivery is not None:
        waiting = waiting.where(OutboxDelivery.id != exclude_delivery)
    if session.scalar(waiting.limit(1)) is not None:
        return
    emit(session, TOPIC, {}, available_at=utcnow() + dt.timedelta(days=days))


@declare(SUBSCRIBER, TOPIC)
def retrain_due(session: Session, delivery: Delivery) -> None:
    from kizuna.sales.scoring import service

    actor = Actor.system("scoring", origin="worker")
    try:
        with session.begin_nested():
            service.train(session, actor=actor)
    except service.NotEnoughHistory:
        service.score_open(session)
    ensure_scheduled(session, exclude_delivery=delivery.id)
