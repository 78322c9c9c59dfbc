"""Analytics pages: RFM (segments and the R×F heat-map) and deciles, each chart with its numbers as a table and a
CSV download beside it. Charts are drawn by plotly.js served from the installed plotly package (no CDN)."""

from __future__ import annotations

import csv
import datetime as dt
import io
from pathlib import Path
from typing import Any

from fastapi import Request
from pydantic import ValidationError as PydanticValidationError
from sqlalchemy.orm import Session
from starlette.responses import FileResponse, RedirectResponse, Response

from kizuna.analytics import cohorts as cohort_analysis
from kizuna.analytics import service
from kizuna.analytics import subscribers as metrics_schedule
from kizuna.analytics.clv import CLVSpec
from kizuna.analytics.cohorts import CohortResult, CohortSpec
from kizuna.analytics.ctb import DIMENSIONS, CTBSpec
from kizuna.analytics.ctb_groups import OTHER
from kizuna.analytics.ctb_likely import LikelySpec
from kizuna.analytics.deciles import DecileSpec
from kizuna.analytics.rfm import SEGMENTS, RFMSpec
from kizuna.auth.permissions import require
from kizuna.errors import KizunaError, ValidationError
from kizuna.web.deps import DB, database_url
from kizuna.web.forms import translate_error
from kizuna.web.i18n import translator
from kizuna.web.session import CurrentViewer, PostingViewer, Viewer
from kizuna.web.ui_base import render, ui_router, with_notice

router = ui_router()


def _plotly_js() -> Path:
    import plotly

    return Path(plotly.__file__).parent / "package_data" / "plotly.min.js"


def _day(raw: str | None, field: str) -> dt.date | None:
    if not raw:
        return None
    try:
        return dt.date.fromisoformat(raw)
    except ValueError as exc:
        raise ValidationError(f"'{raw}' is not a date (YYYY-MM-DD)", field=field, key="error.date_parsing") from exc


