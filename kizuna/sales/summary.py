"""What other pages show of sales: a customer's or company's deals, activities and open tasks, a deal's page,
and a user's tasks and deals for their home page. One function per page, so views import no sales models."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from kizuna.auth.models import User
from kizuna.auth.permissions import Actor, require
from kizuna.customers.models import Company, Customer
from kizuna.sales import access, activities, deals, reminders
from kizuna.sales.models import Activity, Deal, DealStageChange, Pipeline, Stage, Task

SHOWN = 20


@dataclass(frozen=True)
class DealLine:
    id: int
    name: str
    stage_name: str
    stage_name_en: str | None
    stage_kind: str
    amount: Decimal
    currency: str
    expected_close_date: dt.date | None
    owner_name: str | None
    customer_id: int | None
    customer_name: str | None
    company_id: int | None
    company_name: str | None
    attributes: dict | None = None


@dataclass
class Related:
    """The sales panel of a customer or company page."""

    deals: list[DealLine] = field(default_factory=list)
    activities: list[Activity] = field(default_factory=list)
    tasks: list[Task] = field(default_factory=list)


def _owner_name() -> object:
    return func.coalesce(func.nullif(User.name, ""), User.email)


# Open deals first, then by close date (deals without one last).
_SOONEST = (Stage.kind != "open", Deal.expected_close_date.is_(None), Deal.expected_close_date, Deal.id)


def deal_lines(session: Session, *conditions: object, limit: int = SHOWN, order: tuple = ()) -> list[DealLine]:
    query = (
        select(
            Deal.id, Deal.name, Stage.name.label("stage_name"), Stage.name_en.label("stage_name_en"),
            Stage.kind.label("stage_kind"), Deal.amount, Deal.currency, Deal.expected_close_date,
            _owner_name().label("owner_name"), Deal.customer_id, Customer.full_name.label("customer_name"),
            Deal.company_id, Company.name.label("company_name"), Deal.attributes,
        )
        .join(Stage, Stage.id == Deal.stage_id)
        .outerjoin(User, User.id == Deal.owner_id)
        .outerjoin(Customer, Customer.id == Deal.customer_id)
        .outerjoin(Company, Company.id == Deal.company_id)
        .where(*conditions)
        .order_by(*(order or _SOONEST))
        .limit(limit)
    )  # fmt: skip
    return [DealLine(**row._mapping) for row in session.execute(query)]


def related(session: Session, *, customer_id: int | None = None, company_id: int | None = None) -> Related:
    """The deals, newest activities and open tasks of a customer or a company."""
    if customer_id is not None:
        deal_where, activity_where, task_where = (
            Deal.customer_id == customer_id, Activity.customer_id == customer_id, Task.customer_id == customer_id,
        )  # fmt: skip
    else:
        deal_where, activity_where, task_where = (
            Deal.company_id == company_id, Activity.company_id == company_id, Task.company_id == company_id,
        )  # fmt: skip
    return Related(
        deals=deal_lines(session, deal_where),
        activities=list(
            session.scalars(select(Activity).where(activity_where).order_by(Activity.occurred_at.desc()).limit(5))
        ),
        tasks=list(
            session.scalars(
                select(Task)
                .where(task_where, Task.status == "open")
                .order_by(Task.due_at.is_(None), Task.due_at)
                .limit(10)
            )
        ),
    )


def deal_list(
    session: Session, *, actor: Actor, params: dict, sort: str | None, cursor: str | None, limit: int = 50
) -> tuple[list[DealLine], str | None]:
    """A page of the deal list (DEAL_FILTERS parameters, ``editable`` included) and the next page's cursor."""
    from kizuna.listing import list_page
    from kizuna.sales.filters import DEAL_FILTERS, scoped

    require(actor, "deals:read")
    query, params = scoped(session, actor, select(Deal), params)
    rows, next_cursor = list_page(session, DEAL_FILTERS, query, params, sort=sort, cursor=cursor, limit=limit)
    ids = [row.id for row in rows]
    lines = {line.id: line for line in deal_lines(session, Deal.id.in_(ids), limit=len(ids))} if ids else {}
    return [lines[i] for i in ids if i in lines], next_cursor


@dataclass
class DealPage:
    deal: Deal
    pipeline: Pipeline
    stage: Stage
    stages: list[Stage]
    line: DealLine
    history: list[tuple[DealStageChange, str, str]]
    activities: list[Activity]
    tasks: list[Task]
    editable: bool


def deal_page(session: Session, *, actor: Actor, deal_id: int) -> DealPage:
    require(actor, "deals:read")
    deal = deals.get_deal(session, deal_id)
    stages = list(session.scalars(select(Stage).where(Stage.pipeline_id == deal.pipeline_id).order_by(Stage.position)))
    names = {s.id: s for s in stages}
    history = []
    for change in deals.history(session, deal.id):
        history.append((change, names.get(change.from_stage_id), names.get(change.to_stage_id)))
    return DealPage(
        deal=deal,
        pipeline=session.get(Pipeline, deal.pipeline_id),
        stage=names[deal.stage_id],
        stages=stages,
        line=deal_lines(session, Deal.id == deal.id)[0],
        history=history,
        activities=list(
            session.scalars(select(Activity).where(Activity.deal_id == deal.id).order_by(Activity.occurred_at.desc()))
        ),
        tasks=list(session.scalars(select(Task).where(Task.deal_id == deal.id).order_by(Task.status, Task.due_at))),
        editable=access.can_edit(session, actor, "deals:write", deal.owner_id),
    )


@dataclass
class Home:
    tasks: activities.MyTasks
    deals: list[DealLine]
    reminders: list[Task] = field(default_factory=list)


def home(session: Session, *, actor: Actor, zone: str) -> Home:
    """The user's tasks due today and overdue, their open deals closing soonest, and the reminders sent them."""
    mine = activities.my_tasks(session, user_id=actor.user_id, zone=zone)
    open_deals = (
        deal_lines(session, Deal.owner_id == actor.user_id, Stage.kind == "open", limit=10)
        if actor.user_id is not None
        else []
    )
    return Home(tasks=mine, deals=open_deals, reminders=reminders.reminders(session, user_id=actor.user_id))
