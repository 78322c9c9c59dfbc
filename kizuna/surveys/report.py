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

from sqlalchemy import case, func, select
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


def _grouped(session: Session, key: object, label: object, joins: Iterable[tuple[object, object]], survey_id: int):  # noqa: ANN202
    query = select(key, label, _CATEGORY.label("category"), func.count()).select_from(SurveyResponse.__table__)
    for table, on in joins:
        query = query.join(table, on)  # type: ignore[arg-type]
    query = query.where(_r.survey_id == survey_id).group_by(key, label, _CATEGORY)
    counts: dict[str, Counter[str]] = {}
    labels: dict[str, str] = {}
    for k, lab, cat, n in session.execute(query):
        name = "" if k is None else str(k)
        counts.setdefault(name, Counter())[cat] += n
        labels[name] = "" if lab is None else str(lab)
    return counts, labels


def _totals(session: Session, survey_id: int) -> Counter[str]:
    query = select(_CATEGORY, func.count()).where(_r.survey_id == survey_id).group_by(_CATEGORY)
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


def _months(session: Session, survey_id: int) -> tuple[dict[str, Counter[str]], dict[str, str]]:
    # The month of each answer is found in the database with one CASE over the months' first instants (computed
    # here in the zone, so daylight saving and half-hour offsets are right on every backend): the answers are
    # counted where they are, never read out one by one.
    first, last = session.execute(
        select(func.min(_r.answered_at), func.max(_r.answered_at)).where(_r.survey_id == survey_id)
    ).one()
    if first is None:
        return {}, {}
    starts = _month_starts(first, last)
    month = case(*[(_r.answered_at >= start, label) for label, start in reversed(starts)], else_=starts[0][0])
    counts: dict[str, Counter[str]] = {}
    query = select(month, _CATEGORY, func.count()).where(_r.survey_id == survey_id).group_by(month, _CATEGORY)
    for label, cat, n in session.execute(query):
        counts.setdefault(label, Counter())[cat] += n
    return counts, {m: m for m in counts}


def report(session: Session, survey_id: int, *, by: str = "month") -> NPSReport:
    """NPS of one survey overall and per ``by`` (month, segment, touchpoint, owner), rows in key order (months
    oldest first, segments and owners by name). A customer in two segments counts in both."""
    if by not in BREAKDOWNS:
        raise ValidationError(f"by must be one of {', '.join(BREAKDOWNS)}, not {by!r}", field="by")
    if by == "month":
        counts, labels = _months(session, survey_id)
    elif by == "touchpoint":
        counts, labels = _grouped(session, _r.touchpoint, _r.touchpoint, (), survey_id)
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
            survey_id,
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
            .where(_r.survey_id == survey_id)
            .group_by(c.owner_id, owner_label, _CATEGORY)
        )
        counts, labels = {}, {}
        for k, lab, cat, n in session.execute(query):
            name = "" if k is None else str(k)
            counts.setdefault(name, Counter())[cat] += n
            labels[name] = lab or ""
    if by == "segment":  # a customer in two segments counts in both, and in neither when in none
        overall = row("", "", _totals(session, survey_id))
    else:  # every answer is in exactly one row: the total is their sum, without reading the answers again
        overall = row("", "", sum(counts.values(), Counter()))
    order = sorted(counts) if by == "month" else sorted(counts, key=lambda k: (labels[k] == "", labels[k], k))
    return NPSReport(survey_id=survey_id, by=by, total=overall, rows=[row(k, labels[k], counts[k]) for k in order])
