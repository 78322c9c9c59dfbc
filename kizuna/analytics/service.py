"""The analyses as the edges call them: check the permission, open the store, run one analysis, close it."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from kizuna.analytics import clv as clv_analysis
from kizuna.analytics import cohorts as cohort_analysis
from kizuna.analytics import ctb as ctb_analysis
from kizuna.analytics import deciles as decile_analysis
from kizuna.analytics import metrics, neighbors
from kizuna.analytics import rfm as rfm_analysis
from kizuna.analytics.ctb import CTBSpec
from kizuna.analytics.ctb_likely import LikelyResult, LikelySpec, likely
from kizuna.analytics.engine import run_on_store
from kizuna.analytics.metrics import MetricsSpec
from kizuna.analytics.models import MetricRun
from kizuna.analytics.recommend import CustomerRecommendations
from kizuna.analytics.recommend import recommendations as recommend
from kizuna.analytics.spend import default_currency
from kizuna.auth.permissions import Actor, require
from kizuna.db import get_engine, new_session
from kizuna.errors import ValidationError


def rfm(*, actor: Actor, spec: rfm_analysis.RFMSpec, database_url: str | None = None) -> rfm_analysis.RFMResult:
    require(actor, "analytics:read")
    return run_on_store(rfm_analysis.rfm, spec, database_url=database_url)


def rfm_scores(
    *, actor: Actor, spec: rfm_analysis.RFMSpec, database_url: str | None = None
) -> list[rfm_analysis.RFMScore]:
    require(actor, "analytics:read")
    return run_on_store(rfm_analysis.customer_scores, spec, database_url=database_url)


def deciles(
    *, actor: Actor, spec: decile_analysis.DecileSpec, database_url: str | None = None
) -> decile_analysis.DecileResult:
    require(actor, "analytics:read")
    return run_on_store(decile_analysis.deciles, spec, database_url=database_url)


def refresh_metrics(
    *, actor: Actor, spec: MetricsSpec | None = None, database_url: str | None = None
) -> metrics.MetricsRun:
    """Recompute the persisted per-customer metrics (``analytics.metrics``) and record the run."""
    require(actor, "analytics:refresh")
    engine = get_engine(database_url)
    return refresh_with(engine, spec)


def refresh_with(engine: Engine, spec: MetricsSpec | None = None) -> metrics.MetricsRun:
    """The refresh on a given engine, without a permission check (the worker's scheduled run)."""
    return metrics.refresh_on(engine, spec or MetricsSpec())


def refresh_neighbors(*, actor: Actor, database_url: str | None = None) -> MetricRun:
    """Recompute every product's similar products (what recommendations read) and record the run."""
    require(actor, "analytics:refresh")
    return neighbors.refresh_neighbors(get_engine(database_url))


def last_metrics_run(session: Session) -> MetricRun | None:
    """The latest finished score refresh (when the persisted metrics were computed), if any."""
    return session.scalars(
        select(MetricRun).where(MetricRun.kind == "scores", MetricRun.finished_at.is_not(None))
        .order_by(MetricRun.id.desc()).limit(1)
    ).first()  # fmt: skip


def cohorts(
    *, actor: Actor, spec: cohort_analysis.CohortSpec, database_url: str | None = None
) -> cohort_analysis.CohortResult:
    require(actor, "analytics:read")
    return run_on_store(cohort_analysis.cohorts, spec, database_url=database_url)


def ctb(*, actor: Actor, spec: CTBSpec, database_url: str | None = None) -> ctb_analysis.CTBResult:
    require(actor, "analytics:read")
    return run_on_store(ctb_analysis.ctb, spec, database_url=database_url)


def ctb_customers(
    *, actor: Actor, spec: CTBSpec, customer_ids: list[int] | None = None, database_url: str | None = None
) -> list[ctb_analysis.CustomerTop]:
    require(actor, "analytics:read")
    return run_on_store(ctb_analysis.customer_tops, spec, customer_ids, database_url=database_url)


def ctb_likely(*, actor: Actor, spec: LikelySpec, database_url: str | None = None) -> LikelyResult:
    require(actor, "analytics:read")
    return run_on_store(likely, spec, database_url=database_url)


def recommendations(
    *, actor: Actor, customer_ids: list[int], k: int = 5, database_url: str | None = None
) -> list[CustomerRecommendations]:
    """Up to ``k`` products for each customer (email templates call this too), in the order of ``customer_ids``."""
    require(actor, "analytics:read")
    engine = get_engine(database_url)
    with new_session(engine) as session:
        if neighbors.current(session) is not None:
            found = neighbors.recommendations_from_store(session, customer_ids, k)
        else:
            url = engine.url.render_as_string(hide_password=False)
            found = run_on_store(recommend, sorted(set(customer_ids)), k, database_url=url)
    return [CustomerRecommendations(customer_id=cid, products=found[cid]) for cid in dict.fromkeys(customer_ids)]


def clv(*, actor: Actor, spec: clv_analysis.CLVSpec, database_url: str | None = None) -> clv_analysis.CLVResult:
    require(actor, "analytics:read")
    return run_on_store(clv_analysis.clv, spec, database_url=database_url)


def clv_customers(
    *, actor: Actor, spec: clv_analysis.CLVSpec, database_url: str | None = None
) -> tuple[clv_analysis.CLVParams, list[clv_analysis.CLVRow]]:
    """The fitted parameters and every customer's CLV row (what a per-customer metrics table stores)."""
    require(actor, "analytics:read")
    return run_on_store(clv_analysis.customer_clv, spec, database_url=database_url)


def save_clv(
    *, actor: Actor, spec: clv_analysis.CLVSpec | None = None, database_url: str | None = None
) -> tuple[clv_analysis.CLVParams, list[clv_analysis.CLVRow], metrics.MetricsRun]:
    """Fit CLV as of today and store every customer's prediction in the persisted metrics (scores are refreshed
    first when they never were, so there are rows to write into)."""
    require(actor, "analytics:refresh")
    return save_clv_with(get_engine(database_url), spec)


def save_clv_with(
    engine: Engine, spec: clv_analysis.CLVSpec | None = None
) -> tuple[clv_analysis.CLVParams, list[clv_analysis.CLVRow], metrics.MetricsRun]:
    """``save_clv`` without a permission check (the worker's daily run)."""
    import time

    with new_session(engine) as session:
        last = last_metrics_run(session)
    if last is None:
        refresh_with(engine)
    spec = spec or clv_analysis.CLVSpec()
    scores_currency = (last.details.get("currency") if last else None) or default_currency(None)
    if default_currency(spec.currency) != scores_currency:
        raise ValidationError(
            f"the saved metrics are in {scores_currency}; CLV in {default_currency(spec.currency)} cannot be saved "
            "beside them (run it with --no-save, or refresh the metrics in that currency first)",
            field="currency",
        )
    started = time.perf_counter()
    params, rows = run_on_store(
        clv_analysis.customer_clv, spec, database_url=engine.url.render_as_string(hide_password=False)
    )
    run = metrics.save_clv(engine, params, rows, seconds=time.perf_counter() - started)
    return params, rows, run
