"""UI pages for customers and companies: the searchable list, exports, the customer 360 and notes."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import Form, Query, Request
from sqlalchemy.orm import Session
from starlette.datastructures import QueryParams
from starlette.responses import RedirectResponse, Response

from kizuna.auth.permissions import require
from kizuna.customers import service as customers
from kizuna.customers.filters import COMPANY_FILTERS, CUSTOMER_FILTERS
from kizuna.customers.schemas import NoteCreate
from kizuna.errors import ValidationError
from kizuna.listing import list_page
from kizuna.web.deps import DB
from kizuna.web.session import CurrentViewer, PostingViewer, Viewer
from kizuna.web.ui_base import TIMELINE_KINDS, render, ui_router

router = ui_router()

PAGE_SIZE = 50
STAGES = ("lead", "prospect", "customer", "former")
STATUSES = ("active", "merged", "all")
# The list form's fields, each mapped to a CUSTOMER_FILTERS parameter (exports receive the same mapping).
LIST_FIELDS = {
    "q": "q",
    "tag": "tag",
    "prefecture": "prefecture__contains",
    "lifecycle_stage": "lifecycle_stage",
    "email_consent": "email_consent",
    "company_id": "company_id",
}
SORTS = ("-id", "id", "full_name", "-full_name", "created_at", "-created_at")


def _form(query: QueryParams) -> dict[str, str]:
    """The list form as the user filled it in (what the page echoes back and links carry along)."""
    form = {name: query.get(name, "").strip() for name in (*LIST_FIELDS, "status", "sort")}
    return {k: v for k, v in form.items() if v}


def customer_params(form: dict[str, str]) -> dict[str, str]:
    """The CUSTOMER_FILTERS parameters for a list form (the filter set's default scope handles ``status``)."""
    return {LIST_FIELDS.get(k, k): v for k, v in form.items() if k in LIST_FIELDS or k == "status"}


@router.get("/customers")
def customer_list(request: Request, session: DB, viewer: CurrentViewer) -> Response:
    require(viewer.actor, "customers:read")
    form = _form(request.query_params)
    cursor = request.query_params.get("cursor") or None
    rows: list[Any] = []
    next_cursor = error = None
    try:
        rows, next_cursor = list_page(
            session,
            CUSTOMER_FILTERS,
            CUSTOMER_FILTERS.select(),
            customer_params(form),
            sort=form.get("sort"),
            cursor=cursor,
            limit=PAGE_SIZE,
        )
    except ValidationError as exc:
        error = exc.message
    tags = customers.tag_suggestions(session, form.get("tag", ""))
    return render(
        request,
        "customers/list.html",
        viewer,
        status=422 if error else 200,
        rows=rows,
        form=form,
        cursor=cursor,
        next_cursor=next_cursor,
        error=error,
        tags=tags,
        stages=STAGES,
        statuses=STATUSES,
        export_query=_export_query(form),
        owners=_owners(session, viewer),
    )


def _owners(session: Session, viewer: Viewer) -> list[tuple[int, str]]:
    from kizuna.customers import edits

    return edits.assignable_users(session) if viewer.actor.can("customers:write") else []


def _export_query(form: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in form.items() if k in LIST_FIELDS or k in ("status", "sort")}


@router.post("/customers/export.{fmt}")
def customer_export(
    session: DB,
    viewer: PostingViewer,
    fmt: str,
    q: Annotated[str, Form()] = "",
    tag: Annotated[str, Form()] = "",
    prefecture: Annotated[str, Form()] = "",
    lifecycle_stage: Annotated[str, Form()] = "",
    email_consent: Annotated[str, Form()] = "",
    company_id: Annotated[str, Form()] = "",
    status: Annotated[str, Form()] = "",
    sort: Annotated[str, Form()] = "",
    ids: Annotated[list[str] | None, Form()] = None,
) -> Response:
    """Download the filtered list (or only the rows checked in it); the export service checks ``data:export``
    and writes the audit entry.

    A POST with the form's CSRF token: a download of personal data must not be something another site
    can start with a link or an image.
    """
    from kizuna.exports import service as exports

    if fmt not in ("csv", "parquet"):
        raise ValidationError(f"unknown export format '{fmt}'; use csv or parquet", field="fmt")
    given = {
        "q": q,
        "tag": tag,
        "prefecture": prefecture,
        "lifecycle_stage": lifecycle_stage,
        "email_consent": email_consent,
        "company_id": company_id,
        "status": status,
        "sort": sort,
    }
    form = {k: v.strip() for k, v in given.items() if v.strip()}
    params: dict[str, Any] = customer_params(form)
    if form.get("sort"):
        params["sort"] = form["sort"]
    selected = [v for v in ids or [] if v.isdigit()]
    if selected:
        params["id__in"] = ",".join(selected)
    content, media_type = exports.export(session, actor=viewer.actor, kind="customers", params=params, fmt=fmt)
    session.commit()
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%d-%H%M%S")
    return Response(
        content,
        media_type=media_type,
        headers={"Content-Disposition": f'attachment; filename="customers-{stamp}.{fmt}"'},
    )


@router.get("/customers/{customer_id:int}")
def customer_detail(
    request: Request,
    session: DB,
    viewer: CurrentViewer,
    customer_id: int,
    before: str | None = None,
    kind: Annotated[list[str] | None, Query()] = None,
) -> Response:
    from kizuna.web.ui_customer_forms import render_360

    # The timeline filter's checkboxes; a kind that no longer exists (an old bookmark) is ignored, not an error.
    kinds = [k for k in TIMELINE_KINDS if k in (kind or [])]
    return render_360(request, session, viewer, customer_id, before=before, kinds=kinds)


@router.post("/customers/{customer_id:int}/notes")
def add_note(
    session: DB, viewer: PostingViewer, customer_id: int, body: Annotated[str, Form(max_length=20000)] = ""
) -> Response:
    note = customers.add_note(session, actor=viewer.actor, customer_id=customer_id, data=NoteCreate(body=body))
    session.commit()
    return RedirectResponse(f"/customers/{note.customer_id}#timeline", status_code=303)


@router.get("/companies")
def company_list(request: Request, session: DB, viewer: CurrentViewer) -> Response:
    require(viewer.actor, "companies:read")
    form = {k: request.query_params.get(k, "").strip() for k in ("q", "sort")}
    form = {k: v for k, v in form.items() if v}
    cursor = request.query_params.get("cursor") or None
    rows: list[Any] = []
    next_cursor = error = None
    try:
        params = {"q": form["q"]} if "q" in form else {}
        rows, next_cursor = list_page(
            session,
            COMPANY_FILTERS,
            COMPANY_FILTERS.select(),
            params,
            sort=form.get("sort"),
            cursor=cursor,
            limit=PAGE_SIZE,
        )
    except ValidationError as exc:
        error = exc.message
    return render(
        request,
        "customers/companies.html",
        viewer,
        status=422 if error else 200,
        rows=rows,
        form=form,
        cursor=cursor,
        next_cursor=next_cursor,
        error=error,
    )
