"""The public event types an endpoint can subscribe to, and the versioned JSON each one sends.

An event type is a public name (``customer.created``) over an outbox topic, and a function that turns the
topic's message (which names ids only) into the event's ``data``. The body is built once, when the event fans
out to the subscriptions, and the same bytes go out on every attempt. Every body has this envelope (version 1):

    {"id": "evt_123", "type": "order.completed", "version": 1, "occurred_at": "...", "created_at": "...",
     "origin": "api", "backfill": false, "data": {...}}

Later capabilities (sales, inquiries) add their types with ``register``; a change to a type's ``data`` that is
not an added field gets a new ``version``.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from kizuna.customers.models import Customer
from kizuna.journeys.triggers import BACKFILL_ORIGINS
from kizuna.orders.models import Order, OrderLine
from kizuna.outbox.registry import Delivery
from kizuna.segments.models import Segment

VERSION = 1

# The customer as every event shows it. Personal data (APPI) are the fields a third-party record names.
CUSTOMER_FIELDS = (
    "id", "external_id", "email", "phone", "family_name", "given_name", "family_name_kana", "given_name_kana",
    "full_name", "postal_code", "prefecture", "city", "country", "lifecycle_stage", "locale", "status",
    "created_at", "updated_at",
)  # fmt: skip
PERSONAL_FIELDS = frozenset(
    {
        "external_id", "email", "phone", "family_name", "given_name", "family_name_kana", "given_name_kana",
        "full_name", "postal_code", "prefecture", "city", "country",
    }
)  # fmt: skip

Build = Callable[[Session, Delivery], dict[str, Any]]


@dataclass(frozen=True)
class EventType:
    name: str  # public name, what subscriptions list
    topic: str  # the outbox topic it comes from
    description_en: str
    description_ja: str
    build: Build

    def is_backfill(self, delivery: Delivery) -> bool:
        """History arriving in bulk: an import's messages, and the members a new segment starts with."""
        return delivery.origin in BACKFILL_ORIGINS or delivery.payload.get("refresh") == "initial"


_EVENTS: dict[str, EventType] = {}


def register(event: EventType) -> None:
    known = _EVENTS.get(event.name)
    if known is not None and known != event:
        raise ValueError(f"two webhook event types are named {event.name!r}")
    _EVENTS[event.name] = event


def all_events() -> list[EventType]:
    return sorted(_EVENTS.values(), key=lambda e: e.name)


def get(name: str) -> EventType | None:
    return _EVENTS.get(name)


def for_topic(topic: str) -> list[EventType]:
    return [e for e in _EVENTS.values() if e.topic == topic]


def topics() -> list[str]:
    return sorted({e.topic for e in _EVENTS.values()})


# --- bodies ----------------------------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value


def customer_of(session: Session, customer_id: Any) -> dict[str, Any] | None:
    """The customer as events show them, as stored now; None when they are gone (deleted meanwhile)."""
    if not isinstance(customer_id, int):
        return None
    customer = session.get(Customer, customer_id)
    if customer is None:
        return None
    shown = {name: _plain(getattr(customer, name)) for name in CUSTOMER_FIELDS}
    shown["tags"] = [t.name for t in customer.tags]
    return shown


def _customer_id(delivery: Delivery) -> Any:
    return delivery.customer_id if delivery.customer_id is not None else delivery.payload.get("customer_id")


def _customer_event(session: Session, delivery: Delivery) -> dict[str, Any]:
    customer_id = _customer_id(delivery)
    data: dict[str, Any] = {"customer_id": customer_id, "customer": customer_of(session, customer_id)}
    if delivery.topic == "customer.updated":
        data["changed_fields"] = list(delivery.payload.get("fields") or [])
    return data


def _merged(session: Session, delivery: Delivery) -> dict[str, Any]:
    survivor = delivery.payload.get("survivor_id")
    return {
        "customer_id": survivor,
        "merged_id": delivery.payload.get("merged_id"),
        "reason": delivery.payload.get("reason"),
        "customer": customer_of(session, survivor),
    }


def _segment(session: Session, delivery: Delivery) -> dict[str, Any]:
    segment_id = delivery.payload.get("segment_id")
    name = delivery.payload.get("segment")
    if name is None and isinstance(segment_id, int):
        name = session.scalar(select(Segment.name).where(Segment.id == segment_id))
    customer_id = _customer_id(delivery)
    return {
        "segment": {"id": segment_id, "name": name},
        "customer_id": customer_id,
        "customer": customer_of(session, customer_id),
    }


_ORDER_FIELDS = ("id", "external_id", "ordered_at", "status", "channel", "store", "currency", "total_amount")
_LINE_FIELDS = ("line_no", "sku", "quantity", "unit_price", "amount")


def _order(session: Session, delivery: Delivery) -> dict[str, Any]:
    order_id = delivery.payload.get("order_id")
    order = session.get(Order, order_id) if isinstance(order_id, int) else None
    shown: dict[str, Any] | None = None
    if order is not None:
        shown = {name: _plain(getattr(order, name)) for name in _ORDER_FIELDS}
        lines = session.scalars(select(OrderLine).where(OrderLine.order_id == order.id).order_by(OrderLine.line_no))
        shown["lines"] = [{name: _plain(getattr(line, name)) for name in _LINE_FIELDS} for line in lines]
    customer_id = _customer_id(delivery)
    return {
        "order_id": order_id,
        "order": shown,
        "customer_id": customer_id,
        "customer": customer_of(session, customer_id),
    }


for _event in (
    EventType("customer.created", "customer.created", "A customer was created.", "顧客が作成された", _customer_event),
    EventType(
        "customer.updated",
        "customer.updated",
        "A customer's fields or tags changed (changed_fields names them).",
        "顧客の項目またはタグが変更された（changed_fields に項目名）",
        _customer_event,
    ),
    EventType(
        "customer.merged",
        "customer.merged",
        "Two records of one person were merged (customer is the survivor).",
        "同一人物の2件が統合された（customer は残った側）",
        _merged,
    ),
    EventType(
        "segment.entered", "segment.entered", "A customer entered a segment.", "顧客がセグメントに入った", _segment
    ),
    EventType("segment.exited", "segment.exited", "A customer left a segment.", "顧客がセグメントから出た", _segment),
    EventType("order.completed", "order.completed", "An order was completed.", "注文が完了した", _order),
):
    register(_event)

# Events of later domains, registered by their own modules (each imports what it needs from above).
from kizuna.inquiries import webhook_events  # noqa: E402, F401


def body(session: Session, event: EventType, delivery: Delivery) -> str:
    """The JSON text sent for ``delivery``'s message as ``event``: built now, sent as is on every attempt."""
    envelope = {
        "id": f"evt_{delivery.message_id}",
        "type": event.name,
        "version": VERSION,
        "occurred_at": _plain(delivery.occurred_at),
        "created_at": _plain(dt.datetime.now(dt.UTC)),
        "origin": delivery.origin,
        "backfill": event.is_backfill(delivery),
        "data": event.build(session, delivery),
    }
    return json.dumps(envelope, ensure_ascii=False, separators=(",", ":"), default=str)


def personal_fields(data: dict[str, Any]) -> list[str]:
    """The personal-data fields a body's ``data`` hands over (for the third-party record)."""
    customer = data.get("customer") or {}
    return sorted(name for name in PERSONAL_FIELDS if customer.get(name) not in (None, ""))
