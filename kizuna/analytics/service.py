"""The analyses as the edges call them: check the permission, open the store, run one analysis, close it."""

from __future__ import annotations

from kizuna.analytics import clv as clv_analysis
from kizuna.analytics import deciles as decile_analysis
from kizuna.analytics import rfm as rfm_analysis
from kizuna.analytics.engine import store_session
from kizuna.auth.permissions import Actor, require


def rfm(*, actor: Actor, spec: rfm_analysis.RFMSpec, database_url: str | None = None) -> rfm_analysis.RFMResult:
    require(actor, "analytics:read")
    with store_session(database_url) as store:
        return rfm_analysis.rfm(store, spec)


def rfm_scores(
    *, actor: Actor, spec: rfm_analysis.RFMSpec, database_url: str | None = None
) -> list[rfm_analysis.RFMScore]:
    require(actor, "analytics:read")
    with store_session(database_url) as store:
        return rfm_analysis.customer_scores(store, spec)


def deciles(
    *, actor: Actor, spec: decile_analysis.DecileSpec, database_url: str | None = None
) -> decile_analysis.DecileResult:
    require(actor, "analytics:read")
    with store_session(database_url) as store:
        return decile_analysis.deciles(store, spec)


def clv(*, actor: Actor, spec: clv_analysis.CLVSpec, database_url: str | None = None) -> clv_analysis.CLVResult:
    require(actor, "analytics:read")
    with store_session(database_url) as store:
        return clv_analysis.clv(store, spec)


def clv_customers(
    *, actor: Actor, spec: clv_analysis.CLVSpec, database_url: str | None = None
) -> tuple[clv_analysis.CLVParams, list[clv_analysis.CLVRow]]:
    """The fitted parameters and every customer's CLV row (what a per-customer metrics table stores)."""
    require(actor, "analytics:read")
    with store_session(database_url) as store:
        return clv_analysis.customer_clv(store, spec)
