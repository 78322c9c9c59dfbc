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
from starlette.responses import FileResponse, RedirectResponse, Response

from kizuna.analytics import service
from kizuna.analytics.clv import CLVSpec
from kizuna.analytics.deciles import DecileSpec
from kizuna.analytics.rfm import SEGMENTS, RFMSpec
from kizuna.errors import KizunaError, ValidationError
from kizuna.web.deps import database_url
from kizuna.web.forms import translate_error
from kizuna.web.i18n import translator
from kizuna.web.session import CurrentViewer, Viewer
from kizuna.web.ui_base import render, ui_router

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
def rfm_page(request: Request, viewer: CurrentViewer) -> Response:
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
                "colorscale": "Blues",
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
    )


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
