"""One timeline per customer: a single query over every kind of touchpoint, newest first.

Each kind is a ``TimelineSource``; a new kind (deal, ticket, survey answer) adds one entry to ``SOURCES``.
The union query returns only (kind, id, time); each source then loads and renders its own rows.

This is the hot path of Customer 360 (see benchmarks/customer360.py), so the statements are built once per
shape and take their values as bound parameters, and rows are read with Core (no ORM objects).
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from types import SimpleNamespace
from typing import Any

from sqlalchemy import ColumnElement, Integer, Select, and_, bindparam, func, literal, or_, select, union_all
from sqlalchemy.orm import Session

from kizuna.chat.models import Chat
from kizuna.customers.models import Consent, CustomerMerge, Note
from kizuna.customers.schemas import TimelineItem
from kizuna.errors import ValidationError
from kizuna.events.models import Event
from kizuna.inquiries.models import InquiryEvent
from kizuna.messaging.models import Message
from kizuna.orders.models import Order, OrderLine
from kizuna.sales.models import Activity, Task
from kizuna.surveys.models import Survey, SurveyResponse


@dataclass(frozen=True)
class TimelineSource:
    """One kind of timeline entry. The UI shows it with ``icon``, the label ``kind.<kind>`` of each locale and
    the partial ``web/templates/customers/timeline/<kind>.html`` (tests/web/test_timeline_kinds.py checks all).
    """

    kind: str
    model: Any
    time: Any
    customer: Any
    render: Callable[[Any], TimelineItem]
    icon: str
    # The columns ``render`` reads (each is converted to Python on every read, and some are large: a merge's
    # snapshot, an order's attributes); a render that reads another fails the timeline tests at once.
    columns: tuple[str, ...] = ()
    # Loads the rows ``render`` is given, by id; the default reads ``columns`` of the model's table.
    load: Callable[[Session, list[int]], Iterable[Any]] | None = None


def _load_table(model: Any, columns: Sequence[str]) -> Callable[[Session, list[int]], Iterable[Any]]:
    table = model.__table__
    query = select(*[table.c[name] for name in ("id", *columns)]).where(
        table.c.id.in_(bindparam("ids", expanding=True))
    )

    def load(session: Session, ids: list[int]) -> Iterable[Any]:
        return session.execute(query, {"ids": ids})

    return load


_lines = OrderLine.__table__.c
_ORDER_LINES = (
    select(_lines.order_id, _lines.sku, _lines.quantity, _lines.amount)
    .where(_lines.order_id.in_(bindparam("ids", expanding=True)))
    .order_by(_lines.order_id, _lines.line_no)
)


_ORDER_COLUMNS = ("ordered_at", "channel", "currency", "total_amount", "external_id", "status")
_load_order_rows = _load_table(Order, _ORDER_COLUMNS)


def _load_orders(session: Session, ids: list[int]) -> Iterable[Any]:
    """Orders with their lines (in line order), as two queries."""
    lines: dict[int, list[Any]] = {}
    for line in session.execute(_ORDER_LINES, {"ids": ids}):
        lines.setdefault(line.order_id, []).append(line)
    return [SimpleNamespace(**row._mapping, lines=lines.get(row.id, [])) for row in _load_order_rows(session, ids)]


def _event(e: Event) -> TimelineItem:
    return TimelineItem(
        kind="event",
        id=e.id,
        occurred_at=e.occurred_at,
        title=e.type,
        channel=e.channel,
        data={"properties": e.properties or {}, "source": e.source},
    )


def _order(o: Order) -> TimelineItem:
    return TimelineItem(
        kind="order",
        id=o.id,
        occurred_at=o.ordered_at,
        channel=o.channel,
        title=f"{o.currency} {o.total_amount:,.0f}" if o.currency == "JPY" else f"{o.currency} {o.total_amount:,.2f}",
        data={
            "external_id": o.external_id,
            "status": o.status,
            "total_amount": str(o.total_amount),
            "currency": o.currency,
            "lines": [{"sku": line.sku, "quantity": line.quantity, "amount": str(line.amount)} for line in o.lines],
        },
    )


def _note(n: Note) -> TimelineItem:
    return TimelineItem(
        kind="note", id=n.id, occurred_at=n.created_at, title=n.body[:200], data={"author_user_id": n.author_user_id}
    )


def _consent(c: Consent) -> TimelineItem:
    return TimelineItem(
        kind="consent",
        id=c.id,
        occurred_at=c.recorded_at,
        channel=c.channel,
        title=f"{c.channel} {c.purpose} {c.status}",
        data={"status": c.status, "purpose": c.purpose, "method": c.method, "evidence": c.evidence},
    )


def _message(m: Message) -> TimelineItem:
    return TimelineItem(
        kind="message",
        id=m.id,
        occurred_at=m.created_at,
        channel=m.channel,
        title=f"{m.channel} {m.kind} {m.status}",
        data={
            "kind": m.kind,
            "status": m.status,
            "reason": m.reason,
            "source": m.source,
            "source_id": m.source_id,
            "source_step": m.source_step,
            "sent_at": m.sent_at.isoformat() if m.sent_at else None,
            "opened_at": m.opened_at.isoformat() if m.opened_at else None,
            "clicked_at": m.clicked_at.isoformat() if m.clicked_at else None,
            "unsubscribed_at": m.unsubscribed_at.isoformat() if m.unsubscribed_at else None,
            "bounced_at": m.bounced_at.isoformat() if m.bounced_at else None,
        },
    )


def _merge(m: CustomerMerge) -> TimelineItem:
    return TimelineItem(
        kind="merge",
        id=m.id,
        occurred_at=m.merged_at,
        title=f"merged customer {m.merged_id}",
        data={"merged_id": m.merged_id, "reason": m.reason, "actor": m.actor},
    )


def _activity(a: Activity) -> TimelineItem:
    return TimelineItem(
        kind="activity",
        id=a.id,
        occurred_at=a.occurred_at,
        title=a.subject,
        data={
            "kind": a.kind,
            "notes": a.notes[:500],
            "duration_minutes": a.duration_minutes,
            "deal_id": a.deal_id,
            "user_id": a.user_id,
        },
    )


def _task(t: Task) -> TimelineItem:
    return TimelineItem(
        kind="task",
        id=t.id,
        occurred_at=t.created_at,
        title=t.title,
        data={
            "status": t.status,
            "due_at": t.due_at.isoformat() if t.due_at else None,
            "owner_id": t.owner_id,
            "deal_id": t.deal_id,
        },
    )


def _inquiry(e: InquiryEvent) -> TimelineItem:
    return TimelineItem(
        kind="inquiry",
        id=e.id,
        occurred_at=e.occurred_at,
        title=e.subject,
        data={"event": e.kind, "inquiry_id": e.inquiry_id, "actor_user_id": e.actor_user_id},
    )


_responses = SurveyResponse.__table__.c
_RESPONSE_ROWS = (
    select(
        _responses.id, _responses.updated_at, _responses.score, _responses.comment, _responses.touchpoint,
        _responses.survey_id, _responses.answers, Survey.__table__.c.name.label("survey"),
    )
    .join(Survey.__table__, Survey.__table__.c.id == _responses.survey_id)
    .where(_responses.id.in_(bindparam("ids", expanding=True)))
)  # fmt: skip


def _load_responses(session: Session, ids: list[int]) -> Iterable[Any]:
    return session.execute(_RESPONSE_ROWS, {"ids": ids})


def _survey_response(r: Any) -> TimelineItem:
    category = "promoter" if r.score >= 9 else "passive" if r.score >= 7 else "detractor"
    return TimelineItem(
        kind="survey_response",
        id=r.id,
        occurred_at=r.updated_at,
        title=f"NPS {r.score} ({r.survey})",
        data={
            "score": r.score,
            "category": category,
            "comment": r.comment[:1000],
            "survey_id": r.survey_id,
            "survey": r.survey,
            "touchpoint": r.touchpoint,
            "answers": r.answers,
        },
    )


def _chat(c: Chat) -> TimelineItem:
    return TimelineItem(
        kind="chat",
        id=c.id,
        occurred_at=c.created_at,
        title=c.status,
        data={
            "status": c.status,
            "handover_reason": c.handover_reason,
            "last_message_at": c.last_message_at.isoformat(),
        },
    )


SOURCES: Sequence[TimelineSource] = (
    TimelineSource(
        "activity", Activity, Activity.occurred_at, Activity.customer_id, _activity, icon="☎",
        columns=("occurred_at", "kind", "subject", "notes", "duration_minutes", "deal_id", "user_id"),
    ),
    TimelineSource(
        "consent", Consent, Consent.recorded_at, Consent.customer_id, _consent, icon="✓",
        columns=("recorded_at", "channel", "purpose", "status", "method", "evidence"),
    ),
    TimelineSource(
        "event", Event, Event.occurred_at, Event.customer_id, _event, icon="◆",
        columns=("type", "channel", "occurred_at", "properties", "source"),
    ),
    TimelineSource(
        "merge", CustomerMerge, CustomerMerge.merged_at, CustomerMerge.survivor_id, _merge, icon="⇄",
        columns=("merged_at", "merged_id", "reason", "actor"),
    ),
    TimelineSource(
        "message", Message, Message.created_at, Message.customer_id, _message, icon="✉",
        columns=("created_at", "channel", "kind", "status", "reason", "source", "source_id", "source_step", "sent_at",
                 "opened_at", "clicked_at", "unsubscribed_at", "bounced_at"),
    ),
    TimelineSource(
        "note", Note, Note.created_at, Note.customer_id, _note, icon="✎",
        columns=("created_at", "body", "author_user_id"),
    ),
    TimelineSource(
        "task", Task, Task.created_at, Task.customer_id, _task, icon="☐",
        columns=("created_at", "title", "status", "due_at", "owner_id", "deal_id"),
    ),
    TimelineSource(
        "inquiry", InquiryEvent, InquiryEvent.occurred_at, InquiryEvent.customer_id, _inquiry, icon="?",
        columns=("occurred_at", "kind", "subject", "inquiry_id", "actor_user_id"),
    ),
    TimelineSource(
        "survey_response", SurveyResponse, SurveyResponse.updated_at, SurveyResponse.customer_id, _survey_response,
        icon="☆", columns=("updated_at", "score", "comment", "touchpoint", "survey_id", "answers"),
        load=_load_responses,
    ),
    TimelineSource(
        "order", Order, Order.ordered_at, Order.customer_id, _order, icon="¥", columns=_ORDER_COLUMNS,
        load=_load_orders,
    ),
    TimelineSource(
        "chat", Chat, Chat.created_at, Chat.customer_id, _chat, icon="💬",
        columns=("created_at", "status", "handover_reason", "last_message_at"),
    ),
)  # fmt: skip
KINDS = tuple(s.kind for s in SOURCES)


def _after(source: TimelineSource, cursor_kind: str | None) -> ColumnElement[bool] | None:
    # Order is (time desc, kind asc, id desc); the kind is constant within a branch, so the
    # keyset condition reduces to a comparison on time and, for the cursor's own kind, on id.
    if cursor_kind is None:
        return None
    at = bindparam("at", type_=source.time.type)
    if source.kind > cursor_kind:
        return source.time <= at
    if source.kind < cursor_kind:
        return source.time < at
    return or_(source.time < at, and_(source.time == at, source.model.id < bindparam("last_id")))


def _core(source: TimelineSource) -> TimelineSource:
    """The source with plain table columns, so its statements skip the ORM's compile and load steps."""
    table = source.model.__table__
    return replace(
        source,
        model=SimpleNamespace(id=table.c.id),
        time=table.c[source.time.key],
        customer=table.c[source.customer.key],
    )


