"""Triggers that no message announces: a date (a birthday, a renewal date with an offset) and dormancy.

A scan runs every hour as a chain of outbox messages (``journeys.scan_due``; each scan writes the next one), so
it needs no timer of its own and survives restarts. Each time zone the customers live in is looked at on its
own: a date trigger ``at 09:00`` enrols a customer in Tokyo at 09:00 Tokyo time and one in Los Angeles at 09:00
there, with ``next_at`` set to that moment (a scan enrols up to an hour ahead, so nobody starts late). The entry
key names the occurrence (``date:2026-04-01``, ``dormant:2026-01-31``), so a scan that runs twice, or a worker
that catches up after a stop, enrols nobody twice.

Dormancy enrols the customers whose last counted order turned ``days`` days old within the last week (a
journey published today does not enrol every customer who stopped buying years ago; a segment trigger does that).
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from kizuna.customers.models import Customer
from kizuna.db import utcnow
from kizuna.journeys.definition import DateTrigger, DormancyTrigger
from kizuna.journeys.engine import definition_of
from kizuna.journeys.enroll import Entry, enroll
from kizuna.journeys.handlers import _zone
from kizuna.journeys.models import Journey
from kizuna.journeys.steps import parse_clock
from kizuna.orders.models import Order
from kizuna.orders.spend import counts_as_spend
from kizuna.outbox.models import OutboxDelivery, OutboxMessage
from kizuna.outbox.service import emit

TOPIC = "journeys.scan_due"
SUBSCRIBER = "journeys.scan"
EVERY = dt.timedelta(hours=1)
# A date trigger's moment is enrolled up to HORIZON ahead, and caught up to LOOKBACK late.
HORIZON = dt.timedelta(minutes=65)
LOOKBACK = dt.timedelta(days=1)
DORMANT_WINDOW = dt.timedelta(days=7)
SCANNED = ("date", "dormancy")


def ensure_scheduled(session: Session, *, exclude_delivery: int | None = None) -> None:
    """Queue the next scan (at the top of the next hour) unless one is already waiting."""
    waiting = select(OutboxDelivery.id).where(
        OutboxDelivery.subscriber == SUBSCRIBER,
        OutboxDelivery.status == "pending",
        OutboxDelivery.message_id.in_(select(OutboxMessage.id).where(OutboxMessage.topic == TOPIC)),
    )
    if exclude_delivery is not None:
        waiting = waiting.where(OutboxDelivery.id != exclude_delivery)
    if session.scalar(waiting.limit(1)) is not None:
        return
    now = utcnow()
    due = now.replace(minute=0, second=0, microsecond=0) + EVERY
    emit(session, TOPIC, {}, available_at=due)


def wanted(session: Session) -> bool:
    """Whether a live journey has a date or dormancy trigger (the hourly scan has something to do)."""
    return (
        session.scalar(select(Journey.id).where(Journey.status == "live", Journey.trigger_type.in_(SCANNED)).limit(1))
        is not None
    )


def scan(session: Session, *, now: dt.datetime | None = None) -> int:
    """Enrol whom the live date and dormancy journeys trigger now; returns how many were enrolled."""
    now = now or utcnow()
    total = 0
    live = session.execute(
        select(Journey.id, Journey.live_version_id).where(Journey.status == "live", Journey.trigger_type.in_(SCANNED))
    ).all()
    for journey_id, version_id in live:
        definition = definition_of(session, version_id)
        trigger = definition.trigger
        if isinstance(trigger, DateTrigger):
            entries = date_entries(session, trigger, now=now)
        elif isinstance(trigger, DormancyTrigger):
            entries = dormant_entries(session, trigger, now=now)
        else:
            continue
        total += enroll(
            session, journey_id=journey_id, version_id=version_id, definition=definition, entries=entries, now=now
        )
    return total


def _month_day(session: Session, column: ColumnElement) -> ColumnElement[str]:
    if session.get_bind().dialect.name == "postgresql":
        return func.to_char(column, "MM-DD")
    return func.strftime("%m-%d", column)


def _date_column(session: Session, trigger: DateTrigger) -> tuple[ColumnElement, bool]:
    """The compared value (a date, or ISO text for a custom attribute) and whether it is text."""
    if trigger.attribute == "birth_date":
        return Customer.birth_date, False
    name = trigger.attribute.removeprefix("attributes.")
    return func.substr(Customer.attributes[name].as_string(), 1, 10), True


def date_entries(session: Session, trigger: DateTrigger, *, now: dt.datetime) -> list[Entry]:
    """The customers whose date (plus the offset) falls on a local day whose ``at`` moment is near now."""
    clock = parse_clock(trigger.at)
    column, is_text = _date_column(session, trigger)
    entries: list[Entry] = []
    zones = session.scalars(select(Customer.timezone).where(Customer.status == "active").distinct())
    for zone_name in zones:
        zone = _zone(zone_name)
        for day, moment in _moments(now, clock, zone):
            target = day - dt.timedelta(days=trigger.offset_days)
            if trigger.every_year:
                month_days = [target.strftime("%m-%d")]
                if month_days[0] == "02-28" and not _leap(target.year):
                    month_days.append("02-29")  # born on 29 February: the day before 1 March in other years
                value = func.substr(column, 6, 5) if is_text else _month_day(session, column)
                condition = value.in_(month_days)
            else:
                condition = column == (target.isoformat() if is_text else target)
            ids = session.scalars(
                select(Customer.id).where(Customer.status == "active", Customer.timezone == zone_name, condition)
            )
            key = f"date:{target.isoformat()}"
            entries.extend(Entry(customer_id=i, entry_key=key, start_at=moment) for i in ids)
    return entries


def _moments(now: dt.datetime, clock: dt.time, zone: ZoneInfo) -> list[tuple[dt.date, dt.datetime]]:
    """(local day, its ``clock`` moment in UTC) for the days whose moment lies in (now - LOOKBACK, now + HORIZON]."""
    today = now.astimezone(zone).date()
    out = []
    for offset in (-1, 0, 1):
        day = today + dt.timedelta(days=offset)
        moment = dt.datetime.combine(day, clock, tzinfo=zone).astimezone(dt.UTC)
        if now - LOOKBACK < moment <= now + HORIZON:
            out.append((day, moment))
    return out


def _leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def dormant_entries(session: Session, trigger: DormancyTrigger, *, now: dt.datetime) -> list[Entry]:
    cutoff = now - dt.timedelta(days=trigger.days)
    last = func.max(Order.ordered_at)
    rows = session.execute(
        select(Order.customer_id, last)
        .where(counts_as_spend(Order))
        .group_by(Order.customer_id)
        .having(last <= cutoff, last > cutoff - DORMANT_WINDOW)
    )
    out = []
    for customer_id, last_order in rows:
        if isinstance(last_order, str):  # SQLite hands back MAX() of a timestamp as text
            last_order = dt.datetime.fromisoformat(last_order)
        out.append(Entry(customer_id=customer_id, entry_key=f"dormant:{last_order.date().isoformat()}"))
    return out
