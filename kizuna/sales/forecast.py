"""The sales forecast: the weighted pipeline (amount × probability of open deals) by expected close month, by
owner and by stage, per currency; and win rate and average sales cycle per stage and per owner over a period.

One spec (``ForecastSpec``), one runner (``forecast``), one typed result (``ForecastResult``): the UI page, the
API and the CLI all call ``forecast``. Amounts of different currencies are never added: every money row carries
its currency.

Definitions (the page and the README say the same):
- weighted pipeline: open deals (their stage's kind is ``open``), each counted at ``amount × probability / 100``
  with the deal's own probability; the period filters on ``expected_close_date`` (deals without one are listed
  under no month, and left out when a period is given);
- closed deal: its current stage is won or lost; it closed when it entered that stage (its last
  ``deal_stage_changes`` row); the period filters on that moment, in the configured time zone;
- sales cycle: days from the deal's first ``deal_stage_changes`` row (its creation) to its closing;
- stage conversion: of the closed deals that ever entered a stage, the share that were won.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, Field, field_validator, model_validator
from pydantic import ValidationError as PydanticValidationError
from sqlalchemy import func, select, type_coerce
from sqlalchemy.orm import Session

from kizuna.auth.models import User
from kizuna.auth.permissions import Actor, require
from kizuna.config import get_settings
from kizuna.db import Money
from kizuna.errors import ValidationError
from kizuna.sales.models import Deal, DealStageChange, Pipeline, Stage
from kizuna.schemas import MoneyOut

CENT = Decimal("0.01")


class ForecastSpec(BaseModel):
    start: dt.date | None = Field(default=None, description="First day of the period (inclusive; default: all).")
    end: dt.date | None = Field(default=None, description="Last day of the period (inclusive; default: all).")
    pipeline_id: int | None = Field(default=None, description="Only this pipeline (default: every pipeline).")
    owner_id: int | None = Field(default=None, description="Only this owner's deals.")
    currency: str | None = Field(default=None, description="Only deals in this currency (ISO 4217, e.g. JPY).")

    @field_validator("currency")
    @classmethod
    def _upper(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        value = value.strip().upper()
        if len(value) != 3 or not value.isalpha():
            raise ValueError(f"currency '{value}' is not a three-letter ISO 4217 code")
        return value

    @model_validator(mode="after")
    def _ordered(self) -> ForecastSpec:
        if self.start and self.end and self.start > self.end:
            raise ValueError(f"the period starts ({self.start}) after it ends ({self.end})")
        return self


_PARAMS = {"start": "from", "end": "to"}


def spec_of(**raw: object) -> ForecastSpec:
    """A spec from the edges' raw values (query parameters, CLI options, form fields), refusals naming the field."""
    try:
        return ForecastSpec(**{k: (None if v == "" else v) for k, v in raw.items()})
    except PydanticValidationError as exc:
        error = exc.errors()[0]
        field = str(error["loc"][0]) if error["loc"] else "from"
        raw_value = raw.get(field)
        message = str(error["msg"]).removeprefix("Value error, ")
        if error["type"].startswith(("date", "int")):
            message = f"'{raw_value}' is not valid for {_PARAMS.get(field, field)}: {message}"
        raise ValidationError(message, field=_PARAMS.get(field, field)) from exc


class WeightedRow(BaseModel):
    """One group of open deals in one currency: how many, their amount and their weighted amount."""

    key: str | int | None = Field(description="The month (YYYY-MM), owner id or stage id; null: none.")
    label: str = Field(description="The month, the owner's name or the stage's name (Japanese).")
    label_en: str | None = Field(default=None, description="The stage's English name, when it has one.")
    currency: str
    deals: int
    amount: MoneyOut
    weighted: MoneyOut


class ConversionRow(BaseModel):
    """Closed deals of a stage (those that entered it) or of an owner: how many were won, and how fast."""

    key: int | None = Field(description="The stage id or owner id (null: deals without an owner).")
    label: str
    label_en: str | None = None
    pipeline_id: int | None = None
    closed: int
    won: int
    lost: int
    win_rate: float | None = Field(description="won / closed, 0..1; null when nothing closed.")
    average_cycle_days: float | None = Field(description="Mean days from creation to closing, 1 decimal.")


class ForecastResult(BaseModel):
    spec: ForecastSpec
    totals: list[WeightedRow] = Field(description="The whole open pipeline, one row per currency.")
    by_month: list[WeightedRow]
    by_owner: list[WeightedRow]
    by_stage: list[WeightedRow]
    overall: ConversionRow = Field(description="Every closed deal of the period.")
    stage_conversion: list[ConversionRow]
    owner_performance: list[ConversionRow]


