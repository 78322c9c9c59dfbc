"""The forecast page (/deals/forecast): the weighted pipeline by month, owner and stage, and win rates, each chart
drawn by plotly.js (served offline, see ui_analytics) with its numbers in the table beside it."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from starlette.responses import Response

from kizuna.customers import edits
from kizuna.errors import KizunaError
from kizuna.sales import forecast, pipelines
from kizuna.web.deps import DB
from kizuna.web.forms import translate_error
from kizuna.web.i18n import translator
from kizuna.web.session import CurrentViewer
from kizuna.web.ui_base import render, ui_router

router = ui_router()

FORM_FIELDS = ("from", "to", "pipeline_id", "owner_id", "currency")
# One colour per currency, in order of appearance (currencies are never stacked into one sum).
COLOURS = ("#2b5fd9", "#a15c00", "#1b7f4c", "#8a3ffc", "#c4314b")


def _layout(title: str, *, percent: bool = False, height: int = 300) -> dict[str, Any]:
    layout: dict[str, Any] = {
        "yaxis": {"title": {"text": title}, "rangemode": "tozero"},
        "xaxis": {"type": "category", "automargin": True},
        "margin": {"t": 10, "r": 10, "b": 60, "l": 60},
        "height": height,
        "barmode": "group",
        "legend": {"orientation": "h", "y": -0.3},
    }
    if percent:
        layout["yaxis"]["range"] = [0, 100]
    return layout


def _weighted_chart(rows: list[forecast.WeightedRow], label: Any, title: str) -> dict[str, Any]:
    """One bar trace per currency: the weighted amounts of each group."""
    currencies = list(dict.fromkeys(r.currency for r in rows))
    data = []
    for i, currency in enumerate(currencies):
        mine = [r for r in rows if r.currency == currency]
        data.append(
            {
                "type": "bar",
                "name": currency,
                "x": [label(r) for r in mine],
                "y": [float(r.weighted) for r in mine],
                "marker": {"color": COLOURS[i % len(COLOURS)]},
            }
        )
    return {"data": data, "layout": _layout(title)}


def _rate_chart(rows: list[forecast.ConversionRow], label: Any) -> dict[str, Any]:
    shown = [r for r in rows if r.win_rate is not None]
    return {
        "data": [
            {
                "type": "bar",
                "x": [label(r) for r in shown],
                "y": [round(r.win_rate * 100, 1) for r in shown],
                "marker": {"color": COLOURS[0]},
            }
        ],
        "layout": _layout("%", percent=True),
    }


@router.get("/deals/forecast")
def forecast_page(request: Request, session: DB, viewer: CurrentViewer) -> Response:
    t = translator(viewer.lang)
    form = {name: request.query_params.get(name, "") for name in FORM_FIELDS}
    all_pipelines = pipelines.list_pipelines(session)
    session.commit()  # the default pipeline, made on first use
    context: dict[str, Any] = {
        "form": form,
        "pipelines": all_pipelines,
        "owners": edits.assignable_users(session),
        "result": None,
        "error": "",
        "sections": [],
    }
    try:
        spec = forecast.spec_of(
            start=form["from"], end=form["to"], pipeline_id=form["pipeline_id"], owner_id=form["owner_id"],
            currency=form["currency"],
        )  # fmt: skip
        result = forecast.forecast(session, actor=viewer.actor, spec=spec)
    except KizunaError as exc:
        if exc.status_code in (401, 403):
            raise
        context["error"] = translate_error(t, viewer.lang, exc)
        return render(request, "sales/forecast.html", viewer, status=422, **context)
    lang = viewer.lang
    none = t("forecast.none")

    def stage(r: Any) -> str:
        return (r.label_en if lang == "en" and r.label_en else r.label) or none

    def named(rows: list, label: Any) -> list[tuple[str, Any]]:
        return [(label(r), r) for r in rows]

    def owner(r: Any) -> str:
        return r.label or none

    def month(r: Any) -> str:
        return r.key or none

    weighted = t("forecast.weighted")
    context["result"] = result
    context["sections"] = [
        {"key": "month", "kind": "weighted", "title": t("forecast.by_month"), "label": t("forecast.month"),
         "rows": named(result.by_month, month), "chart": _weighted_chart(result.by_month, month, weighted)},
        {"key": "owner", "kind": "weighted", "title": t("forecast.by_owner"), "label": t("sales.field.owner"),
         "rows": named(result.by_owner, owner), "chart": _weighted_chart(result.by_owner, owner, weighted)},
        {"key": "stage", "kind": "weighted", "title": t("forecast.by_stage"), "label": t("sales.field.stage"),
         "rows": named(result.by_stage, stage), "chart": _weighted_chart(result.by_stage, stage, weighted)},
        {"key": "stage-rate", "kind": "rate", "title": t("forecast.stage_rate"), "label": t("sales.field.stage"),
         "rows": named(result.stage_conversion, stage), "chart": _rate_chart(result.stage_conversion, stage)},
        {"key": "owner-rate", "kind": "rate", "title": t("forecast.owner_rate"), "label": t("sales.field.owner"),
         "rows": named(result.owner_performance, owner), "chart": _rate_chart(result.owner_performance, owner)},
    ]  # fmt: skip
    return render(request, "sales/forecast.html", viewer, **context)
