"""``/api/v1/analytics/...``: the same analyses as the CLI and the UI, as JSON."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Query, Request
from pydantic import ValidationError as PydanticValidationError

from kizuna.analytics import service
from kizuna.analytics.clv import CLVResult, CLVSpec, TimeUnit
from kizuna.analytics.cohorts import CohortResult, CohortSpec
from kizuna.analytics.ctb import CTBResult, CTBSpec, CustomerTop, Dimension
from kizuna.analytics.ctb_likely import LikelyResult, LikelySpec
from kizuna.analytics.deciles import DecileResult, DecileSpec
from kizuna.analytics.metrics import MetricsRun
from kizuna.analytics.recommend import CustomerRecommendations
from kizuna.analytics.rfm import RFMResult, RFMSpec
from kizuna.errors import ValidationError
from kizuna.web.deps import APIActor, database_url

router = APIRouter(prefix="/analytics", tags=["analytics"])
Day = Annotated[dt.date | None, Query(description="YYYY-MM-DD, a day in KIZUNA_DEFAULT_TIMEZONE.")]


@router.get("/rfm", response_model=RFMResult)
def rfm(
    request: Request,
    actor: APIActor,
    as_of: Day = None,
    start: Annotated[dt.date | None, Query(alias="from", description="Only orders from this day on.")] = None,
    bins: Annotated[int, Query(ge=2, le=10)] = 5,
    currency: str | None = None,
    include_refunds: bool = False,
) -> RFMResult:
    """Customers and revenue per named RFM segment, and the R×F grid."""
    spec = RFMSpec(as_of=as_of, start=start, bins=bins, currency=currency, include_refunds=include_refunds)
    return service.rfm(actor=actor, spec=spec, database_url=database_url(request))


@router.get("/deciles", response_model=DecileResult)
def deciles(
    request: Request,
    actor: APIActor,
    start: Annotated[dt.date | None, Query(alias="from", description="First day (inclusive).")] = None,
    end: Annotated[dt.date | None, Query(alias="to", description="Last day (inclusive).")] = None,
    currency: str | None = None,
    include_refunds: bool = False,
) -> DecileResult:
    """Customers with spend in the period in 10 equal groups (decile 1 spends most)."""
    spec = DecileSpec(start=start, end=end, currency=currency, include_refunds=include_refunds)
    return service.deciles(actor=actor, spec=spec, database_url=database_url(request))


@router.post("/refresh", response_model=MetricsRun)
def refresh(request: Request, actor: APIActor) -> MetricsRun:
    """Recompute every customer's persisted metrics now (the worker also does it after new data and daily)."""
    return service.refresh_metrics(actor=actor, database_url=database_url(request))


@router.get("/cohorts", response_model=CohortResult)
def cohorts(
    request: Request,
    actor: APIActor,
    start: Annotated[dt.date | None, Query(alias="from", description="First acquisition day (inclusive).")] = None,
    end: Annotated[dt.date | None, Query(alias="to", description="Last acquisition day (inclusive).")] = None,
    currency: str | None = None,
    months: Annotated[int, Query(ge=1, le=120, description="Month offsets after each cohort's month.")] = 12,
) -> CohortResult:
    """Monthly acquisition cohorts and their retention, repeat rate, time between purchases, and second-purchase
    conversion by first category, for customers whose first counted order falls in the period."""
    spec = CohortSpec(start=start, end=end, currency=currency, months=months)
    return service.cohorts(actor=actor, spec=spec, database_url=database_url(request))


CTBDimension = Annotated[Dimension, Query(description="category, taste or brand.")]
HalfLife = Annotated[float, Query(gt=0, le=36500, description="Days after which a purchase weighs half.")]


@router.get("/ctb", response_model=CTBResult)
def ctb(
    request: Request,
    actor: APIActor,
    dimension: CTBDimension = "category",
    start: Annotated[dt.date | None, Query(alias="from", description="First day (inclusive).")] = None,
    end: Annotated[dt.date | None, Query(alias="to", description="Last day (inclusive) and as-of day.")] = None,
    half_life_days: HalfLife = 180,
    currency: str | None = None,
    groups: Annotated[int, Query(ge=1, le=20)] = 5,
) -> CTBResult:
    """Revenue and customers per category, taste or brand, and groups of customers who buy alike."""
    spec = CTBSpec(
        dimension=dimension, start=start, end=end, half_life_days=half_life_days, currency=currency, groups=groups
    )
    return service.ctb(actor=actor, spec=spec, database_url=database_url(request))


