"""What a score is computed from: one row of features per deal or lead, read from what Kizuna already stores.

Deal features: the amount (log), the pipeline, the furthest open stage the deal reached (its history), the days
it was open (to its close, or to now), its activities by kind and those of its last 30 days, the customer's
lifecycle stage and source, the company's size when its ``attributes`` hold one (``employees``), the customer's
orders and spend before the deal was created (kizuna/orders/spend.py's definition of what counts), and the
owner.

A lead is a customer whose lifecycle stage is lead or prospect. Its target in training is "had a won deal":
the history is every customer with at least one closed deal, positive when one of them was won. A lead's
features are the customer's activities by kind (and of the last 30 days), source, company size, owner and age;
not its lifecycle stage or spend, which a won deal itself changes (training on them would learn the outcome).

Each query is one grouped read over the whole population, so 100,000 deals cost a handful of queries.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sqlalchemy import and_, case, func, select
from sqlalchemy.orm import Session

from kizuna.config import get_settings
from kizuna.customers.models import Company, Customer
from kizuna.db import utcnow
from kizuna.orders.models import Order
from kizuna.orders.spend import counts_as_spend
from kizuna.sales.models import ACTIVITY_KINDS, Activity, Deal, DealStageChange, Pipeline, Stage

LEAD_STAGES = ("lead", "prospect")
RECENT = dt.timedelta(days=30)

# The model's inputs. Numeric ones enter as they are (counts and amounts as log1p), categorical ones one-hot.
DEAL_NUMERIC = (
    "amount_log", "stage_reached", "days_open", *(f"act_{k}" for k in ACTIVITY_KINDS), "activities_30d",
    "company_employees_log", "prior_orders", "prior_spend_log",
)  # fmt: skip
DEAL_CATEGORICAL = ("pipeline", "lifecycle_stage", "source", "owner")
LEAD_NUMERIC = (*(f"act_{k}" for k in ACTIVITY_KINDS), "activities_30d", "company_employees_log", "days_known")
LEAD_CATEGORICAL = ("source", "owner")

# What a rule may test (the raw, untransformed values, so a rule reads "amount >= 1000000").
RULE_FEATURES: dict[str, tuple[str, ...]] = {
    "deal": (
        "stage", "amount", "days_open", *(f"act_{k}" for k in ACTIVITY_KINDS), "activities", "activities_30d",
        "company_employees", "prior_orders", "prior_spend", "lifecycle_stage", "source", "pipeline",
    ),
    "lead": (
        *(f"act_{k}" for k in ACTIVITY_KINDS), "activities", "activities_30d", "company_employees", "days_known",
        "lifecycle_stage", "source",
    ),
}  # fmt: skip
TEXT_FEATURES = frozenset({"stage", "lifecycle_stage", "source", "pipeline"})


@dataclass
class Row:
    """One deal or lead: its model features, its raw values for rules, and what the call-first list shows."""

    subject: str
    key: int
    name: str
    features: dict[str, Any]
    raw: dict[str, Any]
    value: Decimal = Decimal(0)
    currency: str = "JPY"
    owner_id: int | None = None
    customer_id: int | None = None
    label: int | None = None
    # For a "stage" rule: the position of each stage name in this deal's pipeline.
    stage_positions: dict[str, int] = field(default_factory=dict)


def _log(value: float | Decimal | None) -> float:
    return math.log1p(max(float(value or 0), 0.0))


def _employees(attributes: dict | None) -> float | None:
    """A company's size from its attributes (``employees`` or ``company_size``), when it is a number."""
    for key in ("employees", "company_size"):
        value = (attributes or {}).get(key)
        try:
            if value is not None and not isinstance(value, bool):
                return float(value)
        except (TypeError, ValueError):
            continue
    return None


def _chunks(ids: list[int], size: int = 5000) -> Iterable[list[int]]:
    for start in range(0, len(ids), size):
        yield ids[start : start + size]


def _activities(session: Session, column: Any, ids: list[int]) -> dict[int, list[tuple[str, dt.datetime]]]:
    found: dict[int, list[tuple[str, dt.datetime]]] = defaultdict(list)
    for chunk in _chunks(ids):
        query = select(column, Activity.kind, Activity.occurred_at).where(column.in_(chunk))
        for key, kind, at in session.execute(query):
            found[key].append((kind, at))
    return found


