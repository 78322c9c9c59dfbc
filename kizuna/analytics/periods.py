"""Days as users mean them: ``--from 2024-01-01 --to 2024-12-31`` covers both days whole, in the configured time
zone. The analyses compare epoch seconds, so a period becomes a half-open range of UTC instants here, once."""

from __future__ import annotations

import datetime as dt
import functools
from zoneinfo import ZoneInfo

import ibis
import ibis.expr.types as ir

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


# --- local days and months of epoch seconds, inside an Ibis expression (cohorts; CLV counts purchase days) ---
# Backends disagree on time-zone rules (SQLite has none, PostgreSQL follows its session), so the zone's UTC
# offsets are written into the expression as constants and the calendar is plain integer arithmetic, which
# every backend computes the same way.

_DAY = 86400


@functools.lru_cache(maxsize=8)
def _offsets(zone_name: str, until_year: int) -> tuple[tuple[int, int], ...]:
    """``(since, offset)`` pairs, oldest first: the zone's UTC offset in seconds from epoch second ``since`` on,
    from 1970 to the end of ``until_year``. Found by stepping a day at a time and bisecting to the second (a
    rule that changes twice within one day would be missed; no zone has one)."""
    tz = ZoneInfo(zone_name)

    def offset(t: int) -> int:
        return int(dt.datetime.fromtimestamp(t, tz).utcoffset().total_seconds())  # type: ignore[union-attr]

    end = int(dt.datetime(until_year + 1, 1, 1, tzinfo=dt.UTC).timestamp())
    found = [(0, offset(0))]
    t = 0
    while t < end:
        nxt = t + _DAY
        if offset(nxt) != found[-1][1]:
            lo, hi = t, nxt  # offset(lo) is the old one, offset(hi) the new one
            while hi - lo > 1:
                mid = (lo + hi) // 2
                lo, hi = (mid, hi) if offset(mid) == found[-1][1] else (lo, mid)
            found.append((hi, offset(hi)))
        t = nxt
    return tuple(found)


def local_day(at: ir.IntegerValue) -> ir.IntegerValue:
    """The day, in the configured time zone, of ``at`` (epoch seconds) as a day number: days since 1970-01-01
    (``day_number`` of the same date). A zone without changes since 1970 (Asia/Tokyo) is one constant."""
    at = at.cast("int64")
    offsets = _offsets(get_settings().default_timezone, today().year + 1)
    if len(offsets) == 1:
        shifted = at + offsets[0][1]
    else:
        # Newest rule first: most orders are recent, so most rows stop at the first branches.
        branches = [(at >= since, off) for since, off in reversed(offsets[1:])]
        shifted = at + ibis.cases(*branches, else_=offsets[0][1])
    return (shifted // _DAY).cast("int64")


def day_number(day: dt.date) -> int:
    """Days since 1970-01-01 (what ``local_day`` gives for instants on ``day``)."""
    return (day - dt.date(1970, 1, 1)).days


def month_of_day(day: ir.IntegerValue) -> ir.IntegerValue:
    """The month of a day number as ``year * 12 + month - 1`` (``month_number`` of the same month), for days from
    1901-03-01 to 2100-02-28, in which every fourth year is a leap year.

    Years are counted from 1 March (1968-03-01 is day -671), so the leap day ends each 4-year cycle of 1461 days
    and the months from March on have the fixed lengths that ``(5 * d + 2) // 153`` encodes (H. Hinnant's
    civil-from-days, cut down to that range). Ibis writes a reused subexpression out again wherever it is used,
    so each is used as few times as possible: the SQL stays a few lines long."""
    z = day + 671
    r = z % 1461
    year_in_cycle = (r - r // 1460) // 365  # 0..3; the leap day (r = 1460) still belongs to the 4th year
    day_of_year = r - 365 * year_in_cycle  # 0 = 1 March
    month_from_march = (5 * day_of_year + 2) // 153  # 0 = March .. 11 = February
    return ((1968 + 4 * (z // 1461) + year_in_cycle) * 12 + 2 + month_from_march).cast("int64")


def month_number(day: dt.date) -> int:
    return day.year * 12 + day.month - 1


def month_label(number: int) -> str:
    """``2024-03`` for ``month_number(date(2024, 3, d))``."""
    return f"{number // 12:04d}-{number % 12 + 1:02d}"
