"""The desk's queues (mine, my team's, unclaimed, all) in the order tickets should be worked: overdue first,
then unclaimed, then those whose SLA runs (a ticket waiting for the customer is never overdue and comes after),
then by the nearest deadline; and the first-response and resolution times per agent and category, the resolution
time both as elapsed and as the agents' own time (elapsed less the time the ticket waited for the customer).
"""

from __future__ import annotations

import datetime as dt
import statistics
from typing import Literal

from sqlalchemy import and_, case, or_, select
from sqlalchemy.orm import Session

from kizuna.auth.models import User
from kizuna.auth.permissions import Actor, require
from kizuna.db import utcnow
from kizuna.errors import ValidationError
from kizuna.inquiries.models import OPEN_STATUSES, Inquiry, InquiryCategory
from kizuna.inquiries.schemas import Report, ReportRow
from kizuna.inquiries.service import team_ids_of

Tab = Literal["mine", "team", "unclaimed", "all"]
TABS: tuple[str, ...] = ("mine", "team", "unclaimed", "all")


def queue(
    session: Session, *, actor: Actor, tab: str = "all", status: str | None = "open", limit: int = 100,
    now: dt.datetime | None = None,
) -> list[Inquiry]:  # fmt: skip
    """Tickets of ``tab``; ``status="open"`` means every status still to be worked (new, open, pending)."""
    require(actor, "inquiries:read")
    if tab not in TABS:
        raise ValidationError(f"unknown queue {tab!r}; one of {', '.join(TABS)}", field="tab")
    now = now or utcnow()
    query = select(Inquiry)
    if status == "open":
        query = query.where(Inquiry.status.in_(OPEN_STATUSES))
    elif status:
        query = query.where(Inquiry.status == status)
    if tab == "mine":
        query = query.where(Inquiry.claimed_by == actor.user_id)
    elif tab == "team":
        teams = sorted(team_ids_of(session, actor.user_id))
        query = query.where(Inquiry.team_id.in_(teams) if teams else Inquiry.id.is_(None))
    elif tab == "unclaimed":
        query = query.where(Inquiry.claimed_by.is_(None))
    running = Inquiry.sla_paused_at.is_(None)
    overdue = and_(
        Inquiry.status.in_(OPEN_STATUSES),
        running,
        or_(
            and_(Inquiry.first_responded_at.is_(None), Inquiry.first_response_due_at < now),
            Inquiry.resolution_due_at < now,
        ),
    )
    query = query.order_by(
        case((overdue, 0), else_=1),
        case((Inquiry.claimed_by.is_(None), 0), else_=1),
        case((running, 0), else_=1),
        case((Inquiry.first_responded_at.is_(None), Inquiry.first_response_due_at), else_=Inquiry.resolution_due_at),
        Inquiry.id,
    )
    return list(session.scalars(query.limit(limit)))


def _minutes(start: dt.datetime | None, end: dt.datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return (end - start).total_seconds() / 60


def _row(key: str, label: str, tickets: list[Inquiry]) -> ReportRow:
    first = [m for m in (_minutes(t.created_at, t.first_responded_at) for t in tickets) if m is not None]
    resolved = [t for t in tickets if t.resolved_at is not None]
    done = [m for m in (_minutes(t.created_at, t.resolved_at) for t in resolved) if m is not None]
    # The agents' own time: the elapsed time less the time the ticket waited for the customer (pending).
    agent = [max(0.0, m - (t.pending_seconds or 0) / 60) for t, m in zip(resolved, done, strict=True)]
    return ReportRow(
        key=key,
        label=label,
        tickets=len(tickets),
        responded=len(first),
        resolved=len(done),
        median_first_response_minutes=round(statistics.median(first), 1) if first else None,
        median_resolution_minutes=round(statistics.median(done), 1) if done else None,
        median_resolution_agent_minutes=round(statistics.median(agent), 1) if agent else None,
    )


def report(session: Session, *, actor: Actor, since: dt.datetime | None = None, lang: str = "en") -> Report:
    """Median first-response and resolution times of the tickets opened since ``since``, by agent (the holder)
    and by category."""
    require(actor, "inquiries:read")
    query = select(Inquiry)
    if since is not None:
        query = query.where(Inquiry.created_at >= since)
    tickets = list(session.scalars(query))
    users = {u.id: (u.name or u.email) for u in session.scalars(select(User))}
    categories = {
        c.id: (c.name_en or c.name) if lang == "en" else c.name for c in session.scalars(select(InquiryCategory))
    }
    by_agent: dict[int | None, list[Inquiry]] = {}
    by_category: dict[int | None, list[Inquiry]] = {}
    for t in tickets:
        by_agent.setdefault(t.claimed_by, []).append(t)
        by_category.setdefault(t.category_id, []).append(t)
    return Report(
        by_agent=[
            _row(str(k or ""), users.get(k, "—") if k else "—", v)
            for k, v in sorted(by_agent.items(), key=lambda kv: (kv[0] is None, kv[0] or 0))
        ],
        by_category=[
            _row(str(k or ""), categories.get(k, "—") if k else "—", v)
            for k, v in sorted(by_category.items(), key=lambda kv: (kv[0] is None, kv[0] or 0))
        ],
    )
