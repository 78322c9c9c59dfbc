"""Keeping the persisted metrics fresh: the worker recomputes them a little after new data arrives, and once a
day (recency moves with the calendar even when nothing new arrives).

New orders, imports, merges and deletions ask for a refresh ``DEBOUNCE`` later unless one is already due, so a
burst of orders costs one refresh. Each refresh, however it was asked for, makes sure the next daily one is
due (at ``DAILY_AT`` in ``KIZUNA_DEFAULT_TIMEZONE``); the daily one also fits CLV and saves its
predictions. A refresh is a full recomputation, so one that runs twice
(two workers racing to ask) writes the same rows twice and nothing else.
"""

from __future__ import annotations

import contextlib
import datetime as dt

from sqlalchemy import exists, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from kizuna.analytics import periods
from kizuna.analytics.metrics import MetricsSpec
from kizuna.db import utcnow
from kizuna.outbox.models import OutboxDelivery, OutboxMessage
from kizuna.outbox.registry import Delivery, declare
from kizuna.outbox.service import emit, renew_lease

TOPIC = "metrics.refresh"
SUBSCRIBER = "analytics-metrics"
DEBOUNCE = dt.timedelta(seconds=60)
DAILY_AT = dt.time(3, 0)
DATA_TOPICS = (
    "order.completed",
    "order.updated",
    "order.deleted",
    "import.completed",
    "customer.merged",
    "customer.deleted",
)


def _due_before(session: Session, when: dt.datetime, *, besides: int | None = None) -> bool:
    """A refresh other than delivery ``besides`` (the one running) is already waiting to run by ``when``."""
    return bool(
        session.scalar(
            select(
                exists().where(
                    OutboxDelivery.message_id == OutboxMessage.id,
                    OutboxMessage.topic == TOPIC,
                    OutboxDelivery.subscriber == SUBSCRIBER,
                    OutboxDelivery.status == "pending",
                    OutboxDelivery.available_at <= when,
                    OutboxDelivery.id != (besides or 0),
                )
            )
        )
    )


def request_refresh(session: Session, *, delay: dt.timedelta = DEBOUNCE, reason: str = "data") -> None:
    """Ask the worker for a refresh ``delay`` from now, unless one is already due by then."""
    when = utcnow() + delay
    if not _due_before(session, when):
        emit(session, TOPIC, {"reason": reason}, available_at=when)


def next_daily(now: dt.datetime) -> dt.datetime:
    local = now.astimezone(periods.zone())
    at = dt.datetime.combine(local.date(), DAILY_AT, tzinfo=periods.zone())
    if at <= local:
        at = dt.datetime.combine(local.date() + dt.timedelta(days=1), DAILY_AT, tzinfo=periods.zone())
    return at.astimezone(dt.UTC)


@declare(SUBSCRIBER, TOPIC, *DATA_TOPICS)
def on_message(session: Session, delivery: Delivery) -> None:
    if delivery.topic != TOPIC:
        request_refresh(session, reason=delivery.topic)
        return
    from kizuna.analytics.service import refresh_with

    engine = session.get_bind()
    assert isinstance(engine, Engine)
    # End the delivery's transaction first: on SQLite it would hold the write lock the refresh needs.
    session.rollback()
    renew_lease(engine, delivery=delivery)
    daily_run = delivery.payload.get("reason") == "daily"
    # Top categories read every order line: the daily run refreshes them, a refresh after new orders does not.
    refresh_with(engine, MetricsSpec(categories=daily_run))
    if daily_run:
        _daily_clv(engine, delivery)
        renew_lease(engine, delivery=delivery)
        # What customers buy together moves slowly too; recommendations read it (analytics.recommend).
        from kizuna.analytics.neighbors import refresh_neighbors

        refresh_neighbors(engine)
    daily = next_daily(utcnow())
    if not _due_before(session, daily, besides=delivery.id):
        emit(session, TOPIC, {"reason": "daily"}, available_at=daily)


def waiting_refresh(session: Session) -> dt.datetime | None:
    """When the next refresh is due, if one is waiting."""
    return session.scalar(
        select(OutboxDelivery.available_at)
        .join(OutboxMessage, OutboxDelivery.message_id == OutboxMessage.id)
        .where(OutboxMessage.topic == TOPIC, OutboxDelivery.subscriber == SUBSCRIBER)
        .where(OutboxDelivery.status == "pending")
        .order_by(OutboxDelivery.available_at)
        .limit(1)
    )


def _daily_clv(engine: Engine, delivery: Delivery) -> None:
    """Once a day, CLV and churn risk too (a fit takes longer than the scores, and moves slowly)."""
    from kizuna.analytics.clv import NotEnoughData
    from kizuna.analytics.clv_models import ModelFitError
    from kizuna.analytics.service import save_clv_with

    renew_lease(engine, delivery=delivery)
    # Too few repeat buyers yet (or a fit that did not converge): the CLV page says why when asked; the scores
    # are saved all the same.
    with contextlib.suppress(NotEnoughData, ModelFitError):
        save_clv_with(engine)
