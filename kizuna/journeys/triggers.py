"""From outbox messages to enrollments and conversions, a batch of deliveries at a time.

Triggers: ``event.recorded`` (an event type such as ``page_view``), ``order.completed``, ``segment.entered`` and
``segment.exited`` enrol the message's customer into each live journey whose trigger names them, when the
trigger's property filters match (an event's properties and channel; an order's channel, store, currency,
status and attributes). A message whose origin is an import is history, not something the customer just did: it
enrols nobody unless the trigger says ``include_backfill``; likewise the entries of a new segment's first refresh
(``refresh: initial``) unless the trigger says ``include_initial``.

Goals: the same messages end the open enrollments of journeys whose goal names them as ``converted``, when the
goal happened within ``within_days`` of the entry; an enrollment that has already finished gets ``converted_at``
too, so that conversions are measured alike for customers who went through every step and for the holdout.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from typing import Any

from sqlalchemy import bindparam, case, literal_column, select, update
from sqlalchemy.orm import Session

from kizuna.db import UTCDateTime, utcnow
from kizuna.events.models import Event
from kizuna.journeys.definition import Comparison, Definition, EventTrigger, SegmentTrigger
from kizuna.journeys.engine import definition_of
from kizuna.journeys.enroll import Entry, enroll
from kizuna.journeys.models import OPEN_STATUSES, Journey, JourneyEnrollment, JourneyVersion
from kizuna.orders.models import Order
from kizuna.outbox.registry import Delivery

TOPICS = ("event.recorded", "order.completed", "segment.entered", "segment.exited")
BACKFILL_ORIGINS = ("import",)
_ORDER_FIELDS = ("channel", "store", "currency", "status")


def event_name(delivery: Delivery) -> str | None:
    """What a trigger or goal calls the message: the event type, or the topic (``order.completed``)."""
    if delivery.topic == "event.recorded":
        name = delivery.payload.get("type")
        return name if isinstance(name, str) else None
    if delivery.topic == "order.completed":
        return delivery.topic
    return None


def _customer(delivery: Delivery) -> int | None:
    found = delivery.customer_id if delivery.customer_id is not None else delivery.payload.get("customer_id")
    return found if isinstance(found, int) else None


def _facts(session: Session, deliveries: list[Delivery]) -> dict[int, dict[str, Any]]:
    """The properties a trigger's filter compares, per message id, read in one query per kind."""
    events = {d.payload.get("event_id"): d.message_id for d in deliveries if d.topic == "event.recorded"}
    orders = {d.payload.get("order_id"): d.message_id for d in deliveries if d.topic == "order.completed"}
    facts: dict[int, dict[str, Any]] = {}
    event_ids = [i for i in events if isinstance(i, int)]
    for event_id, channel, properties in session.execute(
        select(Event.id, Event.channel, Event.properties).where(Event.id.in_(event_ids))
    ):
        facts[events[event_id]] = {"channel": channel, **(properties or {})}
    order_ids = [i for i in orders if isinstance(i, int)]
    for row in session.execute(
        select(Order.id, Order.attributes, *(getattr(Order, f) for f in _ORDER_FIELDS)).where(Order.id.in_(order_ids))
    ):
        facts[orders[row[0]]] = {**(row[1] or {}), **dict(zip(_ORDER_FIELDS, row[2:], strict=True))}
    return facts


def _matches(wanted: dict[str, Any], facts: dict[str, Any] | None) -> bool:
    if not wanted:
        return True
    if facts is None:
        return False
    return all(
        name in facts and (value.holds(facts[name]) if isinstance(value, Comparison) else facts[name] == value)
        for name, value in wanted.items()
    )


