"""Days as users mean them: ``--from 2024-01-01 --to 2024-12-31`` covers both days whole, in the configured time
zone. The analyses compare epoch seconds, so a period becomes a half-open range of UTC instants here, once."""

from __future__ import annotations

import datetime as dt
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


def _offset_at(instant: int, tz: ZoneInfo) -> int:
    offset = dt.datetime.fromtimestamp(instant, tz).utcoffset()
    return int(offset.total_seconds()) if offset else 0


def offset_pieces(until: int) -> list[tuple[int | None, int]]:
    """The configured zone's UTC offset as ``(from instant, seconds)`` pieces from 1970 to ``until`` (the first
    piece also covers everything earlier). A zone without daylight saving time has one piece."""
    tz = zone()
    pieces: list[tuple[int | None, int]] = [(None, _offset_at(0, tz))]
    step = 86400
    for start in range(0, until + step, step):
        if _offset_at(start + step, tz) == pieces[-1][1]:
            continue
        # The change lies within this day: find its exact second.
        lo, hi = start, start + step
        while hi - lo > 1:
            mid = (lo + hi) // 2
            lo, hi = (mid, hi) if _offset_at(mid, tz) == pieces[-1][1] else (lo, mid)
        pieces.append((hi, _offset_at(hi, tz)))
    return pieces


def local_day(at: ir.IntegerValue, until: int) -> ir.IntegerValue:
    """Days since 1970-01-01 of the local date of ``at`` (epoch seconds) in the configured zone, as an Ibis
    expression every backend computes alike (integer arithmetic, no time-zone rules of the engine's own).
    ``until`` bounds the instants the expression has to be right for."""
    pieces = offset_pieces(until)
    if len(pieces) == 1:
        offset: ir.IntegerValue = ibis.literal(pieces[0][1])
    else:
        branches = [(at < start, previous[1]) for previous, (start, _) in zip(pieces, pieces[1:], strict=False)]
        offset = ibis.cases(*branches, else_=pieces[-1][1])
    return ((at + offset) // 86400).cast("int64")


def day_number(day: dt.date) -> int:
    """``day`` as days since 1970-01-01 (the numbering of ``local_day``)."""
    return (day - dt.date(1970, 1, 1)).days
