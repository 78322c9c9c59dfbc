"""Segment pages: the list, the builder (live count and sample from the preview) and a segment's members and
entry/exit history with a refresh button. The builder's script posts the rule to ``/segments/preview`` with the
form's CSRF token; without the script the rule's JSON is edited in the form's text area."""

from __future__ import annotations

import json
from typing import Any

from fastapi import Request
from sqlalchemy.orm import Session
from starlette.responses import JSONResponse, RedirectResponse, Response

from kizuna.customers.edits import assignable_users
from kizuna.db import new_session
from kizuna.errors import KizunaError
from kizuna.segments import service
from kizuna.segments.rules import ORDER_METRICS
from kizuna.segments.schedule import ensure_scheduled
from kizuna.segments.schemas import SegmentCreate
from kizuna.web import custom_fields
from kizuna.web.deps import DB
from kizuna.web.forms import translate_error
from kizuna.web.i18n import translator
from kizuna.web.session import CurrentViewer, PostingViewer, Viewer
from kizuna.web.ui_base import render, ui_router

router = ui_router()

# The builder's fields: (value, kind). Kinds decide the operators and the value input (segments.js).
BUILDER_FIELDS: list[tuple[str, str]] = [
    ("attribute:prefecture", "text"),
    ("attribute:city", "text"),
    ("attribute:gender", "text"),
    ("attribute:lifecycle_stage", "text"),
    ("attribute:email", "text"),
    ("attribute:created_at", "days"),
    ("tag", "tag"),
    ("consent:email", "consent"),
    ("event", "event"),
    *((f"orders:{m}", "days" if m == "last_order_date" else "number") for m in ORDER_METRICS),
    ("bought:category", "bought"),
    ("bought:brand", "bought"),
    ("metric:rfm_segment", "rfm"),
    ("metric:decile", "number"),
    ("metric:clv", "number"),
    ("metric:churn_risk", "number"),
]
OPS = {
    "text": ["eq", "ne", "contains", "starts_with", "is_empty", "is_not_empty"],
    "number": ["gte", "gt", "lte", "lt", "eq", "ne"],
    "days": ["within", "before"],
    "rfm": ["eq", "ne"],
    "tag": ["has", "has_not"],
    "consent": ["has", "has_not"],
    "event": ["did", "did_not"],
    "bought": ["did", "did_not"],
    # Custom fields of customers (attributes.<key>), by their type:
    "date": ["on_or_after", "on_or_before", "eq", "is_empty", "is_not_empty"],
    "choice": ["eq", "ne", "is_empty", "is_not_empty"],
    "multi": ["has", "has_not", "is_empty", "is_not_empty"],
}
# A custom field's type as the builder's kind (user fields pick a user, as a choice of ids).
CUSTOM_KINDS = {"number": "number", "date": "date", "choice": "choice", "multi_choice": "multi", "user": "choice"}


def _builder(viewer: Viewer, session: Session) -> dict[str, Any]:
    from kizuna.analytics.rfm import SEGMENTS

    t = translator(viewer.lang)
    return {
        # RFM segments are stored by code; the builder shows their names in the user's language.
        "rfm": [{"value": code, "label": t(f"analytics.segment.{code}")} for code in SEGMENTS],
        "fields": [
            *({"value": v, "kind": k, "label": t(f"segments.field.{v.replace(':', '_')}")} for v, k in BUILDER_FIELDS),
            *_custom_fields(session, viewer.lang),
        ],
        "ops": {kind: [{"value": op, "label": t(f"segments.op.{op}")} for op in ops] for kind, ops in OPS.items()},
        "text": {
            "remove": t("segments.remove"),
            "value": t("segments.value"),
            "days": t("segments.days"),
            "field": t("segments.field_label"),
            "op": t("segments.op_label"),
            "count": t("segments.live_count"),
            "error": t("segments.preview_failed"),
        },
    }


