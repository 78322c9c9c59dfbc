"""Admin API for the outbox: per-subscriber status, dead deliveries, retry."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query

from kizuna.outbox import service
from kizuna.outbox.schemas import DeliveryRead, RetryRequest, RetryResult, SubscriberStatusRead
from kizuna.web.deps import DB, APIActor

router = APIRouter(prefix="/outbox", tags=["outbox"])


@router.get("/status", response_model=list[SubscriberStatusRead])
def outbox_status(session: DB, actor: APIActor) -> list:
    """Deliveries per subscriber: due now, scheduled, running under a lease, retrying, dead, done."""
    return [s.__dict__ for s in service.status(session, actor=actor)]


@router.get("/deliveries", response_model=list[DeliveryRead])
def list_deliveries(
    session: DB,
    actor: APIActor,
    status: Literal["pending", "done", "dead"] = "dead",
    subscriber: Annotated[str | None, Query(max_length=100)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list:
    rows = service.list_deliveries(session, actor=actor, status=status, subscriber=subscriber, limit=limit)
    return [_read(d, m) for d, m in rows]


@router.post("/retry", response_model=RetryResult)
def retry(data: RetryRequest, session: DB, actor: APIActor) -> dict:
    """Give dead deliveries (the listed ones, one subscriber's, or all when neither is given) fresh attempts."""
    count = service.retry(session, actor=actor, delivery_ids=data.delivery_ids, subscriber=data.subscriber)
    session.commit()
    return {"retried": count}


def _read(d, m) -> DeliveryRead:  # noqa: ANN001
    return DeliveryRead(
        id=d.id,
        message_id=m.id,
        subscriber=d.subscriber,
        target=d.target,
        status=d.status,
        attempts=d.attempts,
        available_at=d.available_at,
        last_error=d.last_error,
        finished_at=d.finished_at,
        topic=m.topic,
        origin=m.origin,
        customer_id=m.customer_id,
        payload=m.payload or {},
    )
