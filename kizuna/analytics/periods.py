"""Days as users mean them: ``--from 2024-01-01 --to 2024-12-31`` covers both days whole, in the configured time
zone. The analyses compare epoch seconds, so a period becomes a half-open range of UTC instants here, once."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from kizuna.config import get_settings
from kizuna.errors import ValidationError


def zone() -> ZoneInfo:
    return ZoneInfo(get_settings().default_timezone)


def today() -> dt.date:
    return dt.datetime.now(zone()).date()


def day_start(day: dt.date) -> int:
    """Epoch seconds of the first instant of ``day`` in the configured time zone."""
    return int(dt.datetime.combine(day, dt.time(), tzinfo=zone()).timestamp())


def day_end(day: dt.date) -> int:
    """Epoch seconds of the first instant after ``day`` (the end of an inclusive period)."""
    return day_start(day + dt.timedelta(days=1))


def bounds(start: dt.date | None, end: dt.date | None) -> tuple[int | None, int]:
    """``[from, to)`` in epoch seconds for an inclusive period of days; ``end`` defaults to today."""
    end = end or today()
    if start is not None and start > end:
        raise ValidationError(f"the period starts ({start}) after it ends ({end})", field="from")
    return (day_start(start) if start else None), day_end(end)