@lru_cache(maxsize=256)
def _page_query(kinds: tuple[str, ...], cursor_kind: str | None) -> Select[Any] | None:
    """The union over the chosen kinds, built once per shape; values come as bound parameters."""
    branches = []
    for source in map(_core, SOURCES):
        if source.kind not in kinds:
            continue
        query = select(literal(source.kind).label("kind"), source.model.id.label("id"), source.time.label("at"))
        query = query.where(source.customer == bindparam("customer_id"))
        condition = _after(source, cursor_kind)
        if condition is not None:
            query = query.where(condition)
        # Each branch is limited on its own index before the union sorts the few rows left.
        branches.append(
            query.order_by(source.time.desc(), source.model.id.desc()).limit(bindparam("rows", type_=Integer))
        )
    if not branches:
        return None
    union = union_all(*[select(b.c.kind, b.c.id, b.c.at) for b in (q.subquery() for q in branches)]).subquery()
    # The time orders the page but is not returned: converting it to Python for every row bought nothing.
    return (
        select(union.c.kind, union.c.id)
        .order_by(union.c.at.desc(), union.c.kind.asc(), union.c.id.desc())
        .limit(bindparam("rows", type_=Integer))
    )


_LOADERS = {source.kind: source.load or _load_table(source.model, source.columns) for source in SOURCES}