def _bounds(spec: ForecastSpec) -> tuple[dt.datetime | None, dt.datetime | None]:
    """The period as UTC instants: from the start day's midnight to the midnight after the end day, local time."""
    zone = ZoneInfo(get_settings().default_timezone)

    def midnight(day: dt.date) -> dt.datetime:
        return dt.datetime.combine(day, dt.time(), zone).astimezone(dt.UTC)

    return (
        midnight(spec.start) if spec.start else None,
        midnight(spec.end + dt.timedelta(days=1)) if spec.end else None,
    )


def _filters(spec: ForecastSpec) -> list:
    where = []
    if spec.pipeline_id is not None:
        where.append(Deal.pipeline_id == spec.pipeline_id)
    if spec.owner_id is not None:
        where.append(Deal.owner_id == spec.owner_id)
    if spec.currency is not None:
        where.append(Deal.currency == spec.currency)
    return where


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def _owner_names(session: Session, ids: set[int]) -> dict[int, str]:
    if not ids:
        return {}
    rows = session.execute(
        select(User.id, func.coalesce(func.nullif(User.name, ""), User.email)).where(User.id.in_(ids))
    )
    return {i: name for i, name in rows}


def _weighted(session: Session, spec: ForecastSpec, stages: dict[int, Stage], owners: dict[int, str]) -> dict:
    """Open deals grouped in SQL by currency and owner, stage or close date (months rolled up here, exactly).

    ``sum(amount * probability)`` is exact on both backends: NUMERIC on PostgreSQL, whole cents × a whole
    percentage on SQLite (the Money type's storage), read back through the Money type and divided by 100 here.
    """
    where = [*_filters(spec), Stage.kind == "open"]
    if spec.start is not None:
        where.append(Deal.expected_close_date >= spec.start)
    if spec.end is not None:
        where.append(Deal.expected_close_date <= spec.end)
    sums = (
        func.count(),
        type_coerce(func.sum(Deal.amount), Money),
        type_coerce(func.sum(Deal.amount * Deal.probability), Money),
    )
    groups: dict[str, dict] = {name: defaultdict(lambda: [0, Decimal(0), Decimal(0)]) for name in ("t", "m", "o", "s")}
    for name, column in (("o", Deal.owner_id), ("s", Deal.stage_id), ("m", Deal.expected_close_date)):
        query = (
            select(Deal.currency, column, *sums)
            .join(Stage, Stage.id == Deal.stage_id)
            .where(*where)
            .group_by(Deal.currency, column)
        )
        for currency, key, count, amount, weighted in session.execute(query):
            if name == "m":
                key = key.strftime("%Y-%m") if key else None
            keys = (("m", key),) if name == "m" else ((name, key), ("t", None)) if name == "s" else ((name, key),)
            for group, k in keys:
                cell = groups[group][(k, currency)]
                cell[0] += count
                cell[1] += Decimal(amount or 0)
                cell[2] += Decimal(weighted or 0) / 100
    owners.update(_owner_names(session, {k for k, _ in groups["o"] if k is not None} - owners.keys()))

    def rows(name: str, label, order) -> list[WeightedRow]:  # noqa: ANN001
        out = [
            WeightedRow(
                key=key, currency=currency, deals=count, amount=amount.quantize(CENT),
                weighted=weighted.quantize(CENT), **label(key),
            )
            for (key, currency), (count, amount, weighted) in groups[name].items()
        ]  # fmt: skip
        return sorted(out, key=lambda r: (*order(r), r.currency))

    def stage_label(key: int) -> dict:
        stage = stages.get(key)
        return {"label": stage.name if stage else str(key), "label_en": stage.name_en if stage else None}

    return {
        "totals": rows("t", lambda k: {"label": ""}, lambda r: ()),
        "by_month": rows("m", lambda k: {"label": k or ""}, lambda r: (r.key is None, r.key or "")),
        "by_owner": rows(
            "o", lambda k: {"label": owners.get(k, "") if k is not None else ""}, lambda r: (r.key is None, r.label)
        ),
        "by_stage": rows(
            "s",
            stage_label,
            lambda r: (stages[r.key].pipeline_id, stages[r.key].position) if r.key in stages else (0, 0),
        ),
    }


@dataclass
class _Closed:
    owner_id: int | None
    kind: str
    stage_id: int
    opened: dt.datetime | None = None
    closed: dt.datetime | None = None
    reached: set[int] = field(default_factory=set)

    @property
    def days(self) -> float:
        return (self.closed - self.opened).total_seconds() / 86400 if self.closed and self.opened else 0.0


