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

A tracking batch's ``events.recorded`` message names many events (``kizuna.events.recorded``): it is read as
one occurrence per event, each with its own entry key (``e:<event id>``), so every event triggers and converts
exactly as an ``event.recorded`` message of its own would (entry key ``m:<message id>``).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import bindparam, case, literal_column, select, update
from sqlalchemy.orm import Session

from kizuna.db import UTCDateTime, utcnow
from kizuna.events import recorded
from kizuna.events.models import Event
from kizuna.journeys.definition import Comparison, Definition, EventTrigger, SegmentTrigger
from kizuna.journeys.engine import definition_of
from kizuna.journeys.enroll import Entry, enroll
from kizuna.journeys.models import OPEN_STATUSES, Journey, JourneyEnrollment, JourneyVersion
from kizuna.orders.models import Order
from kizuna.outbox.registry import Delivery

TOPICS = (recorded.TOPIC, recorded.BATCH_TOPIC, "order.completed", "segment.entered", "segment.exited")
BACKFILL_ORIGINS = ("import",)
_ORDER_FIELDS = ("channel", "store", "currency", "status")


@dataclass(frozen=True)
class Occurrence:
    """One thing that happened to a customer, as triggers and goals read it: an outbox message, or one event of
    an ``events.recorded`` message."""

    key: str  # the entry key: one per occurrence, so an occurrence seen twice enrols once
    topic: str
    payload: dict[str, Any]
    customer_id: int | None
    origin: str
    occurred_at: dt.datetime
    message_id: int
    # The event's channel and properties when already read (``events.recorded``), for property filters.
    facts: dict[str, Any] | None = field(default=None, compare=False)


def occurrences(session: Session, deliveries: list[Delivery]) -> list[Occurrence]:
    """The deliveries as occurrences; an ``events.recorded`` message becomes those of its events whose type a
    journey's trigger or goal names (no other event can enrol or convert anyone)."""
    batches = [d for d in deliveries if d.topic == recorded.BATCH_TOPIC]
    events = recorded.read(session, [d.payload for d in batches], types=event_types(session)) if batches else {}
    out: list[Occurrence] = []
    for d in deliveries:
        if d.topic != recorded.BATCH_TOPIC:
            key = f"m:{d.message_id}"
            out.append(Occurrence(key, d.topic, d.payload, d.customer_id, d.origin, d.occurred_at, d.message_id))
            continue
        for event_id in recorded.ids_of(d.payload):
            e = events.get(event_id)
            if e is None:
                continue
            out.append(
                Occurrence(
                    key=f"e:{e.id}",
                    topic=recorded.TOPIC,
                    payload={"event_id": e.id, "customer_id": e.customer_id, "type": e.type},
                    customer_id=e.customer_id,
                    origin=d.origin,
                    occurred_at=e.occurred_at,
                    message_id=d.message_id,
                    facts={"channel": e.channel, **e.properties},
                )
            )
    return out


def event_types(session: Session) -> set[str]:
    """The event types a live journey's trigger or a live or paused journey's goal names (what to read of
    ``events.recorded`` messages)."""
    names = set(
        session.scalars(
            select(Journey.trigger_key).where(
                Journey.status == "live", Journey.trigger_type == "event", Journey.live_version_id.is_not(None)
            )
        )
    )
    names |= set(
        session.scalars(
            select(Journey.goal_event).where(Journey.status.in_(("live", "paused")), Journey.goal_event.is_not(None))
        )
    )
    return {n for n in names if n}


def event_name(occurrence: Occurrence | Delivery) -> str | None:
    """What a trigger or goal calls the message: the event type, or the topic (``order.completed``)."""
    if occurrence.topic == recorded.TOPIC:
        name = occurrence.payload.get("type")
        return name if isinstance(name, str) else None
    if occurrence.topic == "order.completed":
        return occurrence.topic
    return None


def _customer(occurrence: Occurrence) -> int | None:
    found = occurrence.customer_id if occurrence.customer_id is not None else occurrence.payload.get("customer_id")
    return found if isinstance(found, int) else None