def _csv(rows: list[dict[str, Any]], name: str) -> Response:
    buffer = io.StringIO()
    if rows:
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    # A BOM so that Excel opens the Japanese labels as UTF-8.
    return Response(
        "\ufeff" + buffer.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


def _refused(request: Request, viewer: Viewer, template: str, form: dict[str, str], exc: KizunaError) -> Response:
    """The analysis page again with the user's input and why it was refused (a bad date, an empty period...)."""
    if exc.status_code in (401, 403):
        raise exc
    message = translate_error(translator(viewer.lang), viewer.lang, exc)
    return render(request, template, viewer, status=422, form=form, result=None, error=message, chart=None)


@router.get("/vendor/plotly.min.js")
def plotly_js() -> Response:
    return FileResponse(_plotly_js(), media_type="text/javascript", headers={"Cache-Control": "public, max-age=86400"})


@router.get("/analytics")
def analytics_home() -> Response:
    return RedirectResponse("/analytics/rfm", status_code=303)


def _rfm_spec(request: Request) -> RFMSpec:
    q = request.query_params
    bins = q.get("bins") or "5"
    if not bins.isdigit():
        raise ValidationError(f"'{bins}' is not a whole number", field="bins", key="error.int_parsing")
    try:
        return RFMSpec(as_of=_day(q.get("as_of"), "as_of"), start=_day(q.get("from"), "from"), bins=int(bins))
    except PydanticValidationError as exc:
        first = exc.errors()[0]
        raise ValidationError(str(first["msg"]), field=str(first["loc"][0])) from exc


@router.get("/analytics/rfm")
def rfm_page(request: Request, viewer: CurrentViewer, session: DB) -> Response:
    t = translator(viewer.lang)
    form = {k: request.query_params.get(k, "") for k in ("as_of", "from", "bins")}
    try:
        spec = _rfm_spec(request)
        result = service.rfm(actor=viewer.actor, spec=spec, database_url=database_url(request))
    except KizunaError as exc:
        return _refused(request, viewer, "analytics/rfm.html", form, exc)
    labels = [str(score) for score in range(1, spec.bins + 1)]
    chart = {
        "data": [
            {
                "type": "heatmap",
                "z": result.grid,
                "x": labels,
                "y": labels,
                # plotly's "Blues" runs dark to light: reversed, the crowded cells are the dark ones.
                "colorscale": "Blues",
                "reversescale": True,
                "hovertemplate": t("analytics.heat_hover") + "<extra></extra>",
            }
        ],
        "layout": {
            "xaxis": {"title": {"text": t("analytics.f_score")}, "type": "category"},
            "yaxis": {"title": {"text": t("analytics.r_score")}, "type": "category"},
            "margin": {"t": 10, "r": 10, "b": 50, "l": 60},
            "height": 360,
        },
    }
    return render(
        request,
        "analytics/rfm.html",
        viewer,
        form=form,
        result=result,
        error="",
        chart=chart,
        segment_labels=_segment_labels(t),
        **_metrics_status(session),
    )


def _metrics_status(session: Session) -> dict[str, Any]:
    """When the persisted per-customer metrics were last computed, and whether a refresh is waiting."""
    return {
        "metrics_run": service.last_metrics_run(session),
        "metrics_waiting": metrics_schedule.waiting_refresh(session),
    }


@router.post("/analytics/refresh")
def metrics_refresh_now(session: DB, viewer: PostingViewer) -> Response:
    """Ask the worker to recompute the persisted metrics now (the page shows it waiting until it has run)."""
    require(viewer.actor, "analytics:refresh")
    metrics_schedule.request_refresh(session, delay=dt.timedelta(0), reason="ui")
    session.commit()
    return with_notice(RedirectResponse("/analytics/rfm", status_code=303), "metrics_refresh_queued")


def _segment_labels(t: Any) -> dict[str, tuple[str, str]]:
    """Each segment's name and one-line description in the page's language (a test checks every one exists)."""
    return {name: (t(f"analytics.segment.{name}"), t(f"analytics.segment_hint.{name}")) for name in SEGMENTS}


@router.get("/analytics/rfm.csv")
def rfm_csv(request: Request, viewer: CurrentViewer) -> Response:
    t = translator(viewer.lang)
    result = service.rfm(actor=viewer.actor, spec=_rfm_spec(request), database_url=database_url(request))
    rows = [
        {
            "segment": s.segment,
            "label": t(f"analytics.segment.{s.segment}"),
            "customers": s.customers,
            "share_of_customers": round(s.share_of_customers, 6),
            f"revenue_{result.currency}": str(s.revenue),
            "share_of_revenue": round(s.share_of_revenue, 6),
        }
        for s in result.segments
    ]
    return _csv(rows, f"rfm-{result.as_of}.csv")


def _decile_spec(request: Request) -> DecileSpec:
    q = request.query_params
    return DecileSpec(start=_day(q.get("from"), "from"), end=_day(q.get("to"), "to"))


@router.get("/analytics/deciles")
def deciles_page(request: Request, viewer: CurrentViewer) -> Response:
    t = translator(viewer.lang)
    form = {k: request.query_params.get(k, "") for k in ("from", "to")}
    try:
        result = service.deciles(actor=viewer.actor, spec=_decile_spec(request), database_url=database_url(request))
    except KizunaError as exc:
        return _refused(request, viewer, "analytics/deciles.html", form, exc)
    names = [str(d.decile) for d in result.deciles]
    chart = {
        "data": [
            {
                "type": "bar",
                "x": names,
                "y": [round(d.share * 100, 2) for d in result.deciles],
                "name": t("analytics.share"),
                "marker": {"color": "#2b5fd9"},
            },
            {
                "type": "scatter",
                "mode": "lines+markers",
                "x": names,
                "y": [round(d.cumulative_share * 100, 2) for d in result.deciles],
                "name": t("analytics.cumulative_share"),
                "line": {"color": "#a15c00"},
            },
        ],
        "layout": {
            "xaxis": {"title": {"text": t("analytics.decile")}, "type": "category"},
            "yaxis": {"title": {"text": "%"}, "range": [0, 100]},
            "margin": {"t": 10, "r": 10, "b": 40, "l": 50},
            "height": 340,
            "legend": {"orientation": "h", "y": -0.2},
        },
    }
    return render(request, "analytics/deciles.html", viewer, form=form, result=result, error="", chart=chart)


@router.get("/analytics/deciles.csv")
def deciles_csv(request: Request, viewer: CurrentViewer) -> Response:
    result = service.deciles(actor=viewer.actor, spec=_decile_spec(request), database_url=database_url(request))
    rows = [
        {
            **d.model_dump(mode="json"),
            "share": round(d.share, 6),
            "cumulative_share": round(d.cumulative_share, 6),
            "currency": result.currency,
        }
        for d in result.deciles
    ]
    return _csv(rows, "deciles.csv")


# --- cohorts and repeat purchases ---


def _cohort_spec(request: Request) -> CohortSpec:
    q = request.query_params
    months = q.get("months") or "12"
    if not months.isdigit():
        raise ValidationError(f"'{months}' is not a whole number", field="months", key="error.int_parsing")
    try:
        return CohortSpec(start=_day(q.get("from"), "from"), end=_day(q.get("to"), "to"), months=int(months))
    except PydanticValidationError as exc:
        first = exc.errors()[0]
        raise ValidationError(str(first["msg"]), field=str(first["loc"][0])) from exc


def _category_label(t: Any, category: str | None) -> str:
    return category if category is not None else t("cohorts.uncategorised")


def _gap_label(t: Any, low: int, high: int | None) -> str:
    return t("cohorts.days_range", low=low, high=high) if high is not None else t("cohorts.days_over", low=low - 1)


def _cohort_charts(t: Any, result: CohortResult) -> dict[str, Any]:
    offsets = [t("cohorts.offset_n", n=k) for k in range(result.months + 1)]
    months = [c.month for c in result.cohorts]
    heat = {
        "data": [
            {
                "type": "heatmap",
                "z": [[None if s is None else round(s * 100, 1) for s in c.share] for c in result.cohorts],
                "x": offsets,
                "y": months,
                "zmin": 0,
                "zmax": 100,
                # plotly's "Blues" runs dark to light; reversed, the cohorts that stay are the dark cells.
                "colorscale": "Blues",
                "reversescale": True,
                "colorbar": {"ticksuffix": "%"},
                "texttemplate": "%{z:.0f}%",
                "hovertemplate": t("cohorts.heat_hover") + "<extra></extra>",
            }
        ],
        "layout": {
            "xaxis": {"title": {"text": t("cohorts.offset")}, "type": "category"},
            "yaxis": {"title": {"text": t("cohorts.cohort")}, "type": "category", "autorange": "reversed"},
            "margin": {"t": 10, "r": 10, "b": 50, "l": 70},
            "height": max(260, 60 + 26 * len(months)),
        },
    }
    buckets = result.time_between.buckets
    gaps = {
        "data": [
            {
                "type": "bar",
                "x": [_gap_label(t, b.min_days, b.max_days) for b in buckets],
                "y": [b.gaps for b in buckets],
                "name": t("cohorts.purchases"),
                "marker": {"color": "#2b5fd9"},
            }
        ],
        "layout": {
            "xaxis": {"title": {"text": t("cohorts.days_between")}, "type": "category"},
            # Counts are whole: no 0.5 ticks on a short axis.
            "yaxis": {"title": {"text": t("cohorts.purchases")}, "rangemode": "tozero", "tickformat": ",d"}
            | ({"dtick": 1} if max((b.gaps for b in buckets), default=0) <= 10 else {}),
            "margin": {"t": 10, "r": 10, "b": 70, "l": 50},
            "height": 300,
        },
    }
    names = [_category_label(t, c.category) for c in result.categories]
    series = [(t("cohorts.second_purchase"), [c.repeat_share for c in result.categories], "#2b5fd9")]
    colours = ("#a15c00", "#1b7f5a", "#7a3fb0")
    for i, days in enumerate(cohort_analysis.WINDOWS):
        shares = [next(w.share for w in c.windows if w.days == days) for c in result.categories]
        series.append((t("cohorts.within_n", n=days), shares, colours[i % len(colours)]))
    categories = {
        "data": [
            {
                "type": "bar",
                "x": names,
                "y": [None if s is None else round(s * 100, 1) for s in shares],
                "name": label,
                "marker": {"color": colour},
            }
            for label, shares, colour in series
        ],
        "layout": {
            "barmode": "group",
            "xaxis": {"title": {"text": t("cohorts.first_category")}, "type": "category"},
            "yaxis": {"title": {"text": "%"}, "range": [0, 100]},
            "margin": {"t": 10, "r": 10, "b": 50, "l": 50},
            "height": 340,
            "legend": {"orientation": "h", "y": -0.25},
        },
    }
    return {"heat": heat, "gaps": gaps, "categories": categories}


@router.get("/analytics/cohorts")
def cohorts_page(request: Request, viewer: CurrentViewer) -> Response:
    t = translator(viewer.lang)
    form = {k: request.query_params.get(k, "") for k in ("from", "to", "months")}
    template = "analytics/cohorts.html"
    try:
        result = service.cohorts(actor=viewer.actor, spec=_cohort_spec(request), database_url=database_url(request))
    except KizunaError as exc:
        if exc.status_code in (401, 403):
            raise
        message = translate_error(t, viewer.lang, exc)
        return render(request, template, viewer, status=422, form=form, result=None, error=message, charts=None)
    return render(
        request,
        template,
        viewer,
        form=form,
        result=result,
        error="",
        charts=_cohort_charts(t, result),
        offsets=[t("cohorts.offset_n", n=k) for k in range(result.months + 1)],
        category_label=lambda c: _category_label(t, c),
        gap_label=lambda b: _gap_label(t, b.min_days, b.max_days),
    )


@router.get("/analytics/cohorts.csv")
def cohorts_csv(request: Request, viewer: CurrentViewer) -> Response:
    """The page's tables as CSV: ``part=retention`` (default), ``time-between`` or ``categories``."""
    t = translator(viewer.lang)
    part = request.query_params.get("part") or "retention"
    if part not in ("retention", "time-between", "categories"):
        raise ValidationError(f"unknown part '{part}'", field="part")
    result = service.cohorts(actor=viewer.actor, spec=_cohort_spec(request), database_url=database_url(request))
    if part == "retention":
        rows = cohort_analysis.retention_rows(result)
    elif part == "time-between":
        rows = [
            {"label": _gap_label(t, b.min_days, b.max_days), **row}
            for b, row in zip(result.time_between.buckets, cohort_analysis.time_between_rows(result), strict=True)
        ]
    else:
        rows = [
            {**row, "label": _category_label(t, c.category)}
            for c, row in zip(result.categories, cohort_analysis.category_rows(result), strict=True)
        ]
    return _csv(rows, f"cohorts-{part}.csv")


# --- CTB (category / taste / brand) -----------------------------------------------------------------------------

CTB_CHART_VALUES = 20  # bars drawn at most; the table beside the chart lists every value


def _ctb_spec(request: Request) -> CTBSpec:
    q = request.query_params
    dimension = q.get("dimension") or "category"
    if dimension not in DIMENSIONS:
        raise ValidationError(f"unknown dimension '{dimension}'", field="dimension", key="error.ctb_dimension")
    half_life = q.get("half_life_days") or "180"
    try:
        days = float(half_life)
    except ValueError as exc:
        raise ValidationError(
            f"'{half_life}' is not a number", field="half_life_days", key="error.float_parsing"
        ) from exc
    try:
        return CTBSpec(
            dimension=dimension, start=_day(q.get("from"), "from"), end=_day(q.get("to"), "to"), half_life_days=days
        )
    except PydanticValidationError as exc:
        first = exc.errors()[0]
        raise ValidationError(str(first["msg"]), field=str(first["loc"][0])) from exc


def _likely_spec(request: Request, spec: CTBSpec) -> LikelySpec:
    return LikelySpec(**spec.model_dump(), value=request.query_params.get("likely", ""))


def _ctb_label(t: Any, value: str | None) -> str:
    return t("ctb.uncategorised") if value is None else value


def _group_label(t: Any, value: str) -> str:
    return t("ctb.other") if value == OTHER else value


CTB_FORM = ("dimension", "from", "to", "half_life_days")


@router.get("/analytics/ctb")
def ctb_page(request: Request, viewer: CurrentViewer) -> Response:
    t = translator(viewer.lang)
    form = {k: request.query_params.get(k, "") for k in CTB_FORM}
    chosen = request.query_params.get("likely", "")
    try:
        spec = _ctb_spec(request)
        result = service.ctb(actor=viewer.actor, spec=spec, database_url=database_url(request))
    except KizunaError as exc:
        return _refused(request, viewer, "analytics/ctb.html", form, exc)
    likely, likely_error = None, ""
    if chosen:
        try:
            spec_likely = _likely_spec(request, spec)
            likely = service.ctb_likely(actor=viewer.actor, spec=spec_likely, database_url=database_url(request))
        except PydanticValidationError as exc:
            likely_error = str(exc.errors()[0]["msg"])
        except KizunaError as exc:
            if exc.status_code in (401, 403):
                raise
            likely_error = translate_error(t, viewer.lang, exc)
    shown = result.values[:CTB_CHART_VALUES]
    chart = {
        "data": [
            {
                "type": "bar",
                "x": [_ctb_label(t, v.value) for v in shown],
                "y": [round(v.share * 100, 2) for v in shown],
                "name": t("analytics.share"),
                "marker": {"color": "#2b5fd9"},
            }
        ],
        "layout": {
            "xaxis": {"title": {"text": t(f"ctb.dimension.{spec.dimension}")}, "type": "category", "automargin": True},
            "yaxis": {"title": {"text": "%"}, "rangemode": "tozero"},
            "margin": {"t": 10, "r": 10, "b": 60, "l": 50},
            "height": 340,
        },
    }
    return render(
        request,
        "analytics/ctb.html",
        viewer,
        form=form,
        result=result,
        error="",
        chart=chart,
        chosen=chosen,
        likely=likely,
        likely_error=likely_error,
        label=lambda v: _ctb_label(t, v),
        group_label=lambda v: _group_label(t, v),
        dimensions=DIMENSIONS,
    )


@router.get("/analytics/ctb.csv")
def ctb_csv(request: Request, viewer: CurrentViewer) -> Response:
    result = service.ctb(actor=viewer.actor, spec=_ctb_spec(request), database_url=database_url(request))
    rows = [
        {
            **v.model_dump(mode="json"),
            "value": v.value if v.value is not None else "",
            "share": round(v.share, 6),
            "dimension": result.spec.dimension,
            "currency": result.currency,
        }
        for v in result.values
    ]
    return _csv(rows, f"ctb-{result.spec.dimension}-{result.as_of}.csv")


@router.get("/analytics/ctb/groups.csv")
def ctb_groups_csv(request: Request, viewer: CurrentViewer) -> Response:
    result = service.ctb(actor=viewer.actor, spec=_ctb_spec(request), database_url=database_url(request))
    rows = [
        {
            "group": g.group,
            "customers": g.customers,
            f"revenue_{result.currency}": str(g.revenue),
            **{d: "; ".join(f"{v.value} {v.share:.4f}" for v in getattr(g, d)) for d in DIMENSIONS},
        }
        for g in result.groups
    ]
    return _csv(rows, f"ctb-groups-{result.as_of}.csv")


@router.get("/analytics/ctb/likely.csv")
def ctb_likely_csv(request: Request, viewer: CurrentViewer) -> Response:
    try:
        spec = _likely_spec(request, _ctb_spec(request))
    except PydanticValidationError as exc:
        raise ValidationError(str(exc.errors()[0]["msg"]), field="likely") from exc
    result = service.ctb_likely(actor=viewer.actor, spec=spec, database_url=database_url(request))
    rows = [{"rank": n, **c.model_dump(mode="json")} for n, c in enumerate(result.customers, start=1)]
    return _csv(rows, f"ctb-likely-{spec.dimension}.csv")


# --- CLV and churn risk ------------------------------------------------------------------------------------------

CLV_FORM = ("calibration_end", "time_unit", "horizon", "discount")


def _number(raw: str | None, field: str) -> float | None:
    if not raw:
        return None
    try:
        return float(raw)
    except ValueError as exc:
        raise ValidationError(f"'{raw}' is not a number", field=field, key="error.float_parsing") from exc


def _clv_spec(request: Request, top: int = 20) -> CLVSpec:
    q = request.query_params
    # The page asks for the monthly discount in percent (1 = 1%), as marketers quote it.
    discount = _number(q.get("discount"), "discount")
    try:
        return CLVSpec(
            calibration_end=_day(q.get("calibration_end"), "calibration_end"),
            time_unit=q.get("time_unit") or "week",
            horizon=_number(q.get("horizon"), "horizon"),
            discount_rate=discount / 100 if discount is not None else 0.01,
            top=top,
        )
    except PydanticValidationError as exc:
        first = exc.errors()[0]
        # The horizon's limit depends on the unit, so the spec checks it as a whole (an error without a field).
        name = str(first["loc"][0]) if first["loc"] else "horizon"
        field = {"discount_rate": "discount"}.get(name, name)
        if first["type"] == "literal_error":
            key, params = "error.literal_error", {"expected": "day, week"}
        else:
            key, params = "error.clv_out_of_range", {}
        raise ValidationError(str(first["msg"]), field=field, key=key, params=params) from exc


@router.get("/analytics/clv")
def clv_page(request: Request, viewer: CurrentViewer) -> Response:
    t = translator(viewer.lang)
    form = {k: request.query_params.get(k, "") for k in CLV_FORM}
    try:
        result = service.clv(actor=viewer.actor, spec=_clv_spec(request), database_url=database_url(request))
    except KizunaError as exc:
        return _refused(request, viewer, "analytics/clv.html", form, exc)
    names = [str(d.decile) for d in result.deciles]
    decile_chart = {
        "data": [
            {
                "type": "bar",
                "x": names,
                "y": [float(d.clv) for d in result.deciles],
                "name": t("clv.total_clv"),
                "marker": {"color": "#2b5fd9"},
            }
        ],
        "layout": {
            "xaxis": {"title": {"text": t("analytics.decile")}, "type": "category"},
            "yaxis": {"title": {"text": f"{t('clv.total_clv')} ({result.currency})"}, "rangemode": "tozero"},
            "margin": {"t": 10, "r": 10, "b": 50, "l": 70},
            "height": 320,
        },
    }
    alive_chart = {
        "data": [
            {
                "type": "bar",
                "x": [f"{b.lower:.1f}–{b.upper:.1f}" for b in result.p_alive_bins],
                "y": [b.customers for b in result.p_alive_bins],
                "name": t("analytics.customers"),
                "marker": {"color": "#a15c00"},
            }
        ],
        "layout": {
            "xaxis": {"title": {"text": t("clv.p_alive")}, "type": "category"},
            "yaxis": {"title": {"text": t("analytics.customers")}, "rangemode": "tozero"},
            "margin": {"t": 10, "r": 10, "b": 60, "l": 60},
            "height": 320,
        },
    }
    return render(
        request,
        "analytics/clv.html",
        viewer,
        form=form,
        result=result,
        error="",
        chart=decile_chart,
        alive_chart=alive_chart,
    )


@router.get("/analytics/clv.csv")
def clv_csv(request: Request, viewer: CurrentViewer) -> Response:
    """The CLV-by-decile chart's numbers."""
    result = service.clv(actor=viewer.actor, spec=_clv_spec(request), database_url=database_url(request))
    rows = [
        {**d.model_dump(mode="json"), "average_p_alive": round(d.average_p_alive, 6), "currency": result.currency}
        for d in result.deciles
    ]
    return _csv(rows, f"clv-deciles-{result.calibration_end}.csv")


@router.get("/analytics/clv-alive.csv")
def clv_alive_csv(request: Request, viewer: CurrentViewer) -> Response:
    """The P(alive) chart's numbers."""
    result = service.clv(actor=viewer.actor, spec=_clv_spec(request), database_url=database_url(request))
    return _csv([b.model_dump(mode="json") for b in result.p_alive_bins], f"clv-p-alive-{result.calibration_end}.csv")


@router.get("/analytics/clv-customers.csv")
def clv_customers_csv(request: Request, viewer: CurrentViewer) -> Response:
    """Every customer's row (expected purchases, P(alive), churn risk, expected spend, CLV)."""
    params, rows = service.clv_customers(
        actor=viewer.actor, spec=_clv_spec(request), database_url=database_url(request)
    )
    out = [{**r.model_dump(mode="json"), "currency": params.currency} for r in rows]
    return _csv(out, f"clv-customers-{params.calibration_end}.csv")