def timeline(
    session: Session,
    customer_id: int,
    *,
    limit: int = 50,
    cursor: str | None = None,
    kinds: Sequence[str] | None = None,
) -> tuple[list[TimelineItem], str | None]:
    """The newest ``limit`` touchpoints of a customer and the cursor for the next page."""
    unknown = set(kinds or ()) - set(KINDS)
    if unknown:
        raise ValidationError(f"unknown timeline kind(s) {sorted(unknown)}; allowed: {', '.join(KINDS)}", field="kinds")
    position = _decode(cursor) if cursor else None
    chosen = tuple(k for k in KINDS if not kinds or k in kinds)
    query = _page_query(chosen, position[1] if position else None)
    if query is None:
        return [], None
    params: dict[str, Any] = {"customer_id": customer_id, "rows": limit + 1}
    if position:
        params.update(at=position[0], last_id=position[2])
    rows = session.execute(query, params).all()
    page, more = rows[:limit], len(rows) > limit
    by_kind: dict[str, list[int]] = {}
    for kind, row_id in page:
        by_kind.setdefault(kind, []).append(row_id)
    rendered: dict[tuple[str, int], TimelineItem] = {}
    for source in SOURCES:
        ids = by_kind.get(source.kind)
        if ids:
            for obj in _LOADERS[source.kind](session, ids):
                rendered[(source.kind, obj.id)] = source.render(obj)
    items = [rendered[(kind, row_id)] for kind, row_id in page]
    next_cursor = _encode(items[-1]) if more and items else None
    return items, next_cursor