def _facts(session: Session, occurrences: list[Occurrence]) -> dict[str, dict[str, Any]]:
    """The properties a trigger's filter compares, per occurrence key, read in one query per kind."""
    facts: dict[str, dict[str, Any]] = {o.key: o.facts for o in occurrences if o.facts is not None}
    todo = [o for o in occurrences if o.facts is None]
    events = {o.payload.get("event_id"): o.key for o in todo if o.topic == recorded.TOPIC}
    orders = {o.payload.get("order_id"): o.key for o in todo if o.topic == "order.completed"}
    event_ids = [i for i in events if isinstance(i, int)]
    if event_ids:
        for event_id, channel, properties in session.execute(
            select(Event.id, Event.channel, Event.properties).where(Event.id.in_(event_ids))
        ):
            facts[events[event_id]] = {"channel": channel, **(properties or {})}
    order_ids = [i for i in orders if isinstance(i, int)]
    if order_ids:
        for row in session.execute(
            select(Order.id, Order.attributes, *(getattr(Order, f) for f in _ORDER_FIELDS)).where(
                Order.id.in_(order_ids)
            )
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


def enter(session: Session, occurrences: list[Occurrence]) -> int:
    """Enrol the customers these occurrences trigger into live journeys; returns how many were enrolled."""
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
    needs_facts: list[Occurrence] = []
    candidates: list[tuple[Occurrence, int, int, Definition]] = []
    parsed: dict[int, Definition] = {}
    for occurrence in occurrences:
        customer_id = _customer(occurrence)
        if customer_id is None:
            continue
        if occurrence.topic in ("segment.entered", "segment.exited"):
            kind = "segment_entered" if occurrence.topic == "segment.entered" else "segment_exited"
            key = (kind, str(occurrence.payload.get("segment_id")))
        else:
            name = event_name(occurrence)
            if name is None:
                continue
            key = ("event", name)
        for journey_id, version_id in by_key.get(key, []):
            if version_id not in parsed:
                parsed[version_id] = definition_of(session, version_id)
            definition = parsed[version_id]
            trigger = definition.trigger
            if isinstance(trigger, EventTrigger):
                if occurrence.origin in BACKFILL_ORIGINS and not trigger.include_backfill:
                    continue
                if trigger.properties:
                    needs_facts.append(occurrence)
            elif (
                isinstance(trigger, SegmentTrigger)
                and occurrence.payload.get("refresh") == "initial"
                and not trigger.include_initial
            ):
                continue
            candidates.append((occurrence, journey_id, version_id, definition))
    facts = _facts(session, needs_facts) if needs_facts else {}
    definitions: dict[tuple[int, int], Definition] = {}
    for occurrence, journey_id, version_id, definition in candidates:
        trigger = definition.trigger
        if isinstance(trigger, EventTrigger) and not _matches(trigger.properties, facts.get(occurrence.key)):
            continue
        customer_id = _customer(occurrence)
        assert customer_id is not None
        wanted[(journey_id, version_id)].append(Entry(customer_id=customer_id, entry_key=occurrence.key))
        definitions[(journey_id, version_id)] = definition
    now = utcnow()
    return sum(
        enroll(session, journey_id=j, version_id=v, definition=definitions[(j, v)], entries=entries, now=now)
        for (j, v), entries in wanted.items()
    )


def convert(session: Session, occurrences: list[Occurrence]) -> None:
    """Mark the goal reached for the customers of these occurrences, in every journey whose goal names them."""
    names = {event_name(d) for d in occurrences} - {None}
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
    for occurrence in occurrences:
        customer_id = _customer(occurrence)
        name = event_name(occurrence)
        if customer_id is None or name is None:
            continue
        for version_id, window in goals.get(name, []):
            at = occurrence.occurred_at
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


def trigger_events(session: Session, enrollment_ids: list[int]) -> dict[int, dict[str, Any]]:
    """The event that enrolled each of these enrollments (``{type, properties, channel, occurred_at}``), for the
    enrollments an ``event.recorded`` message started (entry key ``m:<outbox id>``); others are left out. Steps
    put it into what they write (an ``open_inquiry`` step's subject and body)."""
    from kizuna.outbox.models import OutboxMessage

    if not enrollment_ids:
        return {}
    keys = dict(
        session.execute(
            select(JourneyEnrollment.id, JourneyEnrollment.entry_key).where(JourneyEnrollment.id.in_(enrollment_ids))
        ).all()
    )
    by_message = {int(k[2:]): e for e, k in keys.items() if k.startswith("m:") and k[2:].isdigit()}
    if not by_message:
        return {}
    by_event: dict[int, list[int]] = defaultdict(list)
    for message_id, topic, payload in session.execute(
        select(OutboxMessage.id, OutboxMessage.topic, OutboxMessage.payload).where(
            OutboxMessage.id.in_(sorted(by_message))
        )
    ):
        event_id = (payload or {}).get("event_id")
        if topic == "event.recorded" and isinstance(event_id, int):
            by_event[event_id].append(by_message[message_id])
    out: dict[int, dict[str, Any]] = {}
    for event in session.scalars(select(Event).where(Event.id.in_(sorted(by_event)))):
        values = {
            "type": event.type,
            "properties": dict(event.properties or {}),
            "channel": event.channel,
            "occurred_at": event.occurred_at,
        }
        for enrollment_id in by_event[event.id]:
            out[enrollment_id] = values
    return out
