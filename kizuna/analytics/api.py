"""``/api/v1/analytics/...``: the same analyses as the CLI and the UI, as JSON."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Query, Request

from kizuna.analytics import service
from kizuna.analytics.cohorts import CohortResult, CohortSpec
from kizuna.analytics.deciles import DecileResult, DecileSpec
from kizuna.analytics.metrics import MetricsRun
from kizuna.analytics.rfm import RFMResult, RFMSpec
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
