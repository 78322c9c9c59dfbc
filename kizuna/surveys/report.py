"""NPS: the share of promoters (9-10) minus the share of detractors (0-6), in points from -100 to 100.

A report counts each link's current answer once (a changed answer replaces the earlier one, see service.answer),
grouped by month (in the configured time zone), segment (current members), touchpoint or the customer's owner.
Counting happens in the database for every breakdown; a month is found there too, between the first instants
of the months in the configured zone (computed here).
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterable
from typing import Any

from sqlalchemy import and_, case, func, select
from sqlalchemy.orm import Session

from kizuna.analytics.periods import zone
from kizuna.auth.models import User
from kizuna.customers.models import Customer
from kizuna.errors import ValidationError
from kizuna.segments.models import Segment, SegmentMembership
from kizuna.surveys.models import SurveyResponse
from kizuna.surveys.schemas import NPSReport, NPSRow

BREAKDOWNS = ("month", "segment", "touchpoint", "owner")
_r = SurveyResponse.__table__.c


def category(score: int) -> str:
    """promoter (9-10), passive (7-8) or detractor (0-6)."""
    if not 0 <= score <= 10:
        raise ValidationError(f"score {score} is outside 0-10", field="score")
    return "promoter" if score >= 9 else "passive" if score >= 7 else "detractor"


def nps(promoters: int, passives: int, detractors: int) -> float | None:
    """% promoters - % detractors, rounded to one decimal; None when nobody answered."""
    total = promoters + passives + detractors
    if not total:
        return None
    return round(100 * (promoters - detractors) / total, 1)


def row(key: str, label: str, counts: Counter[str]) -> NPSRow:
    p, s, d = counts["promoter"], counts["passive"], counts["detractor"]
    return NPSRow(key=key, label=label, responses=p + s + d, promoters=p, passives=s, detractors=d, nps=nps(p, s, d))


_CATEGORY = case((_r.score >= 9, "promoter"), (_r.score >= 7, "passive"), else_="detractor")


def _grouped(session: Session, key: object, label: object, joins: Iterable[tuple[object, object]], where: Any):  # noqa: ANN202
    query = select(key, label, _CATEGORY.label("category"), func.count()).select_from(SurveyResponse.__table__)
    for table, on in joins:
        query = query.join(table, on)  # type: ignore[arg-type]
    query = query.where(where).group_by(key, label, _CATEGORY)
    counts: dict[str, Counter[str]] = {}
    labels: dict[str, str] = {}
    for k, lab, cat, n in session.execute(query):
        name = "" if k is None else str(k)
        counts.setdefault(name, Counter())[cat] += n
        labels[name] = "" if lab is None else str(lab)
    return counts, labels


def _totals(session: Session, where: Any) -> Counter[str]:
    query = select(_CATEGORY, func.count()).where(where).group_by(_CATEGORY)
    return Counter({cat: n for cat, n in session.execute(query)})


def _month_starts(first: dt.datetime, last: dt.datetime) -> list[tuple[str, dt.datetime]]:
    """(``YYYY-MM``, the month's first instant in the configured zone, as UTC) from ``first``'s month to
    ``last``'s."""
    tz = zone()
    local, end = first.astimezone(tz), last.astimezone(tz)
    year, month = local.year, local.month
    out = []
    while (year, month) <= (end.year, end.month):
        out.append((f"{year:04d}-{month:02d}", dt.datetime(year, month, 1, tzinfo=tz).astimezone(dt.UTC)))
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return out


def _months(session: Session, where: Any) -> tuple[dict[str, Counter[str]], dict[str, str]]:
    # The month of each answer is found in the database with one CASE over the months' first instants (computed
    # here in the zone, so daylight saving and half-hour offsets are right on every backend): the answers are
    # counted where they are, never read out one by one.
    first, last = session.execute(select(func.min(_r.answered_at), func.max(_r.answered_at)).where(where)).one()
    if first is None:
        return {}, {}
    starts = _month_starts(first, last)
    month = case(*[(_r.answered_at >= start, label) for label, start in reversed(starts)], else_=starts[0][0])
    counts: dict[str, Counter[str]] = {}
    query = select(month, _CATEGORY, func.count()).where(where).group_by(month, _CATEGORY)
    for label, cat, n in session.execute(query):
        counts.setdefault(label, Counter())[cat] += n
    return counts, {m: m for m in counts}


def period_bounds(start: dt.date | None, end: dt.date | None) -> tuple[dt.datetime | None, dt.datetime | None]:
    """The first instant of ``start`` and the first after ``end`` in the configured zone (inclusive days)."""
    if start is not None and end is not None and start > end:
        raise ValidationError(f"the period starts ({start}) after it ends ({end})", field="from")
    tz = zone()
    first = dt.datetime.combine(start, dt.time(), tzinfo=tz).astimezone(dt.UTC) if start else None
    after = dt.datetime.combine(end + dt.timedelta(days=1), dt.time(), tzinfo=tz).astimezone(dt.UTC) if end else None
    return first, after


def report(
    session: Session,
    survey_id: int,
    *,
    by: str = "month",
    start: dt.date | None = None,
    end: dt.date | None = None,
) -> NPSReport:
    """NPS of one survey overall and per ``by`` (month, segment, touchpoint, owner), rows in key order (months
    oldest first, segments and owners by name), of the answers given from ``start`` to ``end`` (days in the
    configured zone, both included; open-ended when left out). A customer in two segments counts in both."""
    if by not in BREAKDOWNS:
        raise ValidationError(f"by must be one of {', '.join(BREAKDOWNS)}, not {by!r}", field="by")
    first, after = period_bounds(start, end)
    where = and_(
        _r.survey_id == survey_id,
        *([_r.answered_at >= first] if first else []),
        *([_r.answered_at < after] if after else []),
    )
    if by == "month":
        counts, labels = _months(session, where)
    elif by == "touchpoint":
        counts, labels = _grouped(session, _r.touchpoint, _r.touchpoint, (), where)
    elif by == "segment":
        m = SegmentMembership.__table__.c
        s = Segment.__table__.c
        counts, labels = _grouped(
            session,
            s.id,
            s.name,
            [
                (SegmentMembership.__table__, (m.customer_id == _r.customer_id) & m.exited_at.is_(None)),
                (Segment.__table__, s.id == m.segment_id),
            ],
            where,
        )
    else:
        c = Customer.__table__.c
        u = User.__table__.c
        owner_label = func.coalesce(func.nullif(u.name, ""), u.email)
        query = (
            select(c.owner_id, owner_label, _CATEGORY, func.count())
            .select_from(SurveyResponse.__table__)
            .join(Customer.__table__, c.id == _r.customer_id)
            .outerjoin(User.__table__, u.id == c.owner_id)
            .where(where)
            .group_by(c.owner_id, owner_label, _CATEGORY)
        )
        counts, labels = {}, {}
        for k, lab, cat, n in session.execute(query):
            name = "" if k is None else str(k)
            counts.setdefault(name, Counter())[cat] += n
            labels[name] = lab or ""
    # A customer in two segments counts in both (and in none when in no segment), so the segment report's total is
    # a query of its own; every other breakdown puts each answer in exactly one row: its total is their sum.
    overall = row("", "", _totals(session, where) if by == "segment" else sum(counts.values(), Counter()))
    order = sorted(counts) if by == "month" else sorted(counts, key=lambda k: (labels[k] == "", labels[k], k))
    return NPSReport(survey_id=survey_id, by=by, total=overall, rows=[row(k, labels[k], counts[k]) for k in order])
