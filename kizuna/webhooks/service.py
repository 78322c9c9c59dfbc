"""Subscriptions of endpoints to events, the delivery log and manual retries: what admins do, audited."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import String, and_, cast, select, update
from sqlalchemy.orm import Session

from kizuna.auth import audit
from kizuna.auth.permissions import Actor, require
from kizuna.db import utcnow
from kizuna.errors import Conflict, NotFound, ValidationError
from kizuna.messaging.webhook_admin import PERMISSION, get_endpoint
from kizuna.messaging.webhook_models import WebhookEndpoint
from kizuna.outbox.models import OutboxDelivery
from kizuna.webhooks import events
from kizuna.webhooks.delivery import SUBSCRIBER
from kizuna.webhooks.models import WebhookDelivery, WebhookSubscription

# What a delivery shows as, from its outbox delivery and its log row.
STATUSES = ("pending", "retrying", "delivered", "dead", "skipped")
PREVIEW_CHARS = 2000


def _events(names: Sequence[str]) -> list[str]:
    """The event names, checked against the registry, without repeats, in a stable order."""
    cleaned = sorted({n.strip() for n in names if n and n.strip()})
    if not cleaned:
        raise ValidationError("choose at least one event", field="events", key="error.webhook_no_events")
    unknown = [n for n in cleaned if events.get(n) is None]
    if unknown:
        known = ", ".join(e.name for e in events.all_events())
        raise ValidationError(
            f"unknown event {', '.join(unknown)}; one of {known}",
            field="events",
            key="error.webhook_unknown_event",
            params={"event": ", ".join(unknown)},
        )
    return cleaned


def list_subscriptions(session: Session, *, actor: Actor, endpoint_id: int | None = None) -> list[WebhookSubscription]:
    require(actor, PERMISSION)
    query = select(WebhookSubscription).order_by(WebhookSubscription.endpoint_id, WebhookSubscription.id)
    if endpoint_id is not None:
        query = query.where(WebhookSubscription.endpoint_id == endpoint_id)
    return list(session.scalars(query))


def get_subscription(session: Session, *, actor: Actor, subscription_id: int) -> WebhookSubscription:
    require(actor, PERMISSION)
    subscription = session.get(WebhookSubscription, subscription_id)
    if subscription is None:
        raise NotFound(f"webhook subscription {subscription_id} not found")
    return subscription


def create_subscription(
    session: Session,
    *,
    actor: Actor,
    endpoint_id: int,
    events: Sequence[str],
    include_backfill: bool = False,
    active: bool = True,
) -> WebhookSubscription:
    """Subscribe an endpoint to event types; events that happen from now on are sent (none from before)."""
    require(actor, PERMISSION)
    endpoint = get_endpoint(session, endpoint_id)
    chosen = _events(events)
    now = utcnow()
    subscription = WebhookSubscription(
        endpoint_id=endpoint.id,
        events=chosen,
        include_backfill=include_backfill,
        active=active,
        created_by=actor.label,
        created_at=now,
        updated_at=now,
    )
    session.add(subscription)
    session.flush()
    audit.record(
        session,
        actor=actor,
        action="webhook.subscription.create",
        entity_type="webhook_subscription",
        entity_id=subscription.id,
        details={"endpoint": endpoint.name, "events": chosen, "include_backfill": include_backfill, "active": active},
    )
    return subscription


def update_subscription(
    session: Session,
    *,
    actor: Actor,
    subscription_id: int,
    events: Sequence[str] | None = None,
    include_backfill: bool | None = None,
    active: bool | None = None,
) -> WebhookSubscription:
    """Change the fields given; pausing (``active=False``) stops sending, also what was not sent yet."""
    subscription = get_subscription(session, actor=actor, subscription_id=subscription_id)
    changes: dict[str, Any] = {}
    if events is not None:
        chosen = _events(events)
        if chosen != subscription.events:
            changes["events"] = [subscription.events, chosen]
            subscription.events = chosen
    for name, value in (("include_backfill", include_backfill), ("active", active)):
        if value is not None and value != getattr(subscription, name):
            changes[name] = [getattr(subscription, name), value]
            setattr(subscription, name, value)
    if changes:
        subscription.updated_at = utcnow()
        audit.record(
            session,
            actor=actor,
            action="webhook.subscription.update",
            entity_type="webhook_subscription",
            entity_id=subscription.id,
            details=changes,
        )
    return subscription


def delete_subscription(session: Session, *, actor: Actor, subscription_id: int) -> None:
    """Delete a subscription; its delivery log stays (what was sent, to whom), and nothing more is sent."""
    subscription = get_subscription(session, actor=actor, subscription_id=subscription_id)
    audit.record(
        session,
        actor=actor,
        action="webhook.subscription.delete",
        entity_type="webhook_subscription",
        entity_id=subscription.id,
        details={"endpoint_id": subscription.endpoint_id, "events": subscription.events},
    )
    session.delete(subscription)


# --- the delivery log ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DeliveryView:
    id: int
    endpoint_id: int
    endpoint: str | None
    subscription_id: int
    event: str
    event_id: str
    customer_id: int | None
    status: str
    attempts: int
    response_status: int | None
    latency_ms: int | None
    last_error: str | None
    next_attempt_at: dt.datetime | None
    last_attempt_at: dt.datetime | None
    delivered_at: dt.datetime | None
    created_at: dt.datetime
    idempotency_key: str
    payload: str

    @property
    def preview(self) -> str:
        """The body, indented, cut at ``PREVIEW_CHARS``."""
        try:
            text = json.dumps(json.loads(self.payload), ensure_ascii=False, indent=2)
        except ValueError:
            text = self.payload
        return text if len(text) <= PREVIEW_CHARS else text[:PREVIEW_CHARS] + "\n…"


def _status(outbox_status: str | None, attempts: int, log: WebhookDelivery) -> str:
    if outbox_status == "dead":
        return "dead"
    if outbox_status == "done":
        return "delivered" if log.delivered_at is not None else "skipped"
    return "retrying" if attempts > 0 and log.last_attempt_at is not None else "pending"


def _joined() -> Any:
    return (
        select(WebhookDelivery, OutboxDelivery, WebhookEndpoint.name)
        .outerjoin(
            OutboxDelivery,
            and_(
                OutboxDelivery.message_id == WebhookDelivery.message_id,
                OutboxDelivery.subscriber == SUBSCRIBER,
                # The target is the subscription id as text (the outbox's unique key: an index lookup).
                OutboxDelivery.target == _as_text(WebhookDelivery.subscription_id),
            ),
        )
        .outerjoin(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
    )


def _as_text(column: Any) -> Any:
    return cast(column, String)


def _view(log: WebhookDelivery, outbox: OutboxDelivery | None, endpoint: str | None) -> DeliveryView:
    attempts = outbox.attempts if outbox is not None else 0
    status = _status(outbox.status if outbox is not None else None, attempts, log)
    waiting = outbox is not None and outbox.status == "pending"
    error = log.note if status != "delivered" else None
    if outbox is not None and outbox.last_error and status in ("retrying", "dead") and not error:
        error = outbox.last_error
    return DeliveryView(
        id=log.id,
        endpoint_id=log.endpoint_id,
        endpoint=endpoint,
        subscription_id=log.subscription_id,
        event=log.event,
        event_id=f"evt_{log.message_id}",
        customer_id=log.customer_id,
        status=status,
        attempts=attempts,
        response_status=log.response_status,
        latency_ms=log.latency_ms,
        last_error=error,
        next_attempt_at=outbox.available_at if waiting and outbox is not None else None,
        last_attempt_at=log.last_attempt_at,
        delivered_at=log.delivered_at,
        created_at=log.created_at,
        idempotency_key=log.idempotency_key,
        payload=log.body,
    )


def list_deliveries(
    session: Session,
    *,
    actor: Actor,
    endpoint_id: int | None = None,
    status: str | None = None,
    before_id: int | None = None,
    limit: int = 50,
) -> list[DeliveryView]:
    """The delivery log, newest first (of one endpoint when given); ``status`` one of ``STATUSES``."""
    require(actor, PERMISSION)
    if status is not None and status not in STATUSES:
        raise ValidationError(f"unknown delivery status {status!r}; one of {', '.join(STATUSES)}", field="status")
    if not 1 <= limit <= 500:
        raise ValidationError("limit is 1 to 500", field="limit")
    query = _joined().order_by(WebhookDelivery.id.desc())
    if endpoint_id is not None:
        query = query.where(WebhookDelivery.endpoint_id == endpoint_id)
    if before_id is not None:
        query = query.where(WebhookDelivery.id < before_id)
    if status == "dead":
        query = query.where(OutboxDelivery.status == "dead")
    elif status == "delivered":
        query = query.where(WebhookDelivery.delivered_at.is_not(None))
    elif status in ("pending", "retrying"):
        query = query.where(OutboxDelivery.status == "pending")
    elif status == "skipped":
        query = query.where(OutboxDelivery.status == "done", WebhookDelivery.delivered_at.is_(None))
    views = [_view(log, outbox, name) for log, outbox, name in session.execute(query.limit(limit)).all()]
    return [v for v in views if status is None or v.status == status]


def get_delivery(session: Session, *, actor: Actor, delivery_id: int) -> DeliveryView:
    require(actor, PERMISSION)
    row = session.execute(_joined().where(WebhookDelivery.id == delivery_id)).first()
    if row is None:
        raise NotFound(f"webhook delivery {delivery_id} not found")
    return _view(*row)


def retry_delivery(session: Session, *, actor: Actor, delivery_id: int) -> DeliveryView:
    """Send a dead delivery again: a fresh set of attempts, due now, the same body and ``Idempotency-Key``."""
    view = get_delivery(session, actor=actor, delivery_id=delivery_id)
    if view.status != "dead":
        raise Conflict(
            f"webhook delivery {delivery_id} is {view.status}; only a dead delivery is retried by hand",
            field="delivery_id",
            key="error.webhook_not_dead",
        )
    log = session.get(WebhookDelivery, delivery_id)
    assert log is not None
    session.execute(
        update(OutboxDelivery)
        .where(
            OutboxDelivery.message_id == log.message_id,
            OutboxDelivery.subscriber == SUBSCRIBER,
            OutboxDelivery.target == str(log.subscription_id),
            OutboxDelivery.status == "dead",
        )
        .values(
            status="pending", attempts=0, available_at=utcnow(), finished_at=None, locked_by=None, locked_until=None
        )
        .execution_options(synchronize_session=False)
    )
    audit.record(
        session,
        actor=actor,
        action="webhook.delivery.retry",
        entity_type="webhook_delivery",
        entity_id=delivery_id,
        customer_id=log.customer_id,
        details={"event": log.event, "endpoint_id": log.endpoint_id, "subscription_id": log.subscription_id},
    )
    return get_delivery(session, actor=actor, delivery_id=delivery_id)


def event_catalogue() -> list[events.EventType]:
    """Every event type an endpoint can subscribe to."""
    return events.all_events()