def enter(session: Session, deliveries: list[Delivery]) -> int:
    """Enrol the customers these messages trigger into live journeys; returns how many were enrolled."""
    live = session.execute(
        select(Journey.id, Journey.trigger_type, Journey.trigger_key, Journey.live_version_id).where(
            Journey.status == "live",
            Journey.trigger_type.in_(("event", "segment_entered", "segment_exited")),
            Journey.live_version_id.is_not(None),
        )
    ).all()
    if not live:
        return 0
    by_key: dict[tuple[str, str], list[tuple[int, int]]] = defaultdict(list)
    for journey_id, trigger_type, trigger_key, version_id in live:
        by_key[(trigger_type, trigger_key or "")].append((journey_id, version_id))
    wanted: dict[tuple[int, int], list[Entry]] = defaultdict(list)
    needs_facts: list[Delivery] = []
    candidates: list[tuple[Delivery, int, int, Definition]] = []
    parsed: dict[int, Definition] = {}
    for delivery in deliveries:
        customer_id = _customer(delivery)
        if customer_id is None:
            continue
        if delivery.topic in ("segment.entered", "segment.exited"):
            kind = "segment_entered" if delivery.topic == "segment.entered" else "segment_exited"
            key = (kind, str(delivery.payload.get("segment_id")))
        else:
            name = event_name(delivery)
            if name is None:
                continue
            key = ("event", name)
        for journey_id, version_id in by_key.get(key, []):
            if version_id not in parsed:
                parsed[version_id] = definition_of(session, version_id)
            definition = parsed[version_id]
            trigger = definition.trigger
            if isinstance(trigger, EventTrigger):
                if delivery.origin in BACKFILL_ORIGINS and not trigger.include_backfill:
                    continue
                if trigger.properties:
                    needs_facts.append(delivery)
            elif (
                isinstance(trigger, SegmentTrigger)
                and delivery.payload.get("refresh") == "initial"
                and not trigger.include_initial
            ):
                continue
            candidates.append((delivery, journey_id, version_id, definition))
    facts = _facts(session, needs_facts) if needs_facts else {}
    definitions: dict[tuple[int, int], Definition] = {}
    for delivery, journey_id, version_id, definition in candidates:
        trigger = definition.trigger
        if isinstance(trigger, EventTrigger) and not _matches(trigger.properties, facts.get(delivery.message_id)):
            continue
        customer_id = _customer(delivery)
        assert customer_id is not None
        wanted[(journey_id, version_id)].append(Entry(customer_id=customer_id, entry_key=f"m:{delivery.message_id}"))
        definitions[(journey_id, version_id)] = definition
    now = utcnow()
    return sum(
        enroll(session, journey_id=j, version_id=v, definition=definitions[(j, v)], entries=entries, now=now)
        for (j, v), entries in wanted.items()
    )


def convert(session: Session, deliveries: list[Delivery]) -> None:
    """Mark the goal reached for the customers of these messages, in every journey whose goal names them."""
    names = {event_name(d) for d in deliveries} - {None}
    if not names:
        return
    journeys = list(
        session.scalars(
            select(Journey.id).where(Journey.status.in_(("live", "paused")), Journey.goal_event.in_(sorted(names)))
        )
    )
    if not journeys:
        return
    goals: dict[str, list[tuple[int, dt.timedelta]]] = defaultdict(list)
    for version_id in session.scalars(select(JourneyVersion.id).where(JourneyVersion.journey_id.in_(journeys))):
        goal = definition_of(session, version_id).goal
        if goal is not None:
            goals[goal.event].append((version_id, dt.timedelta(days=goal.within_days)))
    params = []
    now = utcnow()
    for delivery in deliveries:
        customer_id = _customer(delivery)
        name = event_name(delivery)
        if customer_id is None or name is None:
            continue
        for version_id, window in goals.get(name, []):
            at = delivery.occurred_at
            params.append({"v": version_id, "c": customer_id, "at": at, "since": at - window, "now": now})
    if not params:
        return
    e = JourneyEnrollment.__table__.c
    at, since, stamp = (bindparam(n, type_=UTCDateTime()) for n in ("at", "since", "now"))
    # Literal values: an expanding IN cannot be part of an executemany.
    still_open = e.status.in_([literal_column(f"'{s}'") for s in OPEN_STATUSES])
    # Core, not ORM: an executemany of an ORM update() would be taken for a bulk update by primary key.
    session.execute(
        update(JourneyEnrollment.__table__)
        .where(
            e.version_id == bindparam("v"),
            e.customer_id == bindparam("c"),
            e.converted_at.is_(None),
            e.entered_at <= at,
            e.entered_at >= since,
        )
        .values(
            converted_at=at,
            status=case((still_open, "converted"), else_=e.status),
            finished_at=case((still_open, stamp), else_=e.finished_at),
            next_at=case((still_open, None), else_=e.next_at),
        ),
        params,
    )