@router.get("/ctb/customers", response_model=list[CustomerTop])
def ctb_customers(
    request: Request,
    actor: APIActor,
    customer_id: Annotated[list[int] | None, Query(description="Only these customers (repeat).")] = None,
    start: Annotated[dt.date | None, Query(alias="from", description="First day (inclusive).")] = None,
    end: Annotated[dt.date | None, Query(alias="to", description="Last day (inclusive) and as-of day.")] = None,
    half_life_days: HalfLife = 180,
    currency: str | None = None,
) -> list[CustomerTop]:
    """Each customer's top category, taste and brand, with its recency-weighted share of their spend."""
    spec = CTBSpec(start=start, end=end, half_life_days=half_life_days, currency=currency)
    return service.ctb_customers(actor=actor, spec=spec, customer_ids=customer_id, database_url=database_url(request))


@router.get("/ctb/likely", response_model=LikelyResult)
def ctb_likely(
    request: Request,
    actor: APIActor,
    value: Annotated[str, Query(min_length=1, max_length=100, description="The value customers may buy next.")],
    dimension: CTBDimension = "brand",
    start: Annotated[dt.date | None, Query(alias="from", description="First day (inclusive).")] = None,
    end: Annotated[dt.date | None, Query(alias="to", description="Last day (inclusive) and as-of day.")] = None,
    half_life_days: HalfLife = 180,
    currency: str | None = None,
    exclude_within_days: Annotated[
        int | None, Query(ge=0, le=36500, description="Leave out who bought the value this recently (empty: nobody).")
    ] = 90,
    limit: Annotated[int, Query(ge=1, le=10000)] = 100,
) -> LikelyResult:
    """Customers ranked by how likely they are to buy a category, taste or brand next."""
    spec = LikelySpec(
        dimension=dimension,
        value=value,
        start=start,
        end=end,
        half_life_days=half_life_days,
        currency=currency,
        exclude_within_days=exclude_within_days,
        limit=limit,
    )
    return service.ctb_likely(actor=actor, spec=spec, database_url=database_url(request))


@router.get("/recommendations", response_model=list[CustomerRecommendations])
def recommendations(
    request: Request,
    actor: APIActor,
    customer_id: Annotated[list[int], Query(description="Customer id (repeat for several, at most 1,000).")],
    k: Annotated[int, Query(ge=1, le=50)] = 5,
) -> list[CustomerRecommendations]:
    """A few products for each customer, from what customers buy together (best sellers when that is not enough)."""
    if len(customer_id) > 1000:
        raise ValidationError("at most 1,000 customers at once", field="customer_id")
    return service.recommendations(actor=actor, customer_ids=customer_id, k=k, database_url=database_url(request))


@router.get("/clv", response_model=CLVResult)
def clv(
    request: Request,
    actor: APIActor,
    calibration_end: Annotated[
        dt.date | None, Query(description="Last day fitted on (inclusive; default today), YYYY-MM-DD.")
    ] = None,
    time_unit: Annotated[TimeUnit, Query(description="Unit of recency, age, horizon and α.")] = "week",
    horizon: Annotated[float | None, Query(gt=0, description="Periods of time_unit (default 1 year).")] = None,
    discount_rate: Annotated[float, Query(ge=0, lt=1, description="Discount rate per month.")] = 0.01,
    currency: str | None = None,
    top: Annotated[int, Query(ge=0, le=1000)] = 20,
) -> CLVResult:
    """BG/NBD and Gamma-Gamma parameters, CLV by decile, P(alive) distribution and the top customers by CLV."""
    try:
        spec = CLVSpec(
            calibration_end=calibration_end,
            time_unit=time_unit,
            horizon=horizon,
            discount_rate=discount_rate,
            currency=currency,
            top=top,
        )
    except PydanticValidationError as exc:  # the horizon's limit depends on the unit: checked by the spec
        raise ValidationError(str(exc.errors()[0]["msg"]), field="horizon") from exc
    return service.clv(actor=actor, spec=spec, database_url=database_url(request))
