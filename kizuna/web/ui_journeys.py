"""Journey pages: the list, a new journey, the flow-diagram builder (journeys.js draws the draft as boxes and
arrows, edits each step in a side panel and posts the definition back; without the script the definition's JSON
is edited in a text area), and the numbers: funnel, Sankey of paths, per-step table and the A/B test, each chart
with its table and a CSV beside it."""

from __future__ import annotations

import csv
import io
import json
import re
from typing import Any

from fastapi import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from kizuna.errors import KizunaError, ValidationError
from kizuna.journeys import builder, service
from kizuna.journeys import stats as journey_stats
from kizuna.journeys.definition import JourneyDefinitionError, Problem
from kizuna.web.deps import DB
from kizuna.web.forms import translate, translate_error
from kizuna.web.i18n import translator
from kizuna.web.session import CurrentViewer, PostingViewer, Viewer
from kizuna.web.ui_base import render, ui_router, with_notice

router = ui_router()


def _problem_text(t: Any, lang: str, problem: Problem | dict[str, Any]) -> dict[str, Any]:
    p = problem if isinstance(problem, dict) else {**problem.as_dict(), "params": problem.params}
    params = {"step": p.get("step") or "", "path": p["path"], "problem": p["message"], **(p.get("params") or {})}
    text = translate(t, lang, f"journeys.problem.{p['code']}", params, p["message"])
    return {"step": p.get("step"), "path": p["path"], "code": p["code"], "message": text}


def _problems(viewer: Viewer, exc: KizunaError) -> list[dict[str, Any]]:
    t = translator(viewer.lang)
    if isinstance(exc, JourneyDefinitionError):
        return [_problem_text(t, viewer.lang, p) for p in exc.problems]
    return [{"step": None, "path": exc.field or "", "code": "other", "message": translate_error(t, viewer.lang, exc)}]


def _wants_json(request: Request) -> bool:
    return "application/json" in request.headers.get("accept", "")


async def _definition(request: Request) -> Any:
    form = await request.form()
    raw = str(form.get("definition", ""))
    try:
        return json.loads(raw)
    except ValueError:
        return raw  # parse_definition says where the JSON breaks


# --- list and new --------------------------------------------------------------------------------------------


@router.get("/journeys")
def journeys_list(request: Request, viewer: CurrentViewer, session: DB) -> Response:
    rows = builder.list_page(session, actor=viewer.actor)
    return render(request, "journeys/list.html", viewer, rows=rows)


@router.get("/journeys/new")
def journey_new(request: Request, viewer: CurrentViewer) -> Response:
    return render(request, "journeys/new.html", viewer, name="", error="")


@router.post("/journeys/new")
async def journey_create(request: Request, viewer: PostingViewer, session: DB) -> Response:
    form = await request.form()
    name = str(form.get("name", "")).strip()
    try:
        if not name:
            raise ValidationError("give the journey a name", field="name", key="journeys.name_required")
        journey = service.create_journey(session, actor=viewer.actor, definition=service.starter(name))
        session.commit()
    except KizunaError as exc:
        session.rollback()
        if exc.status_code in (401, 403):
            raise
        message = "; ".join(p["message"] for p in _problems(viewer, exc))
        return render(request, "journeys/new.html", viewer, status=422, name=name, error=message)
    return with_notice(RedirectResponse(f"/journeys/{journey.id}", status_code=303), "created")


# --- the builder ---------------------------------------------------------------------------------------------


def _builder_data(viewer: Viewer, page: builder.BuilderPage) -> dict[str, Any]:
    t = translator(viewer.lang)
    journey = page.journey
    return {
        "id": journey.id,
        "definition": journey.draft,
        "counts": journey_stats.step_counts(page.stats),
        "choices": page.choices,
        "editable": viewer.actor.can("journeys:write") and journey.status != "archived",
        "urls": {
            "save": f"/journeys/{journey.id}/draft",
            "validate": f"/journeys/{journey.id}/validate",
            "publish": f"/journeys/{journey.id}/publish",
            "counts": f"/journeys/{journey.id}/counts",
        },
        "text": {k: t(f"journeys.ui.{k}") for k in _TEXT_KEYS}
        | {f"type_{k}": t(f"journeys.type.{k}") for k in page.choices["types"]}
        | {f"trigger_{k}": t(f"journeys.trigger.{k}") for k in _TRIGGERS},
    }