def _custom_fields(session: Session, lang: str) -> list[dict[str, Any]]:
    """The customers' custom fields as builder fields (``attributes.<key>`` rules, typed by the field)."""
    fields = custom_fields.definitions(session, "customer")
    users = assignable_users(session) if any(f.type == "user" for f in fields) else []
    out = []
    for field in fields:
        item: dict[str, Any] = {
            "value": f"attribute:attributes.{field.key}",
            "kind": CUSTOM_KINDS.get(field.type, "text"),
            "label": custom_fields.label(field, lang),
        }
        if field.type in ("choice", "multi_choice"):
            item["choices"] = [{"value": c, "label": c} for c in field.choices]
        elif field.type == "user":
            item["choices"] = [{"value": uid, "label": name} for uid, name in users]
        out.append(item)
    return out


@router.get("/segments")
def segments_list(request: Request, viewer: CurrentViewer, session: DB) -> Response:
    rows = service.list_segments(session, actor=viewer.actor)
    return render(request, "segments/list.html", viewer, section="segments", segments=rows)


@router.get("/segments/new")
def segment_new(request: Request, viewer: CurrentViewer, session: DB) -> Response:
    return render(
        request,
        "segments/new.html",
        viewer,
        section="segments",
        form={"name": "", "description": "", "rule": ""},
        builder=_builder(viewer, session),
        error="",
    )


@router.post("/segments/preview")
async def segment_preview(request: Request, viewer: PostingViewer) -> Response:
    """The builder's live count: {count, sample} for the posted rule, or {error} in the user's language."""
    form = await request.form()
    session = new_session(request.app.state.engine)
    try:
        found = service.preview(session, str(form.get("rule", "")), actor=viewer.actor)
    except KizunaError as exc:
        if exc.status_code in (401, 403):
            raise
        message = translate_error(translator(viewer.lang), viewer.lang, exc)
        return JSONResponse({"error": message}, status_code=422)
    finally:
        session.close()
    sample = [{"id": c.id, "name": c.full_name or c.email or f"#{c.id}"} for c in found.sample]
    return JSONResponse({"count": found.count, "sample": sample})


@router.post("/segments/new")
async def segment_create(request: Request, viewer: PostingViewer, session: DB) -> Response:
    form = await request.form()
    values = {k: str(form.get(k, "")) for k in ("name", "description", "rule")}
    try:
        rule = json.loads(values["rule"]) if values["rule"].strip() else None
    except ValueError:
        rule = values["rule"]  # parse_rule reports where the JSON breaks
    try:
        data = SegmentCreate(name=values["name"].strip(), description=values["description"], rule=rule)
        segment = service.create_segment(session, actor=viewer.actor, data=data)
        service.refresh(session, segment.id, actor=viewer.actor)
        ensure_scheduled(session)
        session.commit()
    except KizunaError as exc:
        session.rollback()
        if exc.status_code in (401, 403):
            raise
        message = translate_error(translator(viewer.lang), viewer.lang, exc)
        return render(
            request,
            "segments/new.html",
            viewer,
            status=422,
            section="segments",
            form=values,
            builder=_builder(viewer, session),
            error=message,
        )
    except ValueError as exc:  # Pydantic: an empty or too long name
        session.rollback()
        return render(
            request,
            "segments/new.html",
            viewer,
            status=422,
            section="segments",
            form=values,
            builder=_builder(viewer, session),
            error=translator(viewer.lang)("segments.name_required") if not values["name"].strip() else str(exc),
        )
    return RedirectResponse(f"/segments/{segment.id}", status_code=303)


@router.get("/segments/{segment_id}")
def segment_page(request: Request, viewer: CurrentViewer, session: DB, segment_id: int) -> Response:
    segment = service.get_segment(session, segment_id, actor=viewer.actor)
    rows, next_after = service.members(session, segment_id, actor=viewer.actor, limit=50)
    moves = service.history(session, segment_id, actor=viewer.actor, limit=50)
    return render(
        request,
        "segments/show.html",
        viewer,
        section="segments",
        segment=segment,
        members=rows,
        more=next_after is not None,
        history=moves,
        rule_json=json.dumps(segment.rule, ensure_ascii=False, indent=2) if segment.rule else "",
    )


@router.post("/segments/{segment_id}/refresh")
def segment_refresh(viewer: PostingViewer, session: DB, segment_id: int) -> Response:
    service.refresh(session, segment_id, actor=viewer.actor, full=True)
    session.commit()
    return RedirectResponse(f"/segments/{segment_id}", status_code=303)