def _activity_features(items: list[tuple[str, dt.datetime]], until: dt.datetime) -> dict[str, int]:
    counts = dict.fromkeys((f"act_{k}" for k in ACTIVITY_KINDS), 0)
    recent = 0
    for kind, at in items:
        if at > until:
            continue  # logged after the deal closed: not what the team knew while it was open
        counts[f"act_{kind}"] += 1
        if at >= until - RECENT:
            recent += 1
    return {**counts, "activities": sum(counts.values()), "activities_30d": recent}


def _customers(session: Session, ids: Iterable[int]) -> dict[int, tuple[str, str | None, float | None, dt.datetime]]:
    """Per customer: lifecycle stage, source, company size and when it was created."""
    found = {}
    for chunk in _chunks(sorted(set(ids))):
        query = (
            select(Customer.id, Customer.lifecycle_stage, Customer.source, Company.attributes, Customer.created_at)
            .outerjoin(Company, Company.id == Customer.company_id)
            .where(Customer.id.in_(chunk))
        )
        for cid, stage, source, attributes, created in session.execute(query):
            found[cid] = (stage, source, _employees(attributes), created)
    return found


def deal_rows(session: Session, *, closed: bool) -> list[Row]:
    """Closed deals with their outcome (``label`` 1 for won) for training, or open deals for scoring."""
    kinds = ("won", "lost") if closed else ("open",)
    query = (
        select(
            Deal.id, Deal.name, Deal.amount, Deal.currency, Deal.pipeline_id, Pipeline.name, Deal.owner_id,
            Deal.customer_id, Deal.company_id, Deal.created_at, Deal.closed_at, Stage.kind, Stage.position,
        )
        .join(Stage, Stage.id == Deal.stage_id)
        .join(Pipeline, Pipeline.id == Deal.pipeline_id)
        .where(Stage.kind.in_(kinds))
        .order_by(Deal.id)
    )  # fmt: skip
    deals = session.execute(query).all()
    if not deals:
        return []
    ids = [d[0] for d in deals]
    now = utcnow()

    # The furthest open stage each deal reached, from its stage history (a lost deal may have been at 交渉).
    reached: dict[int, int] = {}
    open_stage = select(Stage.id, Stage.position).where(Stage.kind == "open").subquery()
    for chunk in _chunks(ids):
        history = (
            select(DealStageChange.deal_id, func.max(open_stage.c.position))
            .join(open_stage, open_stage.c.id == DealStageChange.to_stage_id)
            .where(DealStageChange.deal_id.in_(chunk))
            .group_by(DealStageChange.deal_id)
        )
        reached.update({deal_id: position for deal_id, position in session.execute(history)})
    # Open stages per pipeline: stage_reached is the position as a share of the way (0 first .. 1 last).
    open_count: dict[int, int] = defaultdict(int)
    positions: dict[int, dict[str, int]] = defaultdict(dict)
    for pipeline_id, name, name_en, position, kind in session.execute(
        select(Stage.pipeline_id, Stage.name, Stage.name_en, Stage.position, Stage.kind)
    ):
        positions[pipeline_id][name] = position
        if name_en:
            positions[pipeline_id][name_en] = position
        if kind == "open":
            open_count[pipeline_id] += 1

    activities = _activities(session, Activity.deal_id, ids)
    customers = _customers(session, (d[7] for d in deals if d[7] is not None))
    employees_of_company = {}
    company_ids = sorted({d[8] for d in deals if d[8] is not None})
    for chunk in _chunks(company_ids):
        for cid, attributes in session.execute(select(Company.id, Company.attributes).where(Company.id.in_(chunk))):
            employees_of_company[cid] = _employees(attributes)

    # Orders the customer placed before the deal was created (spend.py decides what counts): count in every
    # currency, money in the default currency only (amounts in different currencies are never added).
    default_currency = get_settings().default_currency
    prior_orders: dict[int, int] = defaultdict(int)
    prior_spend: dict[int, Decimal] = defaultdict(Decimal)
    for chunk in _chunks(ids):
        spend = (
            select(Deal.id, Order.currency, func.count(Order.id), func.sum(Order.total_amount))
            .join(Order, and_(Order.customer_id == Deal.customer_id, Order.ordered_at < Deal.created_at))
            .where(Deal.id.in_(chunk), counts_as_spend())
            .group_by(Deal.id, Order.currency)
        )
        for deal_id, currency, count, amount in session.execute(spend):
            prior_orders[deal_id] += count
            if currency == default_currency:
                prior_spend[deal_id] += amount or Decimal(0)

    rows = []
    for (
        deal_id, name, amount, currency, pipeline_id, pipeline_name, owner_id, customer_id, company_id, created,
        closed_at, kind, position,
    ) in deals:  # fmt: skip
        until = closed_at if closed and closed_at else now
        furthest = max(reached.get(deal_id, 0), position if kind == "open" else 0)
        span = max(open_count.get(pipeline_id, 1) - 1, 1)
        acts = _activity_features(activities.get(deal_id, []), until)
        stage, source, employees, _ = customers.get(customer_id, ("", None, None, None))
        if employees is None and company_id is not None:
            employees = employees_of_company.get(company_id)
        days_open = max((until - created).total_seconds() / 86400, 0.0)
        raw = {
            "stage": furthest,
            "amount": float(amount or 0),
            "days_open": round(days_open, 1),
            **acts,
            "company_employees": employees or 0,
            "prior_orders": prior_orders.get(deal_id, 0),
            "prior_spend": float(prior_spend.get(deal_id, 0)),
            "lifecycle_stage": stage or "",
            "source": source or "",
            "pipeline": pipeline_name,
        }
        features = {
            "amount_log": _log(amount),
            "stage_reached": min(furthest / span, 1.0),
            "days_open": math.log1p(days_open),
            **{f"act_{k}": math.log1p(acts[f"act_{k}"]) for k in ACTIVITY_KINDS},
            "activities_30d": math.log1p(acts["activities_30d"]),
            "company_employees_log": _log(employees),
            "prior_orders": math.log1p(prior_orders.get(deal_id, 0)),
            "prior_spend_log": _log(prior_spend.get(deal_id)),
            "pipeline": pipeline_name,
            "lifecycle_stage": stage or "",
            "source": source or "",
            "owner": str(owner_id or ""),
        }
        rows.append(
            Row(
                subject="deal",
                key=deal_id,
                name=name,
                features=features,
                raw=raw,
                value=amount or Decimal(0),
                currency=currency,
                owner_id=owner_id,
                customer_id=customer_id,
                label=(1 if kind == "won" else 0) if closed else None,
                stage_positions=positions.get(pipeline_id, {}),
            )
        )
    return rows


