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

Each part is one grouped query over the whole population (joined, not an id list), with the counting and the day
arithmetic done by the database: 100,000 deals cost a handful of queries and no per-activity rows in Python.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sqlalchemy import and_, case, func, literal, select
from sqlalchemy.orm import Session

from kizuna.config import get_settings
from kizuna.customers.models import Company, Customer
from kizuna.db import UTCDateTime, utcnow
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


def _days(session: Session, column: Any) -> Any:
    """A timestamp as a number of days, so the database subtracts two of them (the same on both backends)."""
    if session.get_bind().dialect.name == "sqlite":
        return func.julianday(column)
    return func.extract("epoch", column) / 86400.0


def _company_sizes(session: Session) -> dict[int, float | None]:
    return {cid: _employees(attributes) for cid, attributes in session.execute(select(Company.id, Company.attributes))}


def _activity_counts(session: Session, key: Any, population: Any) -> dict[int, dict[str, int]]:
    """Per record of ``population`` (columns ``id`` and ``until``): its activities by kind up to ``until`` (what
    the team knew while a deal was open), and those of the 30 days before it."""
    recent = _days(session, population.c.until) - _days(session, Activity.occurred_at) <= RECENT.days
    query = (
        select(key, Activity.kind, func.count(), func.sum(case((recent, 1), else_=0)))
        .join(population, population.c.id == key)
        .where(Activity.occurred_at <= population.c.until)
        .group_by(key, Activity.kind)
    )
    found: dict[int, dict[str, int]] = {}
    for record_id, kind, count, in_30d in session.execute(query):
        counts = found.setdefault(record_id, {"activities_30d": 0})
        counts[f"act_{kind}"] = count
        counts["activities_30d"] += int(in_30d or 0)
    return found


def _activity_features(counts: dict[str, int] | None) -> dict[str, int]:
    acts = {f"act_{k}": (counts or {}).get(f"act_{k}", 0) for k in ACTIVITY_KINDS}
    return {**acts, "activities": sum(acts.values()), "activities_30d": (counts or {}).get("activities_30d", 0)}