_TRIGGERS = ("manual", "event", "segment_entered", "segment_exited", "date", "dormancy")
_TEXT_KEYS = (
    "trigger", "start", "next", "yes", "no", "holdout", "variant", "weight", "name", "add_variant", "remove",
    "entered", "waiting", "completed", "dropped", "sent", "settings", "delete_step", "make_start", "label", "id",
    "duration", "days", "hours", "minutes", "until", "wait_mode", "wait_for", "wait_until", "condition",
    "condition_help", "channel", "template", "kind", "tags_add", "tags_remove", "tags_help", "attributes",
    "attributes_help", "event", "properties", "properties_help", "include_backfill", "include_initial", "segment",
    "attribute", "offset_days", "at", "yearly", "dormant_days", "reentry", "reentry_never", "reentry_after_exit",
    "reentry_after_days", "goal_event", "goal_days", "journey_name", "description", "saved", "save_failed",
    "problems", "no_problems", "valid", "connect_hint", "ends_here", "none", "select_step", "published",
    "diagram_label", "step_label", "marketing", "service", "counts_live", "no_template",
)  # fmt: skip


@router.get("/journeys/{journey_id}")
def journey_page(request: Request, viewer: CurrentViewer, session: DB, journey_id: int) -> Response:
    page = builder.builder_page(session, journey_id, actor=viewer.actor)
    order = [s.step for s in page.stats.steps]
    return render(
        request,
        "journeys/show.html",
        viewer,
        page=page,
        journey=page.journey,
        steps=page.stats.steps,
        order=order,
        data=_builder_data(viewer, page),
        definition_json=json.dumps(page.journey.draft, ensure_ascii=False, indent=2),
        problems=[],
    )


@router.get("/journeys/{journey_id}/counts")
def journey_counts(viewer: CurrentViewer, session: DB, journey_id: int) -> Response:
    """Each step's live numbers, polled by the diagram."""
    found = journey_stats.journey_stats(session, journey_id, actor=viewer.actor)
    return JSONResponse({"counts": journey_stats.step_counts(found), "statuses": found.statuses})


@router.post("/journeys/{journey_id}/draft")
async def journey_save(request: Request, viewer: PostingViewer, session: DB, journey_id: int) -> Response:
    raw = await _definition(request)
    try:
        service.update_draft(session, journey_id, actor=viewer.actor, definition=raw)
        session.commit()
    except KizunaError as exc:
        session.rollback()
        if exc.status_code in (401, 403, 404):
            raise
        problems = _problems(viewer, exc)
        if _wants_json(request):
            return JSONResponse({"ok": False, "problems": problems}, status_code=422)
        page = builder.builder_page(session, journey_id, actor=viewer.actor)
        return render(
            request,
            "journeys/show.html",
            viewer,
            status=422,
            page=page,
            journey=page.journey,
            steps=page.stats.steps,
            order=[s.step for s in page.stats.steps],
            data=_builder_data(viewer, page),
            definition_json=raw if isinstance(raw, str) else json.dumps(raw, ensure_ascii=False, indent=2),
            problems=problems,
        )
    if _wants_json(request):
        return JSONResponse({"ok": True, "problems": []})
    return with_notice(RedirectResponse(f"/journeys/{journey_id}", status_code=303), "saved")


