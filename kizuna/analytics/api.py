"""``/api/v1/analytics/...``: the same analyses as the CLI and the UI, as JSON."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Query, Request
from pydantic import ValidationError as PydanticValidationError

from kizuna.analytics import service
from kizuna.analytics.clv import CLVResult, CLVSpec, TimeUnit
from kizuna.analytics.deciles import DecileResult, DecileSpec
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
