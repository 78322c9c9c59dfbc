"""The deal list (/deals): filters, paging, the user's saved views (the customers list's mechanism, with
``list_name="deals"``) and the CSV export of the filtered list (the export service, like the customer export)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi import Request
from sqlalchemy.orm import Session
from starlette.responses import RedirectResponse, Response

from kizuna.customers import edits, saved_views
from kizuna.customers.schemas import SavedViewCreate
from kizuna.errors import ValidationError
from kizuna.fields.filters import form_params as custom_form_params
from kizuna.sales import pipelines, summary
from kizuna.sales.filters import deal_form_params
from kizuna.web import custom_fields
from kizuna.web.deps import DB
from kizuna.web.forms import FormState, submit
from kizuna.web.i18n import translator
from kizuna.web.session import CurrentViewer, PostingViewer, Viewer
from kizuna.web.ui_base import query_string, render, ui_router
from kizuna.web.ui_sales import LIST_FIELDS, Posted

router = ui_router()


def _deal_list_page(
    request: Request, session: Session, viewer: Viewer, *, view_form: FormState | None = None, status: int = 200
) -> Response:
    query = request.query_params
    form = {name: query.get(name, "") for name in LIST_FIELDS} | custom_form_params(query.keys(), query)
    sort = query.get("sort") or ""
    params = deal_form_params(form)
    error = None
    try:
        lines, next_cursor = summary.deal_list(
            session, actor=viewer.actor, params=params, sort=sort or "expected_close_date", cursor=query.get("cursor")
        )
    except ValidationError as exc:
        # A filter the list cannot apply (a custom number filter of "abc") is named above the empty list.
        session.rollback()
        lines, next_cursor, error = [], None, exc.message
    all_pipelines = pipelines.list_pipelines(session)
    session.commit()
    stages = [(s, p) for p in all_pipelines for s in pipelines.stages_of(session, p.id)]
    state = {k: v for k, v in {**form, "sort": sort}.items() if v}
    views = saved_views.list_views(session, actor=viewer.actor, list_name="deals") if viewer.actor.user_id else []
    return render(
        request,
        "sales/list.html",
        viewer,
        status=422 if error else status,
        error=error,
        **custom_fields.page_context(session, "deal"),
        form=FormState(values=form),
        filter_values=form,
        deals=lines,
        next_cursor=next_cursor,
        pipelines=all_pipelines,
        stages=stages,
        owners=edits.assignable_users(session),
        params={k: v for k, v in form.items() if v},
        state=state,
        views=[(v, query_string(v.params), v.params == state) for v in views],
        view_form=view_form or FormState(values={"name": ""}),
    )


@router.get("/deals")
def deal_list(request: Request, session: DB, viewer: CurrentViewer) -> Response:
    if not request.query_params and viewer.actor.user_id is not None:
        # The list opens with the user's default view, under its own address (``?reset=1`` opens it plain).
        default = saved_views.default_view(session, actor=viewer.actor, list_name="deals")
        if default is not None:
            return RedirectResponse("/deals" + query_string(default.params), status_code=302)
    return _deal_list_page(request, session, viewer)


@router.post("/deals/views")
def create_deal_view(request: Request, session: DB, viewer: PostingViewer, posted: Posted) -> Response:
    """Save the deal list's current filters and sort (the form's hidden fields) as one of the user's views; the
    views are the customers list's mechanism (kizuna/customers/saved_views.py) with ``list_name="deals"``."""
    name = str(posted.get("name", ""))
    params = {k: str(posted.get(k, "")) for k in (*LIST_FIELDS, "sort") if posted.get(k)}
    params.update(custom_form_params(posted.keys(), posted))
    state = FormState(values={"name": name})
    t = translator(viewer.lang)

    def save() -> Any:
        data = SavedViewCreate(name=name, list_name="deals", params=params, columns=None)
        return saved_views.create_view(session, actor=viewer.actor, data=data)

    view = submit(state, t, viewer.lang, save)
    if view is None:
        session.rollback()
        request.scope["query_string"] = query_string(params).lstrip("?").encode()
        return _deal_list_page(request, session, viewer, view_form=state, status=422)
    session.commit()
    return RedirectResponse("/deals" + query_string(view.params), status_code=303)


@router.post("/deals/export.csv")
def export_deals(session: DB, viewer: PostingViewer, posted: Posted) -> Response:
    """The filtered deal list as CSV, through the export service (``data:export``, audited, formula cells
    neutralised) and the same filter set as the list. A POST with the CSRF token, like the customer export."""
    from kizuna.exports import service as exports

    form = {k: str(posted.get(k, "")).strip() for k in (*LIST_FIELDS, "sort")}
    form |= custom_form_params(posted.keys(), posted)
    params = deal_form_params({k: v for k, v in form.items() if v})
    params.setdefault("sort", "expected_close_date")
    content, media_type = exports.export(session, actor=viewer.actor, kind="deals", params=params, fmt="csv")
    session.commit()
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%d-%H%M%S")
    return Response(
        content, media_type=media_type, headers={"Content-Disposition": f'attachment; filename="deals-{stamp}.csv"'}
    )