@router.post("/journeys/{journey_id}/validate")
async def journey_validate(request: Request, viewer: PostingViewer, session: DB, journey_id: int) -> Response:
    service.get_journey(session, journey_id, actor=viewer.actor)
    t = translator(viewer.lang)
    found = service.validate(session, await _definition(request), actor=viewer.actor)
    return JSONResponse({"ok": not found, "problems": [_problem_text(t, viewer.lang, p) for p in found]})


@router.post("/journeys/{journey_id}/publish")
async def journey_publish(request: Request, viewer: PostingViewer, session: DB, journey_id: int) -> Response:
    """Save the posted definition (when one is posted) and publish it."""
    form = await request.form()
    try:
        if form.get("definition"):
            service.update_draft(session, journey_id, actor=viewer.actor, definition=await _definition(request))
        version = service.publish(session, journey_id, actor=viewer.actor)
        session.commit()
    except KizunaError as exc:
        session.rollback()
        if exc.status_code in (401, 403, 404):
            raise
        if _wants_json(request):
            return JSONResponse({"ok": False, "problems": _problems(viewer, exc)}, status_code=422)
        raise
    if _wants_json(request):
        return JSONResponse({"ok": True, "version": version.version})
    return with_notice(RedirectResponse(f"/journeys/{journey_id}", status_code=303), "journey_published")


@router.post("/journeys/{journey_id}/status")
async def journey_status(request: Request, viewer: PostingViewer, session: DB, journey_id: int) -> Response:
    form = await request.form()
    action = str(form.get("action", ""))
    change = {"pause": service.pause, "resume": service.resume, "archive": service.archive}.get(action)
    if change is None:
        raise ValidationError(f"unknown action '{action}'", field="action")
    change(session, journey_id, actor=viewer.actor)
    session.commit()
    return with_notice(RedirectResponse(f"/journeys/{journey_id}", status_code=303), "journey_status")


@router.post("/journeys/{journey_id}/enroll")
async def journey_enroll(request: Request, viewer: PostingViewer, session: DB, journey_id: int) -> Response:
    """Enrol customers by id (typed or pasted, separated by commas, spaces or lines)."""
    form = await request.form()
    text = str(form.get("customer_ids", ""))
    parts = [p for p in re.split(r"[\s,、，]+", text) if p]
    if not parts or not all(p.isdigit() for p in parts):
        raise ValidationError(
            "give customer ids (numbers) separated by commas or lines",
            field="customer_ids",
            key="journeys.enroll_ids_error",
        )
    service.enroll_customers(session, journey_id, actor=viewer.actor, customer_ids=[int(p) for p in parts])
    session.commit()
    return with_notice(RedirectResponse(f"/journeys/{journey_id}", status_code=303), "journey_enrolled")


# --- the numbers ---------------------------------------------------------------------------------------------


def _step_name(t: Any, s: journey_stats.StepStats) -> str:
    kind = t(f"journeys.type.{s.type}") if s.type else ""
    return f"{s.label or s.step} ({kind})" if kind else (s.label or s.step)


def _charts(t: Any, found: journey_stats.JourneyStats) -> dict[str, Any]:
    steps = [s for s in found.steps if s.type]
    names = {s.step: _step_name(t, s) for s in found.steps}
    funnel = {
        "data": [
            {
                "type": "funnel",
                "y": [names[s.step] for s in steps],
                "x": [s.entered for s in steps],
                "textinfo": "value+percent initial",
                "marker": {"color": "#2b5fd9"},
            }
        ],
        "layout": {"margin": {"t": 10, "r": 10, "b": 30, "l": 140}, "height": max(240, 48 * len(steps) + 60)},
    }
    outcomes = [("converted", t("journeys.status.converted")), ("failed", t("journeys.status.failed")),
                ("exited", t("journeys.status.exited"))]  # fmt: skip
    labels = [names[s.step] for s in found.steps] + [label for _, label in outcomes]
    index = {s.step: i for i, s in enumerate(found.steps)}
    source, target, value = [], [], []
    for src, dst, count in found.links:
        if src in index and dst in index:
            source.append(index[src])
            target.append(index[dst])
            value.append(count)
    for n, (status, _) in enumerate(outcomes):
        for s in found.steps:
            count = getattr(s, status)
            if count:
                source.append(index[s.step])
                target.append(len(found.steps) + n)
                value.append(count)
    sankey = {
        "data": [
            {
                "type": "sankey",
                "arrangement": "snap",
                "node": {"label": labels, "pad": 14, "thickness": 14, "color": "#9db4ec"},
                "link": {"source": source, "target": target, "value": value, "color": "rgba(43,95,217,0.25)"},
            }
        ],
        "layout": {"margin": {"t": 10, "r": 10, "b": 10, "l": 10}, "height": 360},
    }
    return {"funnel": funnel, "sankey": sankey, "has_paths": bool(value)}


