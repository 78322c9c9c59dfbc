"""UI lists of customers and companies: filters, counts, paging both ways, page sizes, columns, saved views."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import Form, Request
from starlette.datastructures import QueryParams
from starlette.responses import RedirectResponse, Response

from kizuna.auth import service as auth
from kizuna.auth.permissions import require
from kizuna.customers import edits, saved_views
from kizuna.customers import service as customers
from kizuna.customers.filters import COMPANY_FILTERS, CUSTOMER_FILTERS, CUSTOMER_FORM_FIELDS, customer_form_params
from kizuna.customers.schemas import SavedViewCreate
from kizuna.errors import KizunaError, NotFound, ValidationError
from kizuna.fields.filters import form_params as custom_form_params
from kizuna.listing import Window, list_window
from kizuna.listing_count import COUNT_CAP, Count, count_rows
from kizuna.web import custom_fields
from kizuna.web.deps import DB
from kizuna.web.forms import FormState, submit
from kizuna.web.i18n import translator
from kizuna.web.session import CurrentViewer, PostingViewer, Viewer, safe_next
from kizuna.web.ui_base import query_string, render, ui_router
from kizuna.web.ui_customer_forms import with_bulk_outcome

router = ui_router()

PAGE_SIZES = (25, 50, 100, 200)
PAGE_SIZE = 50
STAGES = ("lead", "prospect", "customer", "former")
STATUSES = ("active", "anonymous", "merged", "all")
# What a list link carries: the filter form, the sort and the page size (never the cursor or the count).
STATE_FIELDS = (*CUSTOMER_FORM_FIELDS, "sort", "size")


def page_size(raw: str | None) -> int:
    """The page size asked for, if it is one of the choices; else the default."""
    return int(raw) if raw in {str(s) for s in PAGE_SIZES} else PAGE_SIZE


def _form(query: QueryParams) -> dict[str, Any]:
    """The list's state as the user set it (what the page echoes back and its links carry along).

    ``cols`` (the visible columns) is present only when the user chose them: the column picker always sends
    ``cols=name`` (the name column cannot be hidden), so unticking every other column is told apart from
    never having chosen.
    """
    # Custom fields' filters (``attributes.<key>__gte`` ...) travel with the list's state too.
    form: dict[str, Any] = {name: query.get(name, "").strip() for name in STATE_FIELDS}
    form = {k: v for k, v in form.items() if v} | custom_form_params(query.keys(), query)
    if form.get("size") and page_size(form["size"]) == PAGE_SIZE:
        del form["size"]
    if "cols" in query:
        form["cols"] = ["name", *saved_views.visible_columns(query.getlist("cols"), default=())]
    return form


def _count(session: DB, filterset: Any, params: dict[str, Any], exact: bool) -> Count | None:
    """The list's total: exact up to COUNT_CAP (cheap: at most that many rows read), all rows only when asked."""
    try:
        return count_rows(session, filterset, filterset.select(), params, cap=None if exact else COUNT_CAP)
    except ValidationError:
        return None


def _view_state(view: Any) -> dict[str, Any]:
    """The list state a saved view applies (its link and how the page recognises it as the current view)."""
    return {**view.params, "cols": ["name", *view.columns]}


def _customer_page(
    request: Request, session: DB, viewer: Viewer, *, view_form: FormState | None = None, status: int = 200
) -> Response:
    require(viewer.actor, "customers:read")
    form = _form(request.query_params)
    cursor = request.query_params.get("cursor") or None
    size = page_size(form.get("size"))
    params = customer_form_params(form, user_id=viewer.actor.user_id)
    window = Window([], None, None)
    error = None
    count = None
    try:
        window = list_window(
            session,
            CUSTOMER_FILTERS,
            CUSTOMER_FILTERS.select(),
            params,
            sort=form.get("sort"),
            cursor=cursor,
            limit=size,
        )
        count = (
            Count(window.total, exact=True)
            if window.total is not None
            else _count(session, CUSTOMER_FILTERS, params, request.query_params.get("count") == "exact")
        )
    except ValidationError as exc:
        error = exc.message
    columns = (
        saved_views.visible_columns(form["cols"]) if "cols" in form else list(saved_views.DEFAULT_CUSTOMER_COLUMNS)
    )
    shown_fields = custom_fields.page_context(session, "customer")
    custom_columns = list(custom_fields.names(shown_fields["custom_fields"]))
    # A column of a field deleted since the view was saved is left out.
    columns = [c for c in columns if not c.startswith("attributes.") or c in custom_columns]
    views = saved_views.list_views(session, actor=viewer.actor) if viewer.actor.user_id is not None else []
    state = {k: v for k, v in form.items() if k != "size"}
    owners = auth.user_names(session, {c.owner_id for c in window.rows if c.owner_id}) if "owner" in columns else {}
    company = None
    if form.get("company_id", "").isdigit():
        try:
            company = customers.get_company(session, int(form["company_id"]))
        except NotFound:
            company = None
    return render(
        request,
        "customers/list.html",
        viewer,
        status=422 if error else status,
        rows=window.rows,
        form=form,
        cursor=cursor,
        next_cursor=window.next_cursor,
        prev_cursor=window.prev_cursor,
        count=count,
        error=error,
        tags=customers.tag_suggestions(session, form.get("tag", "")),
        stages=STAGES,
        statuses=STATUSES,
        page_sizes=PAGE_SIZES,
        size=size,
        columns=columns,
        all_columns=[*saved_views.CUSTOMER_COLUMNS, *custom_columns],
        **shown_fields,
        owners=owners,
        # Users the bulk bar can assign as owner.
        assignable=edits.assignable_users(session) if viewer.actor.can("customers:write") else [],
        company=company,
        views=[
            (v, query_string(_view_state(v)), _view_state(v) == {**state, "cols": ["name", *columns]}) for v in views
        ],
        view_form=view_form or FormState(values={"name": ""}),
        export_query={
            k: v for k, v in form.items() if k in CUSTOMER_FORM_FIELDS or k == "sort" or k.startswith("attributes.")
        },
    )


