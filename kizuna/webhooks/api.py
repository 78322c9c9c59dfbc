"""``/api/v1/webhooks``: subscriptions of endpoints to events, the event list, the delivery log and retries.

Endpoints and the allow-list are in ``messaging/api_line.py`` under the same prefix; all need ``channels:manage``.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from kizuna.auth.permissions import require
from kizuna.messaging.webhook_admin import PERMISSION
from kizuna.web.deps import DB, APIActor
from kizuna.webhooks import events, service
from kizuna.webhooks.schemas import (
    DeliveryPage,
    DeliveryRead,
    EventTypeRead,
    SubscriptionCreate,
    SubscriptionRead,
    SubscriptionUpdate,
)

router = APIRouter(prefix="/webhooks", tags=["webhooks"])


@router.get("/events", response_model=list[EventTypeRead])
def list_events(actor: APIActor) -> list[EventTypeRead]:
    """The event types an endpoint can subscribe to, with the payload version they send."""
    require(actor, PERMISSION)
    return [
        EventTypeRead(name=e.name, topic=e.topic, version=events.VERSION, description=e.description_en)
        for e in events.all_events()
    ]


@router.get("/subscriptions", response_model=list[SubscriptionRead])
def list_subscriptions(session: DB, actor: APIActor, endpoint_id: int | None = None) -> list[SubscriptionRead]:
    found = service.list_subscriptions(session, actor=actor, endpoint_id=endpoint_id)
    return [SubscriptionRead.model_validate(s) for s in found]


@router.post("/subscriptions", response_model=SubscriptionRead, status_code=201)
def create_subscription(session: DB, actor: APIActor, data: SubscriptionCreate) -> SubscriptionRead:
    """Subscribe an endpoint to events; events from now on are sent (backfilled history only if asked)."""
    subscription = service.create_subscription(session, actor=actor, **data.model_dump())
    session.commit()
    return SubscriptionRead.model_validate(subscription)


@router.get("/subscriptions/{subscription_id}", response_model=SubscriptionRead)
def read_subscription(session: DB, actor: APIActor, subscription_id: int) -> SubscriptionRead:
    return SubscriptionRead.model_validate(
        service.get_subscription(session, actor=actor, subscription_id=subscription_id)
    )


@router.patch("/subscriptions/{subscription_id}", response_model=SubscriptionRead)
def update_subscription(
    session: DB, actor: APIActor, subscription_id: int, data: SubscriptionUpdate
) -> SubscriptionRead:
    """Change events, backfill or pause (``active: false``: nothing more is sent, also what was queued)."""
    subscription = service.update_subscription(
        session, actor=actor, subscription_id=subscription_id, **data.model_dump(exclude_unset=True)
    )
    session.commit()
    return SubscriptionRead.model_validate(subscription)


@router.delete("/subscriptions/{subscription_id}", status_code=204)
def delete_subscription(session: DB, actor: APIActor, subscription_id: int) -> Response:
    service.delete_subscription(session, actor=actor, subscription_id=subscription_id)
    session.commit()
    return Response(status_code=204)


@router.get("/deliveries", response_model=DeliveryPage)
def list_deliveries(
    session: DB,
    actor: APIActor,
    endpoint_id: int | None = None,
    status: Annotated[str | None, Query(description="pending, retrying, delivered, dead or skipped")] = None,
    before_id: int | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> DeliveryPage:
    """The delivery log, newest first: status, attempts, the receiver's answer and latency, the body sent."""
    found = service.list_deliveries(
        session, actor=actor, endpoint_id=endpoint_id, status=status, before_id=before_id, limit=limit
    )
    items = [DeliveryRead.model_validate(v) for v in found]
    return DeliveryPage(items=items, next_before_id=items[-1].id if len(items) == limit else None)


@router.get("/deliveries/{delivery_id}", response_model=DeliveryRead)
def read_delivery(session: DB, actor: APIActor, delivery_id: int) -> DeliveryRead:
    return DeliveryRead.model_validate(service.get_delivery(session, actor=actor, delivery_id=delivery_id))


@router.post("/deliveries/{delivery_id}/retry", response_model=DeliveryRead)
def retry_delivery(session: DB, actor: APIActor, delivery_id: int) -> DeliveryRead:
    """Send a dead delivery again (same body, same Idempotency-Key), with a fresh set of attempts."""
    view = service.retry_delivery(session, actor=actor, delivery_id=delivery_id)
    session.commit()
    return DeliveryRead.model_validate(view)