def lead_rows(session: Session, *, training: bool) -> list[Row]:
    """Customers with a closed deal (``label`` 1 when one was won) for training, or open leads for scoring."""
    if training:
        closed = (
            select(Deal.customer_id, func.max(case((Stage.kind == "won", 1), else_=0)).label("won"))
            .join(Stage, Stage.id == Deal.stage_id)
            .where(Stage.kind.in_(("won", "lost")), Deal.customer_id.is_not(None))
            .group_by(Deal.customer_id)
            .subquery()
        )
        query = (
            select(Customer.id, Customer.full_name, Customer.owner_id, closed.c.won)
            .join(closed, closed.c.customer_id == Customer.id)
            .where(Customer.status == "active")
        )
    else:
        query = select(Customer.id, Customer.full_name, Customer.owner_id, None).where(
            Customer.status == "active", Customer.lifecycle_stage.in_(LEAD_STAGES)
        )
    found = session.execute(query.order_by(Customer.id)).all()
    if not found:
        return []
    ids = [r[0] for r in found]
    activities = _activities(session, Activity.customer_id, ids)
    customers = _customers(session, ids)
    now = utcnow()
    rows = []
    for cid, name, owner_id, won in found:
        stage, source, employees, created = customers[cid]
        acts = _activity_features(activities.get(cid, []), now)
        days_known = max((now - created).total_seconds() / 86400, 0.0)
        raw = {
            **acts,
            "company_employees": employees or 0,
            "days_known": round(days_known, 1),
            "lifecycle_stage": stage or "",
            "source": source or "",
        }
        features = {
            **{f"act_{k}": math.log1p(acts[f"act_{k}"]) for k in ACTIVITY_KINDS},
            "activities_30d": math.log1p(acts["activities_30d"]),
            "company_employees_log": _log(employees),
            "days_known": math.log1p(days_known),
            "source": source or "",
            "owner": str(owner_id or ""),
        }
        rows.append(
            Row(
                subject="lead",
                key=cid,
                name=name or f"#{cid}",
                features=features,
                raw=raw,
                owner_id=owner_id,
                customer_id=cid,
                label=int(bool(won)) if training else None,
            )
        )
    return rows