def _closed(session: Session, spec: ForecastSpec) -> dict[int, _Closed]:
    """The deals closed (won or lost now) in the period, from one read of their stage history.

    A deal opened with its first history row (its creation) and closed when it last entered the stage it is in
    (a reopened and closed-again deal counts once, at the end). The period is applied to that closing here.
    """
    query = (
        select(
            DealStageChange.deal_id, DealStageChange.to_stage_id, DealStageChange.changed_at, Deal.owner_id,
            Deal.stage_id, Stage.kind,
        )
        .join(Deal, Deal.id == DealStageChange.deal_id)
        .join(Stage, Stage.id == Deal.stage_id)
        .where(*_filters(spec), Stage.kind.in_(("won", "lost")))
    )  # fmt: skip
    deals: dict[int, _Closed] = {}
    for deal_id, to_stage, at, owner_id, stage_id, kind in session.execute(query):
        deal = deals.get(deal_id)
        if deal is None:
            deal = deals[deal_id] = _Closed(owner_id=owner_id, kind=kind, stage_id=stage_id)
        at = _aware(at)
        if deal.opened is None or at < deal.opened:
            deal.opened = at
        if to_stage is not None:
            deal.reached.add(to_stage)
            if to_stage == stage_id and (deal.closed is None or at > deal.closed):
                deal.closed = at
    start, end = _bounds(spec)
    return {
        i: d
        for i, d in deals.items()
        if d.closed is not None and (start is None or d.closed >= start) and (end is None or d.closed < end)
    }


def _conversion(key: int | None, label: str, deals: list[tuple[str, float]], **extra: object) -> ConversionRow:
    won = sum(1 for kind, _ in deals if kind == "won")
    closed = len(deals)
    return ConversionRow(
        key=key,
        label=label,
        closed=closed,
        won=won,
        lost=closed - won,
        win_rate=round(won / closed, 4) if closed else None,
        average_cycle_days=round(sum(days for _, days in deals) / closed, 1) if closed else None,
        **extra,
    )


def forecast(session: Session, *, actor: Actor, spec: ForecastSpec) -> ForecastResult:
    """The weighted pipeline and the win rates of ``spec``; everyone who reads deals reads the forecast."""
    require(actor, "deals:read")
    if spec.pipeline_id is not None and session.get(Pipeline, spec.pipeline_id) is None:
        raise ValidationError(f"pipeline {spec.pipeline_id} does not exist", field="pipeline_id")
    if spec.owner_id is not None and session.get(User, spec.owner_id) is None:
        raise ValidationError(f"user {spec.owner_id} does not exist", field="owner_id")
    stage_query = select(Stage).join(Pipeline, Pipeline.id == Stage.pipeline_id)
    if spec.pipeline_id is not None:
        stage_query = stage_query.where(Stage.pipeline_id == spec.pipeline_id)
    ordered = list(session.scalars(stage_query.order_by(Pipeline.position, Pipeline.id, Stage.position)))
    stages = {s.id: s for s in ordered}
    owners: dict[int, str] = {}
    weighted = _weighted(session, spec, stages, owners)

    closed = _closed(session, spec)
    cycle = {i: (d.kind, d.days) for i, d in closed.items()}
    by_owner: dict[int | None, list] = defaultdict(list)
    for deal_id, deal in closed.items():
        by_owner[deal.owner_id].append(cycle[deal_id])
    owners.update(_owner_names(session, {k for k in by_owner if k is not None} - owners.keys()))
    stage_conversion = [
        _conversion(
            stage.id, stage.name, [cycle[i] for i, d in closed.items() if stage.id in d.reached],
            label_en=stage.name_en, pipeline_id=stage.pipeline_id,
        )
        for stage in ordered
    ]  # fmt: skip
    owner_performance = sorted(
        (_conversion(k, owners.get(k, "") if k is not None else "", v) for k, v in by_owner.items()),
        key=lambda r: (r.key is None, r.label),
    )
    return ForecastResult(
        spec=spec,
        **weighted,
        overall=_conversion(None, "", list(cycle.values())),
        stage_conversion=stage_conversion,
        owner_performance=owner_performance,
    )


# The flat shape of a result, one row per line of every table: the CLI's csv and table output.
FLAT_COLUMNS = (
    "section", "key", "label", "currency", "deals", "amount", "weighted", "closed", "won", "lost", "win_rate",
    "average_cycle_days",
)  # fmt: skip
SECTIONS = {
    "total": "Weighted pipeline",
    "month": "By expected close month",
    "owner": "By owner",
    "stage": "By stage",
    "overall": "Closed in the period",
    "stage_conversion": "Win rate by stage reached",
    "owner_performance": "Win rate by owner",
}


def flat_rows(result: ForecastResult) -> list[dict[str, object]]:
    """Every row of ``result`` with a ``section`` column (see SECTIONS), blanks where a column does not apply."""
    out: list[dict[str, object]] = []
    weighted = (("total", result.totals), ("month", result.by_month), ("owner", result.by_owner))
    for section, rows in (*weighted, ("stage", result.by_stage)):
        for r in rows:
            out.append(dict.fromkeys(FLAT_COLUMNS) | {"section": section, **r.model_dump(exclude={"label_en"})})
    closed = (("overall", [result.overall]), ("stage_conversion", result.stage_conversion))
    for section, rows in (*closed, ("owner_performance", result.owner_performance)):
        for r in rows:
            out.append(
                dict.fromkeys(FLAT_COLUMNS) | {"section": section, **r.model_dump(exclude={"label_en", "pipeline_id"})}
            )
    return out
