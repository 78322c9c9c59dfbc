"""Touchpoint events. They are recorded and never edited; deletion exists for corrections and erasure."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from kizuna.auth import audit
from kizuna.auth.permissions import Actor, require
from kizuna.customers.service import resolve_id
from kizuna.db import check_version
from kizuna.errors import NotFound, ValidationError
from kizuna.events.models import Event
from kizuna.events.schemas import EventCreate
from kizuna.outbox.service import emit

# Events are never edited, so every event stays at its first version; its ETag is W/"1".
EVENT_VERSION = 1


def get_event(session: Session, event_id: int) -> Event:
    event = session.get(Event, event_id)
    if event is None:
        raise NotFound(f"event {event_id} not found")
    return event


def record_event(session: Session, *, actor: Actor, data: EventCreate) -> tuple[Event, bool]:
    """Store an event; returns (event, created). A known ``external_id`` returns the stored event unchanged."""
    require(actor, "events:write")
    if data.external_id:
        existing = session.scalar(select(Event).where(Event.external_id == data.external_id))
        if existing is not None:
            return existing, False
    customer_id = None
    if data.customer_id is not None:
        try:
            customer_id = resolve_id(session, data.customer_id)
        except NotFound as exc:
            raise ValidationError(f"customer {data.customer_id} does not exist", field="customer_id") from exc
    event = Event(**data.model_dump(exclude={"customer_id"}), customer_id=customer_id)
    session.add(event)
    session.flush()
    # Events are high-volume; the audit log records them only as writes by people, not by the tracker.
    if not actor.label.startswith("system:"):
        audit.record(
            session,
            actor=actor,
            action="event.create",
            entity_type="event",
            entity_id=event.id,
            customer_id=customer_id,
            summary=event.type,
        )
    emit(
        session,
        "event.recorded",
        {"event_id": event.id, "customer_id": customer_id, "type": event.type},
        customer_id=customer_id,
        origin=actor.origin,
        occurred_at=event.occurred_at,
    )
    return event, True


def delete_event(session: Session, *, actor: Actor, event_id: int, expected_version: int | None = None) -> None:
    require(actor, "events:delete")
    event = get_event(session, event_id)
    check_version(EVENT_VERSION, if_match=expected_version)
    audit.record(
        session,
        actor=actor,
        action="event.delete",
        entity_type="event",
        entity_id=event.id,
        customer_id=event.customer_id,
        details={"type": event.type, "occurred_at": str(event.occurred_at)},
    )
    session.delete(event)