@router.get("/journeys/{journey_id}/stats")
def journey_stats_page(request: Request, viewer: CurrentViewer, session: DB, journey_id: int) -> Response:
    found = journey_stats.journey_stats(session, journey_id, actor=viewer.actor)
    t = translator(viewer.lang)
    names = {s.step: _step_name(t, s) for s in found.steps}
    return render(
        request,
        "journeys/stats.html",
        viewer,
        journey_id=journey_id,
        found=found,
        names=names,
        charts=_charts(t, found),
    )


def _csv(rows: list[dict[str, Any]], name: str, fields: list[str]) -> Response:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fields)
    writer.writeheader()
    writer.writerows(rows)
    return Response(
        "\ufeff" + buffer.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@router.get("/journeys/{journey_id}/steps.csv")
def journey_steps_csv(viewer: CurrentViewer, session: DB, journey_id: int) -> Response:
    """The funnel's and the per-step table's numbers."""
    found = journey_stats.journey_stats(session, journey_id, actor=viewer.actor)
    rows = []
    for s in found.steps:
        row = {k: getattr(s, k) for k in ("step", "type", "entered", "waiting", "due", "completed", "failed")}
        row.update(exited=s.exited, converted=s.converted, dropped=s.dropped)
        row.update({f"messages_{k}": (s.messages or {}).get(k, "") for k in journey_stats.SEND_FIELDS})
        rows.append(row)
    fields = ["step", "type", "entered", "waiting", "due", "completed", "failed", "exited", "converted", "dropped"]
    return _csv(rows, f"journey-{journey_id}-steps.csv", fields + [f"messages_{k}" for k in journey_stats.SEND_FIELDS])


@router.get("/journeys/{journey_id}/paths.csv")
def journey_paths_csv(viewer: CurrentViewer, session: DB, journey_id: int) -> Response:
    """The Sankey's numbers: how many customers went from each step to the next."""
    found = journey_stats.journey_stats(session, journey_id, actor=viewer.actor)
    rows = [{"from_step": a, "to_step": b, "customers": n} for a, b, n in found.links]
    return _csv(rows, f"journey-{journey_id}-paths.csv", ["from_step", "to_step", "customers"])


@router.get("/journeys/{journey_id}/variants.csv")
def journey_variants_csv(viewer: CurrentViewer, session: DB, journey_id: int) -> Response:
    """The A/B test: per variant customers, successes, rate and p-value against the first; the holdout last."""
    found = journey_stats.journey_stats(session, journey_id, actor=viewer.actor)
    groups = list(found.variants) + ([found.uplift.holdout] if found.uplift else [])
    rows = [
        {
            "variant": v.name,
            "customers": v.customers,
            found.metric: v.successes,
            "rate": round(v.rate, 6),
            "sent": v.sent,
            "opened": v.opened,
            "clicked": v.clicked,
            "p_value": "" if v.p_value is None else round(v.p_value, 6),
        }
        for v in groups
    ]
    fields = ["variant", "customers", found.metric, "rate", "sent", "opened", "clicked", "p_value"]
    return _csv(rows, f"journey-{journey_id}-variants.csv", fields)
