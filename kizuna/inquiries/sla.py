"""SLA due times: per-priority targets in working minutes, counted in business hours (Monday to Friday in the
default time zone) or around the clock when no business hours are set.

The clocks stop while a ticket waits for the customer (``pending``): ``pause`` notes when, ``resume`` (the ticket
left pending: the customer answered, an agent reopened or resolved it) moves both due times forward by the business
time that passed meanwhile, so a customer who takes the weekend to answer costs the agent nothing.
"""

from __future__ import annotations

import datetime as dt
import re
from zoneinfo import ZoneInfo

from kizuna.config import get_settings
from kizuna.errors import ValidationError
from kizuna.inquiries.models import PRIORITIES, Inquiry

_HOURS = re.compile(r"^\s*([01]?\d|2[0-3]):([0-5]\d)\s*-\s*([01]?\d|2[0-4]):([0-5]\d)\s*$")


def targets(spec: str, *, setting: str) -> dict[str, int]:
    """``urgent=60,high=240`` -> {"urgent": 60, "high": 240, ...}; every priority must have one."""
    found: dict[str, int] = {}
    for part in (p for p in spec.split(",") if p.strip()):
        name, _, value = part.partition("=")
        name = name.strip()
        if name not in PRIORITIES or not value.strip().isdigit():
            raise ValidationError(f"{setting}: '{part.strip()}' is not <priority>=<minutes> ({', '.join(PRIORITIES)})")
        found[name] = int(value)
    missing = [p for p in PRIORITIES if p not in found]
    if missing:
        raise ValidationError(f"{setting}: no target for {', '.join(missing)}")
    return found


def business_hours(spec: str) -> tuple[dt.time, dt.time] | None:
    if not spec.strip():
        return None
    m = _HOURS.match(spec)
    if not m:
        raise ValidationError(f"KIZUNA_INQUIRY_BUSINESS_HOURS: '{spec}' is not HH:MM-HH:MM")
    start = dt.time(int(m.group(1)), int(m.group(2)))
    end = dt.time(23, 59, 59) if m.group(3) == "24" else dt.time(int(m.group(3)), int(m.group(4)))
    if end <= start:
        raise ValidationError(f"KIZUNA_INQUIRY_BUSINESS_HOURS: '{spec}' ends before it starts")
    return start, end


def add_working_minutes(
    start: dt.datetime, minutes: int, hours: tuple[dt.time, dt.time] | None, zone: str
) -> dt.datetime:
    """``start`` plus ``minutes`` of working time: a ticket opened on Friday evening is due on Monday."""
    return add_working_time(start, dt.timedelta(minutes=minutes), hours, zone)


def add_working_time(
    start: dt.datetime, amount: dt.timedelta, hours: tuple[dt.time, dt.time] | None, zone: str
) -> dt.datetime:
    """``start`` plus ``amount`` of working time (``add_working_minutes`` to the second)."""
    if hours is None:
        return start + amount
    tz = ZoneInfo(zone)
    at = start.astimezone(tz)
    left = amount
    for _ in range(3700):  # ten years of days: a bound, never reached with sane targets
        day_start = at.replace(hour=hours[0].hour, minute=hours[0].minute, second=0, microsecond=0)
        day_end = at.replace(hour=hours[1].hour, minute=hours[1].minute, second=hours[1].second, microsecond=0)
        if at.weekday() < 5 and at < day_end:
            at = max(at, day_start)
            if at + left <= day_end:
                return (at + left).astimezone(dt.UTC)
            left -= day_end - at
        at = (at + dt.timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return (at + left).astimezone(dt.UTC)


def due_times(priority: str, opened_at: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    """(first response due, resolution due) of a ticket of ``priority`` opened at ``opened_at``."""
    settings = get_settings()
    hours = business_hours(settings.inquiry_business_hours)
    first = targets(settings.inquiry_first_response_minutes, setting="KIZUNA_INQUIRY_FIRST_RESPONSE_MINUTES")
    resolve = targets(settings.inquiry_resolution_minutes, setting="KIZUNA_INQUIRY_RESOLUTION_MINUTES")
    zone = settings.default_timezone
    return (
        add_working_minutes(opened_at, first[priority], hours, zone),
        add_working_minutes(opened_at, resolve[priority], hours, zone),
    )


def working_time_between(
    start: dt.datetime, end: dt.datetime, hours: tuple[dt.time, dt.time] | None, zone: str
) -> dt.timedelta:
    """The working time from ``start`` to ``end`` (zero when ``end`` is not later): the inverse of
    ``add_working_time``."""
    if end <= start:
        return dt.timedelta(0)
    if hours is None:
        return end - start
    tz = ZoneInfo(zone)
    at, stop = start.astimezone(tz), end.astimezone(tz)
    total = dt.timedelta(0)
    for _ in range(3700):  # the same bound as add_working_time
        if at >= stop:
            break
        day_start = at.replace(hour=hours[0].hour, minute=hours[0].minute, second=0, microsecond=0)
        day_end = at.replace(hour=hours[1].hour, minute=hours[1].minute, second=hours[1].second, microsecond=0)
        if at.weekday() < 5 and at < day_end:
            total += max(dt.timedelta(0), min(stop, day_end) - max(at, day_start))
        at = (at + dt.timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return total


def _calendar() -> tuple[tuple[dt.time, dt.time] | None, str]:
    settings = get_settings()
    return business_hours(settings.inquiry_business_hours), settings.default_timezone


def shift(due: dt.datetime, paused: dt.timedelta) -> dt.datetime:
    """``due`` moved forward by ``paused`` business time."""
    hours, zone = _calendar()
    return add_working_time(due, paused, hours, zone) if paused else due


def clock_changes(inquiry: Inquiry, new_status: str, now: dt.datetime) -> dict[str, object]:
    """The SLA fields that change when ``inquiry`` goes to ``new_status`` at ``now`` (to be applied with the status
    change, so that they are audited with it): entering pending pauses the clocks, leaving it resumes them."""
    before = inquiry.status
    if new_status == before:
        return {}
    if new_status == "pending" and inquiry.sla_paused_at is None:
        return {"sla_paused_at": now}
    if before != "pending" or inquiry.sla_paused_at is None:
        return {}
    hours, zone = _calendar()
    paused = working_time_between(inquiry.sla_paused_at, now, hours, zone)
    changes: dict[str, object] = {
        "sla_paused_at": None,
        "sla_paused_seconds": (inquiry.sla_paused_seconds or 0) + int(paused.total_seconds()),
        "pending_seconds": (inquiry.pending_seconds or 0) + max(0, int((now - inquiry.sla_paused_at).total_seconds())),
    }
    if paused and inquiry.first_responded_at is None and inquiry.first_response_due_at is not None:
        changes["first_response_due_at"] = add_working_time(inquiry.first_response_due_at, paused, hours, zone)
    if paused and inquiry.resolution_due_at is not None:
        changes["resolution_due_at"] = add_working_time(inquiry.resolution_due_at, paused, hours, zone)
    return changes


def paused_for(inquiry: Inquiry, now: dt.datetime) -> dt.timedelta:
    """The business time the SLA has been paused so far, the running pending spell included."""
    total = dt.timedelta(seconds=inquiry.sla_paused_seconds or 0)
    if inquiry.sla_paused_at is not None:
        hours, zone = _calendar()
        total += working_time_between(inquiry.sla_paused_at, now, hours, zone)
    return total
