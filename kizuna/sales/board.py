"""The kanban board of a pipeline: per stage a count and totals computed in SQL, and only the top cards.

A pipeline may hold 10,000 open deals; rendering them all makes a page no one can use and takes seconds. Each
column shows its first ``per_column`` cards (soonest close date, then the largest amount) and "load more"
fetches the next ones (``column_cards`` with an offset). See benchmarks/kanban.py.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal

from sqlalchemy import Integer, bindparam, func, select
from sqlalchemy.orm import Session

from kizuna.auth.models import User
from kizuna.auth.permissions import Actor, require
from kizuna.customers.models import Company, Customer
from kizuna.sales import access, pipelines
from kizuna.sales.models import Deal, Pipeline, Stage

PER_COLUMN = 20


@dataclass(frozen=True)
class Card:
    id: int
    pipeline_id: int
    stage_id: int
    name: str
    version: int
    amount: Decimal
    currency: str
    expected_close_date: dt.date | None
    customer_id: int | None
    customer_name: str | None
    company_id: int | None
    company_name: str | None
    owner_id: int | None
    owner_name: str | None
    editable: bool


@dataclass
class Column:
    stage: Stage
    count: int = 0
    totals: dict[str, Decimal] = field(default_factory=dict)
    cards: list[Card] = field(default_factory=list)

    @property
    def more(self) -> bool:
        return self.count > len(self.cards)


@dataclass
class Board:
    pipeline: Pipeline
    columns: list[Column]


_d = Deal.__table__.c
_CARDS = (
    select(
        _d.id, _d.pipeline_id, _d.stage_id, _d.name, _d.version, _d.amount, _d.currency, _d.expected_close_date,
        _d.customer_id, _d.company_id,
        _d.owner_id, Customer.__table__.c.full_name.label("customer_name"),
        Company.__table__.c.name.label("company_name"),
        func.coalesce(func.nullif(User.__table__.c.name, ""), User.__table__.c.email).label("owner_name"),
    )
    .select_from(Deal.__table__)
    .outerjoin(Customer.__table__, Customer.__table__.c.id == _d.customer_id)
    .outerjoin(Company.__table__, Company.__table__.c.id == _d.company_id)
    .outerjoin(User.__table__, User.__table__.c.id == _d.owner_id)
    .where(_d.stage_id == bindparam("stage_id"))
    # Soonest close first, deals without a date last, then the biggest; the id keeps "load more" stable.
    .order_by(_d.expected_close_date.is_(None), _d.expected_close_date, _d.amount.desc(), _d.id)
    .limit(bindparam("limit", type_=Integer))
    .offset(bindparam("offset", type_=Integer))
)  # fmt: skip
_TOTALS = (
    select(_d.stage_id, _d.currency, func.count().label("n"), func.sum(_d.amount).label("total"))
    .where(_d.pipeline_id == bindparam("pipeline_id"))
    .group_by(_d.stage_id, _d.currency)
)


def _cards(
    session: Session, stage_id: int, *, offset: int, limit: int, owners: set[int] | None, can: bool
) -> list[Card]:
    rows = session.execute(_CARDS, {"stage_id": stage_id, "limit": limit, "offset": offset})
    return [
        Card(
            **row._mapping,
            editable=can and (owners is None or row.owner_id is None or row.owner_id in owners),
        )
        for row in rows
    ]


def board(session: Session, *, actor: Actor, pipeline_id: int | None = None, per_column: int = PER_COLUMN) -> Board:
    """The pipeline's board (the default pipeline without ``pipeline_id``)."""
    require(actor, "deals:read")
    pipeline = (
        pipelines.get_pipeline(session, pipeline_id) if pipeline_id is not None else pipelines.default_pipeline(session)
    )
    columns = {stage.id: Column(stage=stage) for stage in pipelines.stages_of(session, pipeline.id)}
    for row in session.execute(_TOTALS, {"pipeline_id": pipeline.id}):
        column = columns.get(row.stage_id)
        if column is not None:
            column.count += row.n
            column.totals[row.currency] = row.total or Decimal(0)
    owners = access.scope_owner_ids(session, actor)
    can = actor.can("deals:write")
    for column in columns.values():
        if column.count:
            column.cards = _cards(session, column.stage.id, offset=0, limit=per_column, owners=owners, can=can)
    return Board(pipeline=pipeline, columns=list(columns.values()))


def column_cards(
    session: Session, *, actor: Actor, stage_id: int, offset: int, limit: int = PER_COLUMN
) -> tuple[Stage, list[Card], bool]:
    """The next cards of one column ("load more"): the stage, its cards from ``offset``, whether more remain."""
    require(actor, "deals:read")
    stage = pipelines.get_stage(session, stage_id)
    owners = access.scope_owner_ids(session, actor)
    cards = _cards(session, stage_id, offset=offset, limit=limit + 1, owners=owners, can=actor.can("deals:write"))
    return stage, cards[:limit], len(cards) > limit


def card_of(session: Session, *, actor: Actor, deal_id: int) -> Card | None:
    """One deal as a card (what the board shows after a move or a refused move)."""
    deal = session.get(Deal, deal_id)
    if deal is None:
        return None
    query = _CARDS.where(_d.id == deal_id)
    row = session.execute(query, {"stage_id": deal.stage_id, "limit": 1, "offset": 0}).first()
    if row is None:
        return None
    can = access.can_edit(session, actor, "deals:write", row.owner_id)
    return Card(**row._mapping, editable=can)