@router.get("/customers")
def customer_list(request: Request, session: DB, viewer: CurrentViewer) -> Response:
    if not request.query_params and viewer.actor.user_id is not None:
        # The list opens with the user's default view, under its own address (``?reset=1`` opens it plain).
        default = saved_views.default_view(session, actor=viewer.actor)
        if default is not None:
            return RedirectResponse("/customers" + query_string(_view_state(default)), status_code=302)
    return _customer_page(request, session, viewer)


@router.post("/customers/views")
async def create_saved_view(request: Request, session: DB, viewer: PostingViewer) -> Response:
    """Save the list's current state (sent as the form's hidden fields) under the name the user typed."""
    posted = await request.form()
    name = str(posted.get("name", ""))
    params = {k: str(posted.get(k, "")) for k in (*CUSTOMER_FORM_FIELDS, "sort") if posted.get(k)}
    columns = [str(c) for c in posted.getlist("cols") if c != "name"]
    state = FormState(values={"name": name})
    t = translator(viewer.lang)

    def save() -> Any:
        data = SavedViewCreate(name=name, params=params, columns=columns)
        return saved_views.create_view(session, actor=viewer.actor, data=data)

    view = submit(state, t, viewer.lang, save)
    if view is None:
        session.rollback()
        # The page as it was, with the typed name and the reason next to it.
        request.scope["query_string"] = query_string({**params, "cols": ["name", *columns]}).lstrip("?").encode()
        return _customer_page(request, session, viewer, view_form=state, status=422)
    session.commit()
    return RedirectResponse("/customers" + query_string(_view_state(view)), status_code=303)


@router.post("/customers/views/{view_id:int}/default")
def default_saved_view(
    session: DB,
    viewer: PostingViewer,
    view_id: int,
    default: Annotated[str, Form()] = "1",
    back: Annotated[str, Form()] = "/customers",
) -> Response:
    saved_views.set_default(session, actor=viewer.actor, view_id=view_id, default=default == "1")
    session.commit()
    return RedirectResponse(safe_next(back), status_code=303)


@router.post("/customers/views/{view_id:int}/delete")
def delete_saved_view(
    session: DB, viewer: PostingViewer, view_id: int, back: Annotated[str, Form()] = "/customers"
) -> Response:
    saved_views.delete_view(session, actor=viewer.actor, view_id=view_id)
    session.commit()
    return RedirectResponse(safe_next(back), status_code=303)


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
    mine: Annotated[str, Form()] = "",
    status: Annotated[str, Form()] = "",
    sort: Annotated[str, Form()] = "",
    ids: Annotated[list[str] | None, Form()] = None,
    selected_only: Annotated[str, Form()] = "",
    back: Annotated[str, Form()] = "",
) -> Response:
    """Download the filtered list, or only the rows checked in it (the bulk bar); the export service checks
    ``data:export`` and writes the audit entry.

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
        "mine": mine,
        "status": status,
    }
    form = {k: v.strip() for k, v in given.items() if v.strip()}
    params: dict[str, Any] = customer_form_params(form, user_id=viewer.actor.user_id)
    if sort.strip():
        params["sort"] = sort.strip()
    selected = [v for v in ids or [] if v.isdigit()]
    if selected_only and not selected:
        # The bulk bar's "export the checked rows" with none checked: its form carries no filters, so going on
        # would download every customer. Say what is missing instead.
        return RedirectResponse(
            with_bulk_outcome(safe_next(back, default="/customers"), "bulk_error", "no_selection"), 303
        )
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


@router.get("/companies")
def company_list(request: Request, session: DB, viewer: CurrentViewer) -> Response:
    require(viewer.actor, "companies:read")
    query = request.query_params
    form: dict[str, Any] = {k: query.get(k, "").strip() for k in ("q", "sort", "size")}
    form = {k: v for k, v in form.items() if v} | custom_form_params(query.keys(), query)
    cursor = query.get("cursor") or None
    size = page_size(form.get("size"))
    window = Window([], None, None)
    error = None
    count = None
    params = {k: v for k, v in form.items() if k not in ("sort", "size")}
    try:
        window = list_window(
            session, COMPANY_FILTERS, COMPANY_FILTERS.select(), params, sort=form.get("sort"), cursor=cursor, limit=size
        )
        count = _count(session, COMPANY_FILTERS, params, query.get("count") == "exact")
    except KizunaError as exc:
        error = exc.message
    # Every custom field of companies is a column (there is no column picker here: companies have few fields).
    shown_fields = custom_fields.page_context(session, "company")
    return render(
        request,
        "customers/companies.html",
        viewer,
        status=422 if error else 200,
        rows=window.rows,
        form=form,
        cursor=cursor,
        next_cursor=window.next_cursor,
        prev_cursor=window.prev_cursor,
        count=count,
        page_sizes=PAGE_SIZES,
        size=size,
        error=error,
        **shown_fields,
    )
