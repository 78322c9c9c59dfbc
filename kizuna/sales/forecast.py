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
from decimal import Decimal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, Field, field_validator, model_validator
from pydantic import ValidationError as PydanticValidationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from kizuna.auth.models import User
from kizuna.auth.permissions import Actor, require
from kizuna.config import get_settings
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
    """Open deals grouped in SQL by (currency, owner, stage, close date, probability); rolled up here exactly."""
    where = [*_filters(spec), Stage.kind == "open"]
    if spec.start is not None:
        where.append(Deal.expected_close_date >= spec.start)
    if spec.end is not None:
        where.append(Deal.expected_close_date <= spec.end)
    query = (
        select(
            Deal.currency, Deal.owner_id, Deal.stage_id, Deal.expected_close_date, Deal.probability,
            func.count(), func.sum(Deal.amount),
        )
        .join(Stage, Stage.id == Deal.stage_id)
        .where(*where)
        .group_by(Deal.currency, Deal.owner_id, Deal.stage_id, Deal.expected_close_date, Deal.probability)
    )  # fmt: skip
    groups: dict[str, dict] = {name: defaultdict(lambda: [0, Decimal(0), Decimal(0)]) for name in ("t", "m", "o", "s")}
    for currency, owner_id, stage_id, close, probability, count, amount in session.execute(query):
        amount = Decimal(amount or 0)
        weighted = amount * probability / 100
        month = close.strftime("%Y-%m") if close else None
        for name, key in (("t", None), ("m", month), ("o", owner_id), ("s", stage_id)):
            cell = groups[name][(key, currency)]
            cell[0] += count
            cell[1] += amount
            cell[2] += weighted
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


def _closed(session: Session, spec: ForecastSpec) -> list[tuple[int, int | None, str, dt.datetime, dt.datetime]]:
    """(deal id, owner id, won|lost, created, closed) of the deals closed in the period."""
    opened = (
        select(DealStageChange.deal_id, func.min(DealStageChange.changed_at).label("at"))
        .group_by(DealStageChange.deal_id)
        .subquery()
    )
    # It closed when it last entered the stage it is in (a reopened and closed-again deal counts once, at the end).
    closing = (
        select(DealStageChange.deal_id, func.max(DealStageChange.changed_at).label("at"))
        .join(Deal, Deal.id == DealStageChange.deal_id)
        .where(DealStageChange.to_stage_id == Deal.stage_id)
        .group_by(DealStageChange.deal_id)
        .subquery()
    )
    start, end = _bounds(spec)
    where = [*_filters(spec), Stage.kind.in_(("won", "lost"))]
    if start is not None:
        where.append(closing.c.at >= start)
    if end is not None:
        where.append(closing.c.at < end)
    query = (
        select(Deal.id, Deal.owner_id, Stage.kind, opened.c.at, closing.c.at)
        .join(Stage, Stage.id == Deal.stage_id)
        .join(opened, opened.c.deal_id == Deal.id)
        .join(closing, closing.c.deal_id == Deal.id)
        .where(*where)
    )
    return [(i, o, k, _aware(a), _aware(b)) for i, o, k, a, b in session.execute(query)]


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


def _reached(session: Session, ids: list[int]) -> dict[int, set[int]]:
    """The stages each of ``ids`` ever entered (read in chunks so that no statement takes too many parameters)."""
    reached: dict[int, set[int]] = defaultdict(set)
    for i in range(0, len(ids), 500):
        chunk = ids[i : i + 500]
        query = select(DealStageChange.deal_id, DealStageChange.to_stage_id).where(
            DealStageChange.deal_id.in_(chunk), DealStageChange.to_stage_id.is_not(None)
        )
        for deal_id, stage_id in session.execute(query):
            reached[deal_id].add(stage_id)
    return reached


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
    cycle = {i: (kind, (done - began).total_seconds() / 86400) for i, _, kind, began, done in closed}
    reached = _reached(session, sorted(cycle))
    by_owner: dict[int | None, list] = defaultdict(list)
    for deal_id, owner_id, *_ in closed:
        by_owner[owner_id].append(cycle[deal_id])
    owners.update(_owner_names(session, {k for k in by_owner if k is not None} - owners.keys()))
    stage_conversion = [
        _conversion(
            stage.id, stage.name, [cycle[i] for i in cycle if stage.id in reached.get(i, ())],
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