def _encode(item: TimelineItem) -> str:
    raw = json.dumps([item.occurred_at.isoformat(), item.kind, item.id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode(cursor: str) -> tuple[dt.datetime, str, int]:
    try:
        at, kind, last_id = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        moment = dt.datetime.fromisoformat(at)
        if moment.tzinfo is None:
            raise ValueError("naive time in cursor")
        # A crafted cursor may hold a time with no UTC equivalent or an id no database column can hold.
        if type(last_id) is not int or not -(2**63) <= last_id < 2**63:
            raise ValueError("bad id in cursor")
        return moment.astimezone(dt.UTC), str(kind), last_id
    except (ValueError, TypeError, OverflowError) as exc:
        raise ValidationError("malformed timeline cursor", field="cursor") from exc


# --- many customers at once: a company's contacts ---------------------------------------------------------

# What a person did (or was sold): consents and merges are bookkeeping about them, not activity.
ACTIVITY_KINDS = ("event", "order", "note")


def latest_of_many(
    session: Session, customers: Select[Any], *, limit: int = 20, kinds: Sequence[str] = ACTIVITY_KINDS
) -> list[tuple[int, TimelineItem]]:
    """The newest ``limit`` touchpoints of every customer ``customers`` (a select of ids) names, merged, newest first,
    each with its customer's id: one union query (each branch limited on its own) plus one load per kind."""
    branches = []
    for source in map(_core, SOURCES):
        if source.kind not in kinds:
            continue
        branches.append(
            select(
                literal(source.kind).label("kind"),
                source.model.id.label("id"),
                source.time.label("at"),
                source.customer.label("customer_id"),
            )
            .where(source.customer.in_(customers))
            .order_by(source.time.desc(), source.model.id.desc())
            .limit(limit)
        )
    if not branches:
        return []
    union = union_all(
        *[select(b.c.kind, b.c.id, b.c.at, b.c.customer_id) for b in (q.subquery() for q in branches)]
    ).subquery()
    rows = session.execute(
        select(union.c.kind, union.c.id, union.c.customer_id)
        .order_by(union.c.at.desc(), union.c.kind.asc(), union.c.id.desc())
        .limit(limit)
    ).all()
    by_kind: dict[str, list[int]] = {}
    for kind, row_id, _ in rows:
        by_kind.setdefault(kind, []).append(row_id)
    rendered: dict[tuple[str, int], TimelineItem] = {}
    for source in SOURCES:
        if by_kind.get(source.kind):
            for obj in _LOADERS[source.kind](session, by_kind[source.kind]):
                rendered[(source.kind, obj.id)] = source.render(obj)
    return [(customer_id, rendered[(kind, row_id)]) for kind, row_id, customer_id in rows]


def last_activity_at(
    session: Session, customer_ids: Sequence[int], *, kinds: Sequence[str] = ACTIVITY_KINDS
) -> dict[int, dt.datetime]:
    """Customer id -> the time of their newest touchpoint of ``kinds``, for a page of customers (one grouped
    query per kind, whatever the number of customers)."""
    if not customer_ids:
        return {}
    branches = [
        select(source.customer.label("customer_id"), func.max(source.time).label("at"))
        .where(source.customer.in_(list(customer_ids)))
        .group_by(source.customer)
        for source in map(_core, SOURCES)
        if source.kind in kinds
    ]
    out: dict[int, dt.datetime] = {}
    # Each branch's max keeps its column type (and so its time-zone-aware conversion on SQLite).
    for query in branches:
        for customer_id, at in session.execute(query):
            if at is not None and (customer_id not in out or at > out[customer_id]):
                out[customer_id] = at
    return out
