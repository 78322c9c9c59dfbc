"""SLA due times: per-priority targets in working minutes, counted in business hours (Monday to Friday in the
default time zone) or around the clock when no business hours are set."""

from __future__ import annotations

import datetime as dt
import re
from zoneinfo import ZoneInfo

from kizuna.config import get_settings
from kizuna.errors import ValidationError
from kizuna.inquiries.models import PRIORITIES

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
    if hours is None:
        return start + dt.timedelta(minutes=minutes)
    tz = ZoneInfo(zone)
    at = start.astimezone(tz)
    left = dt.timedelta(minutes=minutes)
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
