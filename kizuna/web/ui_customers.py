"""UI pages for customers and companies: the searchable list, exports, the customer 360 and notes."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import Form, Request
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.datastructures import QueryParams
from starlette.responses import RedirectResponse, Response

from kizuna.auth.models import User
from kizuna.auth.permissions import require
from kizuna.catalog.models import Product
from kizuna.customers import service as customers
from kizuna.customers.filters import COMPANY_FILTERS, CUSTOMER_FILTERS
from kizuna.customers.merge import merged_ids
from kizuna.customers.models import Company, Customer
from kizuna.customers.schemas import NoteCreate
from kizuna.customers.timeline import timeline
from kizuna.errors import ValidationError
from kizuna.listing import list_page
from kizuna.orders.models import Order
from kizuna.web.deps import DB
from kizuna.web.session import CurrentViewer, PostingViewer
from kizuna.web.ui_base import render, ui_router

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
    """The CUSTOMER_FILTERS parameters for a list form; only active customers unless a status is chosen."""
    params = {LIST_FIELDS[k]: v for k, v in form.items() if k in LIST_FIELDS}
    status = form.get("status") or "active"
    if status != "all":
        params["status"] = status
    return params


@router.get("/customers")
def customer_list(request: Request, session: DB, viewer: CurrentViewer) -> Response:
    require(viewer.actor, "customers:read")
    form = _form(request.query_params)
    cursor = request.query_params.get("cursor") or None
    rows: list[Customer] = []
    next_cursor = error = None
    try:
        rows, next_cursor = list_page(
            session,
            CUSTOMER_FILTERS,
            select(Customer),
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
    )


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
) -> Response:
    """Download the filtered list; the export service checks ``data:export`` and writes the audit entry.

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
    content, media_type = exports.export(session, actor=viewer.actor, kind="customers", params=params, fmt=fmt)
    session.commit()
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%d-%H%M%S")
    return Response(
        content,
        media_type=media_type,
        headers={"Content-Disposition": f'attachment; filename="customers-{stamp}.{fmt}"'},
    )


def _orders(session: Session, customer_id: int, limit: int = 20) -> tuple[list[Order], dict[int, str]]:
    """The customer's newest orders and the names of the products on their lines."""
    orders = list(
        session.scalars(
            select(Order).where(Order.customer_id == customer_id).order_by(Order.ordered_at.desc()).limit(limit)
        )
    )
    product_ids = {line.product_id for o in orders for line in o.lines if line.product_id}
    names: dict[int, str] = {}
    if product_ids:
        rows = session.execute(select(Product.id, Product.name).where(Product.id.in_(product_ids)))
        names = {product_id: name for product_id, name in rows}
    return orders, names


def _names(session: Session, user_ids: set[int]) -> dict[int, str]:
    if not user_ids:
        return {}
    rows = session.execute(select(User.id, User.name, User.email).where(User.id.in_(user_ids)))
    return {uid: name or email for uid, name, email in rows}


@router.get("/customers/{customer_id:int}")
def customer_detail(
    request: Request, session: DB, viewer: CurrentViewer, customer_id: int, before: str | None = None
) -> Response:
    require(viewer.actor, "customers:read")
    survivor_id = customers.resolve_id(session, customer_id)
    if survivor_id != customer_id:
        return RedirectResponse(f"/customers/{survivor_id}", status_code=302)
    customer = customers.get_customer(session, customer_id)
    items, older = timeline(session, customer.id, limit=PAGE_SIZE, cursor=before)
    orders, product_names = _orders(session, customer.id)
    notes = customers.list_notes(session, customer.id)
    return render(
        request,
        "customers/detail.html",
        viewer,
        customer=customer,
        owner=session.get(User, customer.owner_id) if customer.owner_id else None,
        merged_ids=merged_ids(session, customer.id),
        consents=customers.current_consents(session, customer.id),
        identities=customers.identities(session, customer.id),
        orders=orders,
        product_names=product_names,
        notes=notes,
        authors=_names(session, {n.author_user_id for n in notes if n.author_user_id}),
        timeline=items,
        older=older,
        before=before,
    )


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
    rows: list[Company] = []
    next_cursor = error = None
    try:
        params = {"q": form["q"]} if "q" in form else {}
        rows, next_cursor = list_page(
            session, COMPANY_FILTERS, select(Company), params, sort=form.get("sort"), cursor=cursor, limit=PAGE_SIZE
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
