"""UI pages for one company: its page (attributes, contacts, spend, recent activity), create, edit and delete.

The list of companies stays in ui_customers.py beside the customer list. Forms follow kizuna/web/forms.py.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Depends, Request
from sqlalchemy.orm import Session
from starlette.datastructures import FormData
from starlette.responses import RedirectResponse, Response

from kizuna.auth import audit
from kizuna.auth.permissions import require
from kizuna.customers import edits
from kizuna.customers import service as customers
from kizuna.customers.company360 import company_360, count_contacts
from kizuna.customers.schemas import CompanyCreate, CompanyUpdate
from kizuna.web import custom_fields
from kizuna.web.deps import DB
from kizuna.web.forms import FormState, blank_to_none, read_form, submit
from kizuna.web.i18n import translator
from kizuna.web.session import CurrentViewer, PostingViewer, Viewer
from kizuna.web.ui_base import localtime, render, ui_router

if TYPE_CHECKING:
    from kizuna.customers.models import Company

router = ui_router()

# The form's fields, in the order the page shows them (every editable column of Company but the free-form
# attributes, which the API edits).
FIELDS = (
    "name",
    "owner_id",
    "name_kana",
    "domain",
    "industry",
    "phone",
    "postal_code",
    "prefecture",
    "city",
    "address_line",
    "country",
    "external_id",
)


async def _posted(request: Request) -> FormData:
    # Already parsed for the CSRF check (starlette keeps it), so this reads no body twice.
    return await request.form()


Posted = Annotated[FormData, Depends(_posted)]


@router.get("/companies/{company_id:int}")
def company_page(
    request: Request, session: DB, viewer: CurrentViewer, company_id: int, cursor: str | None = None
) -> Response:
    view = company_360(session, actor=viewer.actor, company_id=company_id, contacts_cursor=cursor)
    from kizuna.web.ui_sales import sales_panel

    sales = sales_panel(session, company_id=company_id)
    return render(
        request,
        "companies/detail.html",
        viewer,
        view=view,
        company=view.company,
        cursor=cursor,
        sales=sales,
        **custom_fields.page_context(session, "company"),
    )


@router.get("/companies/new")
def new_company_form(request: Request, session: DB, viewer: CurrentViewer) -> Response:
    require(viewer.actor, "companies:write")
    names = custom_fields.names(custom_fields.definitions(session, "company"))
    return _form_page(
        request, viewer, FormState(values=dict.fromkeys((*FIELDS, *names), "")), company=None, session=session
    )


@router.post("/companies/new")
def create_company(request: Request, session: DB, viewer: PostingViewer, posted: Posted) -> Response:
    require(viewer.actor, "companies:write")
    defs = custom_fields.definitions(session, "company")
    state = read_form(posted, (*FIELDS, *custom_fields.names(defs)))
    t = translator(viewer.lang)

    def action() -> Company:
        # An empty field is left out, so a missing name reads "required" rather than "not a string".
        typed = {name: value for name, value in blank_to_none(state.values, FIELDS).items() if value is not None}
        attributes = custom_fields.attributes_from(state.values, set(posted), defs, None)
        if attributes is not None:
            typed["attributes"] = attributes
        data = CompanyCreate(**typed)
        return customers.create_company(session, actor=viewer.actor, data=data)

    company = submit(state, t, viewer.lang, action)
    if not state.ok or company is None:
        session.rollback()
        return _form_page(request, viewer, state, company=None, status=422, session=session)
    session.commit()
    return RedirectResponse(f"/companies/{company.id}?saved=1", status_code=303)


@router.get("/companies/{company_id:int}/edit")
def edit_company_form(request: Request, session: DB, viewer: CurrentViewer, company_id: int) -> Response:
    require(viewer.actor, "companies:write")
    company = customers.get_company(session, company_id)
    values = {name: _text(getattr(company, name)) for name in FIELDS}
    values.update(custom_fields.form_values(company.attributes, custom_fields.definitions(session, "company")))
    return _form_page(
        request, viewer, FormState(values=values), company=company, version=company.version, session=session
    )


@router.post("/companies/{company_id:int}/edit")
def update_company(request: Request, session: DB, viewer: PostingViewer, posted: Posted, company_id: int) -> Response:
    require(viewer.actor, "companies:write")
    company = customers.get_company(session, company_id)
    defs = custom_fields.definitions(session, "company")
    state = read_form(posted, (*FIELDS, *custom_fields.names(defs)))
    version = _int(posted.get("version"))
    t = translator(viewer.lang)

    def action() -> Company:
        # Every field is sent: an emptied field clears the value (the name refuses to be emptied).
        attributes = custom_fields.attributes_from(state.values, set(posted), defs, company.attributes)
        extra = {} if attributes is None else {"attributes": attributes}
        data = CompanyUpdate(**blank_to_none(state.values, FIELDS), **extra, version=version)
        return customers.update_company(
            session, actor=viewer.actor, company_id=company_id, data=data, expected_version=None
        )

    updated = submit(state, t, viewer.lang, action)
    if not state.ok or updated is None:
        session.rollback()
        stale = version is not None and version != company.version
        current: dict[str, str] = {}
        if stale:
            session.refresh(company)
            _explain_stale(session, state, viewer, company, version)
            # Show what is stored now beside each field the user typed differently, and let the next save go
            # through against the current version (the user has now seen it).
            current = {n: _text(getattr(company, n)) for n in FIELDS if _text(getattr(company, n)) != state.value(n)}
        return _form_page(
            request,
            viewer,
            state,
            company=company,
            version=company.version if stale else version,
            current=current,
            status=409 if stale else 422,
            session=session,
        )
    session.commit()
    return RedirectResponse(f"/companies/{company_id}?saved=1", status_code=303)


@router.get("/companies/{company_id:int}/delete")
def delete_company_confirm(request: Request, session: DB, viewer: CurrentViewer, company_id: int) -> Response:
    require(viewer.actor, "companies:delete")
    company = customers.get_company(session, company_id)
    count = count_contacts(session, company.id)
    return render(request, "companies/delete.html", viewer, company=company, contact_count=count)


@router.post("/companies/{company_id:int}/delete")
def delete_company(session: DB, viewer: PostingViewer, posted: Posted, company_id: int) -> Response:
    # The company's contacts stay: their company is cleared (customers.company_id is ON DELETE SET NULL).
    customers.delete_company(
        session, actor=viewer.actor, company_id=company_id, expected_version=_int(posted.get("version"))
    )
    session.commit()
    return RedirectResponse("/companies?deleted=1", status_code=303)


def _form_page(
    request: Request,
    viewer: Viewer,
    state: FormState,
    *,
    company: Company | None,
    version: int | None = None,
    current: dict[str, str] | None = None,
    status: int = 200,
    session: Session,
) -> Response:
    return render(
        request,
        "companies/form.html",
        viewer,
        status=status,
        form=state,
        company=company,
        version=version,
        current=current or {},
        owners=edits.assignable_users(session),
        **custom_fields.context(session, custom_fields.definitions(session, "company")),
    )


def _explain_stale(session: DB, state: FormState, viewer: Viewer, company: Company, yours: int | None) -> None:
    """Replace the generic stale message with who changed the company, when, and which fields, when audited."""
    t = translator(viewer.lang)
    last = audit.last_change(session, entity_type="company", entity_id=company.id)
    message = t("error.stale", yours=yours, now=company.version)
    if last is not None:
        fields = ", ".join(t(f"companies.field.{name}") for name in sorted(last.details or {}))
        message = t("error.stale_by", who=last.actor, when=localtime(last.at), fields=fields)
    # The service's own stale message (versions only) gives way to this one; other messages stay.
    others = [m for m in state.general if m != t("error.stale", yours=yours, now=company.version)]
    state.general = [message, *others]


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _int(value: Any) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None