def deal_rows(session: Session, *, closed: bool) -> list[Row]:
    """Closed deals with their outcome (``label`` 1 for won) for training, or open deals for scoring."""
    kinds = ("won", "lost") if closed else ("open",)
    now = literal(utcnow(), UTCDateTime())
    # A closed deal is described as it was when it closed; an open one as it is now.
    until = func.coalesce(Deal.closed_at, now) if closed else now
    population = (
        select(Deal.id.label("id"), until.label("until"))
        .join(Stage, Stage.id == Deal.stage_id)
        .where(Stage.kind.in_(kinds))
        .subquery()
    )
    query = (
        select(
            Deal.id, Deal.name, Deal.amount, Deal.currency, Deal.pipeline_id, Pipeline.name, Deal.owner_id,
            Deal.customer_id, Deal.company_id, Customer.company_id, Customer.lifecycle_stage, Customer.source,
            _days(session, population.c.until) - _days(session, Deal.created_at), Stage.kind, Stage.position,
        )
        .join(population, population.c.id == Deal.id)
        .join(Stage, Stage.id == Deal.stage_id)
        .join(Pipeline, Pipeline.id == Deal.pipeline_id)
        .outerjoin(Customer, Customer.id == Deal.customer_id)
        .order_by(Deal.id)
    )  # fmt: skip
    deals = session.execute(query).all()
    if not deals:
        return []

    # The furthest open stage each deal reached, from its stage history (a lost deal may have been at 交渉).
    open_stage = select(Stage.id, Stage.position).where(Stage.kind == "open").subquery()
    history = (
        select(DealStageChange.deal_id, func.max(open_stage.c.position))
        .join(open_stage, open_stage.c.id == DealStageChange.to_stage_id)
        .join(population, population.c.id == DealStageChange.deal_id)
        .group_by(DealStageChange.deal_id)
    )
    reached = {deal_id: position for deal_id, position in session.execute(history)}
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

    activities = _activity_counts(session, Activity.deal_id, population)
    sizes = _company_sizes(session)

    # Orders the customer placed before the deal was created (spend.py decides what counts): count in every
    # currency, money in the default currency only (amounts in different currencies are never added).
    default_currency = get_settings().default_currency
    prior_orders: dict[int, int] = defaultdict(int)
    prior_spend: dict[int, Decimal] = defaultdict(Decimal)
    spend = (
        select(Deal.id, Order.currency, func.count(Order.id), func.sum(Order.total_amount))
        .join(population, population.c.id == Deal.id)
        .join(Order, and_(Order.customer_id == Deal.customer_id, Order.ordered_at < Deal.created_at))
        .where(counts_as_spend())
        .group_by(Deal.id, Order.currency)
    )
    for deal_id, currency, count, amount in session.execute(spend):
        prior_orders[deal_id] += count
        if currency == default_currency:
            prior_spend[deal_id] += amount or Decimal(0)

    rows = []
    for (
        deal_id, name, amount, currency, pipeline_id, pipeline_name, owner_id, customer_id, company_id,
        customer_company_id, stage, source, days_open, kind, position,
    ) in deals:  # fmt: skip
        furthest = max(reached.get(deal_id, 0), position if kind == "open" else 0)
        span = max(open_count.get(pipeline_id, 1) - 1, 1)
        acts = _activity_features(activities.get(deal_id))
        employees = sizes.get(customer_company_id) if customer_company_id is not None else None
        if employees is None and company_id is not None:
            employees = sizes.get(company_id)
        days_open = max(float(days_open or 0), 0.0)
        orders, spent = prior_orders.get(deal_id, 0), prior_spend.get(deal_id, Decimal(0))
        # The raw values serve the rules and the factors' "= value", which only open deals need.
        raw = (
            {}
            if closed
            else {
                "stage": furthest,
                "amount": float(amount or 0),
                "days_open": round(days_open, 1),
                **acts,
                "company_employees": employees or 0,
                "prior_orders": orders,
                "prior_spend": float(spent),
                "lifecycle_stage": stage or "",
                "source": source or "",
                "pipeline": pipeline_name,
            }
        )
        features = {
            "amount_log": _log(amount),
            "stage_reached": min(furthest / span, 1.0),
            "days_open": math.log1p(days_open),
            **{f"act_{k}": math.log1p(acts[f"act_{k}"]) for k in ACTIVITY_KINDS},
            "activities_30d": math.log1p(acts["activities_30d"]),
            "company_employees_log": _log(employees),
            "prior_orders": math.log1p(orders),
            "prior_spend_log": _log(spent),
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
    now = literal(utcnow(), UTCDateTime())
    if training:
        closed = (
            select(Deal.customer_id, func.max(case((Stage.kind == "won", 1), else_=0)).label("won"))
            .join(Stage, Stage.id == Deal.stage_id)
            .where(Stage.kind.in_(("won", "lost")), Deal.customer_id.is_not(None))
            .group_by(Deal.customer_id)
            .subquery()
        )
        population = (
            select(Customer.id.label("id"), now.label("until"), closed.c.won.label("won"))
            .join(closed, closed.c.customer_id == Customer.id)
            .where(Customer.status == "active")
            .subquery()
        )
    else:
        population = (
            select(Customer.id.label("id"), now.label("until"), literal(None).label("won"))
            .where(Customer.status == "active", Customer.lifecycle_stage.in_(LEAD_STAGES))
            .subquery()
        )
    query = (
        select(
            Customer.id, Customer.full_name, Customer.owner_id, population.c.won, Customer.lifecycle_stage,
            Customer.source, Customer.company_id,
            _days(session, population.c.until) - _days(session, Customer.created_at),
        )
        .join(population, population.c.id == Customer.id)
        .order_by(Customer.id)
    )  # fmt: skip
    found = session.execute(query).all()
    if not found:
        return []
    activities = _activity_counts(session, Activity.customer_id, population)
    sizes = _company_sizes(session)
    rows = []
    for cid, name, owner_id, won, stage, source, company_id, days_known in found:
        employees = sizes.get(company_id) if company_id is not None else None
        acts = _activity_features(activities.get(cid))
        days_known = max(float(days_known or 0), 0.0)
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
