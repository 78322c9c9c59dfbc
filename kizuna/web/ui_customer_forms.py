"""UI forms that change customers: create, edit (the full form and the 360 page's quick edit), delete,
consent decisions and identities. Each handler reads the form, calls one service and commits only on success;
a refusal renders the form again with the user's input and a message next to each field."""

from __future__ import annotations

from typing import Any

import pydantic
from fastapi import Request
from sqlalchemy.orm import Session
from starlette.responses import RedirectResponse, Response

from kizuna.auth.permissions import require
from kizuna.customers import edits, identities
from kizuna.customers import service as customers
from kizuna.customers.customer360 import customer_360
from kizuna.customers.schemas import ConsentCreate, CustomerCreate, CustomerUpdate
from kizuna.errors import Conflict, KizunaError, ValidationError
from kizuna.privacy import service as privacy
from kizuna.web import custom_fields
from kizuna.web.deps import DB
from kizuna.web.forms import FormState, collect, read_form, submit, translate_error
from kizuna.web.i18n import translator
from kizuna.web.session import CurrentViewer, PostingViewer, Viewer, safe_next
from kizuna.web.ui_base import env, localtime, phone, render, ui_router, with_notice

router = ui_router()


def _tkey(key: str, t: Any, fallback: str | None = None) -> str:
    """The text of ``key``, or ``fallback`` (default: the code after the last dot) when the catalog has none."""
    text = t(key)
    return (fallback if fallback is not None else key.rsplit(".", 1)[-1]) if text == key else text


env.filters["tkey"] = _tkey
env.filters["consent_option"] = lambda value, group, t: (
    value,
    _tkey(f"channel.{value}" if group == "channel" else f"cform.{group}.{value}", t),
)
env.filters["identity_option"] = lambda kind, t: (kind, _tkey(f"identity.{kind}", t, kind))

# The customer form's fields, in the order the form shows them.
FIELDS = (
    "family_name",
    "given_name",
    "family_name_kana",
    "given_name_kana",
    "email",
    "phone",
    "birth_date",
    "gender",
    "postal_code",
    "prefecture",
    "city",
    "address_line",
    "country",
    "company_id",
    "owner_id",
    "lifecycle_stage",
    "tags",
    "timezone",
    "locale",
    "source",
    "external_id",
)
# Columns that always hold a value: an empty field leaves them as they are instead of clearing them.
KEEP_WHEN_EMPTY = ("lifecycle_stage", "timezone", "locale")
STAGES = ("lead", "prospect", "customer", "former")
GENDERS = ("female", "male", "other", "unknown")
CONSENT_CHANNELS = ("email", "line", "sms", "phone", "post", "push")
CONSENT_PURPOSES = ("marketing", "newsletter", "transactional", "survey", "profiling", "advertising")
# How a decision reached us; "phone" covers opt-outs taken on a call, which 特定電子メール法 requires honouring.
CONSENT_METHODS = ("web_form", "phone", "email_reply", "paper_form", "store", "business_card", "import", "other")
CONSENT_FIELDS = ("channel", "purpose", "status", "method", "source", "evidence", "recorded_at")


def _lang_t(viewer: Viewer) -> tuple[str, Any]:
    return viewer.lang, translator(viewer.lang)


def _payload(state: FormState, present: set[str], *, creating: bool) -> dict[str, Any]:
    """The customer input from the form: only the fields the form sent (the 360 page's quick edit sends three),
    empty text as "no value", tags split into a list."""
    data: dict[str, Any] = {}
    for name in FIELDS:
        if name not in present:
            continue
        raw = state.value(name).strip()
        if name == "tags":
            data["tags"] = edits.split_tags(state.value(name))
        elif not raw:
            if not creating and name not in KEEP_WHEN_EMPTY:
                data[name] = None
        else:
            data[name] = raw
    return data


def _choices(session: Session, t: Any) -> dict[str, Any]:
    return {
        "owners": edits.assignable_users(session),
        "companies": edits.company_choices(session),
        "stages": [(s, t("stage." + s)) for s in STAGES],
        "genders": [(g, t("gender." + g)) for g in GENDERS],
        "locales": [("ja", t("language.ja")), ("en", t("language.en"))],
    }


def _customer_values(customer: Any, defs: list[Any] | None = None) -> dict[str, str]:
    values = {name: "" if getattr(customer, name, None) is None else str(getattr(customer, name)) for name in FIELDS}
    values.update(custom_fields.form_values(customer.attributes, defs or []))
    values["tags"] = ", ".join(t.name for t in customer.tags)
    # Shown as people write it (03-1234-5678); the form reads either form back.
    values["phone"] = phone(customer.phone) if customer.phone else ""
    return values


def _form_page(
    request: Request,
    session: Session,
    viewer: Viewer,
    state: FormState,
    *,
    customer: Any = None,
    version: int | None = None,
    stale: list[edits.Change] | None = None,
    status: int = 200,
) -> Response:
    _, t = _lang_t(viewer)
    return render(
        request,
        "customers/form.html",
        viewer,
        status=status,
        form=state,
        customer=customer,
        version=version,
        stale=[stale_line(t, change, customer.timezone if customer else None) for change in stale or []],
        **_choices(session, t),
        **custom_fields.context(session, custom_fields.definitions(session, "customer")),
    )


# --- create ----------------------------------------------------------------------------------------------


@router.get("/customers/new")
def new_customer(request: Request, session: DB, viewer: CurrentViewer) -> Response:
    require(viewer.actor, "customers:write")
    defs = custom_fields.definitions(session, "customer")
    state = FormState(values={name: "" for name in (*FIELDS, *custom_fields.names(defs))})
    state.values["lifecycle_stage"] = "lead"
    return _form_page(request, session, viewer, state)


@router.post("/customers/new")
async def create_customer(request: Request, session: DB, viewer: PostingViewer) -> Response:
    require(viewer.actor, "customers:write")
    form = await request.form()
    defs = custom_fields.definitions(session, "customer")
    state = read_form(form, (*FIELDS, *custom_fields.names(defs)))
    lang, t = _lang_t(viewer)
    actor = viewer.actor.via("ui")

    def payload() -> dict[str, Any]:
        data = _payload(state, set(form), creating=True)
        attributes = custom_fields.attributes_from(state.values, set(form), defs, None)
        if attributes is not None:
            data["attributes"] = attributes
        return data

    created = submit(
        state,
        t,
        lang,
        lambda: customers.create_customer(session, actor=actor, data=CustomerCreate.model_validate(payload())),
    )
    if created is None:
        session.rollback()
        return _form_page(request, session, viewer, state, status=422)
    session.commit()
    return with_notice(RedirectResponse(f"/customers/{created.id}", status_code=303), "created")


# --- edit ------------------------------------------------------------------------------------------------


@router.get("/customers/{customer_id:int}/edit")
def edit_customer(request: Request, session: DB, viewer: CurrentViewer, customer_id: int) -> Response:
    require(viewer.actor, "customers:write")
    customer = customers.get_customer(session, customer_id)
    if customer.id != customer_id:
        return RedirectResponse(f"/customers/{customer.id}/edit", status_code=302)
    state = FormState(values=_customer_values(customer, custom_fields.definitions(session, "customer")))
    return _form_page(request, session, viewer, state, customer=customer, version=customer.version)


@router.post("/customers/{customer_id:int}/edit")
async def update_customer(request: Request, session: DB, viewer: PostingViewer, customer_id: int) -> Response:
    require(viewer.actor, "customers:write")
    form = await request.form()
    present = set(form)
    defs = custom_fields.definitions(session, "customer")
    state = read_form(form, (*FIELDS, *custom_fields.names(defs)))
    lang, t = _lang_t(viewer)
    version_text = str(form.get("version", ""))
    version = int(version_text) if version_text.isdigit() else None
    actor = viewer.actor.via("ui")

    def save() -> Any:
        data = _payload(state, present, creating=False)
        current = customers.get_customer(session, customer_id).attributes
        attributes = custom_fields.attributes_from(state.values, present, defs, current)
        if attributes is not None:
            data["attributes"] = attributes
        return customers.update_customer(
            session,
            actor=actor,
            customer_id=customer_id,
            data=CustomerUpdate.model_validate({**data, "version": version}),
            expected_version=None,
        )

    try:
        updated = save()
    except (pydantic.ValidationError, KizunaError) as exc:
        session.rollback()
        if isinstance(exc, KizunaError) and exc.status_code in (401, 403, 404):
            raise
        if isinstance(exc, Conflict) and exc.field == "version":
            # A stale form: say who changed what since the user opened it, keep their input, and let them
            # save again over the current version once they have looked.
            customer = customers.get_customer(session, customer_id)
            changes = edits.changes_since(session, customer.id, version or 0)
            state.general.append(translate_error(t, lang, exc))
            state.values = {
                **_customer_values(customer, defs),
                **{k: v for k, v in state.values.items() if k in present},
            }
            return _form_page(
                request, session, viewer, state, customer=customer, version=customer.version, stale=changes, status=409
            )
        collect(state, t, lang, exc)
        updated = None
    if updated is None:
        session.rollback()
        customer = customers.get_customer(session, customer_id)
        full = _customer_values(customer, defs)
        state.values = {**full, **{k: v for k, v in state.values.items() if k in present}}
        return _form_page(request, session, viewer, state, customer=customer, version=version, status=422)
    session.commit()
    back = str(form.get("back", ""))
    target = f"/customers/{updated.id}" + ("#profile" if back == "360" else "")
    return with_notice(RedirectResponse(target, status_code=303), "saved")


# --- bulk actions on the list's selection ------------------------------------------------------------------

BULK_ACTIONS = ("tag_add", "tag_remove", "assign_owner", "clear_owner")
# The outcome travels back to the list in the URL as one of these keys, never as text: a link cannot make the
# page show words of its own choosing.
BULK_ERRORS = ("no_selection", "selection_too_big", "no_bulk_action", "bulk_tag_missing", "bulk_owner_missing")
env.globals["bulk_errors"] = BULK_ERRORS


@router.post("/customers/bulk")
async def bulk_change(request: Request, session: DB, viewer: PostingViewer) -> Response:
    """Apply the bulk bar's action to the checked rows, then go back to the same list with what happened."""
    form = await request.form()
    back = safe_next(str(form.get("back", "")), default="/customers")
    ids = [int(v) for v in form.getlist("ids") if isinstance(v, str) and v.isdigit()]
    action = str(form.get("action", ""))
    tags = edits.split_tags(str(form.get("tag", "")))
    owner = str(form.get("owner_id", ""))
    lang, t = _lang_t(viewer)
    try:
        if action not in BULK_ACTIONS:
            raise ValidationError("choose what to change", field="action", key="error.no_bulk_action")
        if action in ("tag_add", "tag_remove") and not tags:
            raise ValidationError("type a tag", field="tag", key="error.bulk_tag_missing")
        if action == "assign_owner" and not owner.isdigit():
            raise ValidationError("choose an owner", field="owner_id", key="error.bulk_owner_missing")
        changed = edits.bulk_change(
            session,
            actor=viewer.actor.via("ui"),
            customer_ids=ids,
            add_tags=tags if action == "tag_add" else None,
            remove_tags=tags if action == "tag_remove" else None,
            owner_id=int(owner) if action == "assign_owner" else None,
            clear_owner=action == "clear_owner",
        )
    except KizunaError as exc:
        if exc.status_code in (401, 403, 404):
            raise
        session.rollback()
        key = (exc.key or "").removeprefix("error.")
        return RedirectResponse(
            with_bulk_outcome(back, "bulk_error", key if key in BULK_ERRORS else "bulk_failed"), status_code=303
        )
    session.commit()
    return RedirectResponse(with_bulk_outcome(back, "bulk_done", str(changed)), status_code=303)


def with_bulk_outcome(path: str, name: str, value: str) -> str:
    """``path`` with ``name=value``, dropping the previous bulk outcome so an old message does not linger."""
    from urllib.parse import parse_qsl, urlencode, urlsplit

    parts = urlsplit(path)
    kept = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in ("bulk_done", "bulk_error")]
    return f"{parts.path}?{urlencode([*kept, (name, value)])}"


# --- delete ----------------------------------------------------------------------------------------------


@router.get("/customers/{customer_id:int}/delete")
def confirm_delete(request: Request, session: DB, viewer: CurrentViewer, customer_id: int) -> Response:
    require(viewer.actor, "customers:delete")
    customer = customers.get_customer(session, customer_id)
    return render(request, "customers/delete.html", viewer, customer=customer, error="")


@router.post("/customers/{customer_id:int}/delete")
async def delete_customer(request: Request, session: DB, viewer: PostingViewer, customer_id: int) -> Response:
    form = await request.form()
    version_text = str(form.get("version", ""))
    lang, t = _lang_t(viewer)
    try:
        customers.delete_customer(
            session,
            actor=viewer.actor.via("ui"),
            customer_id=customer_id,
            expected_version=int(version_text) if version_text.isdigit() else None,
        )
    except KizunaError as exc:
        if exc.status_code in (401, 403, 404):
            raise
        session.rollback()
        customer = customers.get_customer(session, customer_id)
        return render(
            request,
            "customers/delete.html",
            viewer,
            status=409,
            customer=customer,
            error=translate_error(t, lang, exc),
        )
    session.commit()
    return RedirectResponse(f"/customers?deleted={customer_id}", status_code=303)


# --- consent and identities on the 360 page ---------------------------------------------------------------


def render_360(
    request: Request,
    session: Session,
    viewer: Viewer,
    customer_id: int,
    *,
    status: int = 200,
    before: str | None = None,
    kinds: list[str] | None = None,
    **forms: FormState,
) -> Response:
    """The 360 page; a form refused on it is passed in (``consent_form=...``) and shown with its errors.

    ``kinds`` narrows the timeline (the filter's checkboxes); the older-page link keeps them.
    """
    from kizuna.web.ui_sales import sales_panel

    view = customer_360(
        session,
        actor=viewer.actor,
        customer_id=customer_id,
        timeline_cursor=before,
        timeline_limit=50,
        timeline_kinds=kinds or None,
    )
    if view.customer.id != customer_id and status == 200:
        return RedirectResponse(f"/customers/{view.customer.id}", status_code=302)
    defaults = {
        "consent_form": FormState(
            values={"channel": "email", "purpose": "marketing", "status": "withdrawn", "method": "phone"}
        ),
        "identity_form": FormState(values={"kind": "email", "value": ""}),
        "note_form": FormState(values={"body": ""}),
    }
    provisions, provisions_total = privacy.customer_provisions(
        session, actor=viewer.actor, customer_id=view.customer.id, limit=5
    )
    return render(
        request,
        "customers/detail.html",
        viewer,
        status=status,
        view=view,
        customer=view.customer,
        older=view.timeline_next_cursor,
        before=before,
        chosen_kinds=kinds or [],
        consent_history=customers.consent_history(session, view.customer.id),
        sales=sales_panel(session, customer_id=view.customer.id),
        owners=edits.assignable_users(session) if viewer.actor.can("customers:write") else [],
        stages=STAGES,
        consent_choices={"channels": CONSENT_CHANNELS, "purposes": CONSENT_PURPOSES, "methods": CONSENT_METHODS},
        identity_kinds=[k for k in identities.KINDS if k != "anonymous_id"],
        provisions=provisions,
        provisions_total=provisions_total,
        **custom_fields.page_context(session, "customer"),
        **{**defaults, **forms},
    )


@router.post("/customers/{customer_id:int}/consents")
async def record_consent(request: Request, session: DB, viewer: PostingViewer, customer_id: int) -> Response:
    form = await request.form()
    state = read_form(form, CONSENT_FIELDS)
    lang, t = _lang_t(viewer)
    actor = viewer.actor.via("ui")

    def save() -> Any:
        data = {k: v.strip() for k, v in state.values.items() if v.strip()}
        return customers.record_consent(
            session, actor=actor, customer_id=customer_id, data=ConsentCreate.model_validate(data)
        )

    decision = submit(state, t, lang, save)
    if decision is None:
        session.rollback()
        return render_360(request, session, viewer, customer_id, status=422, consent_form=state)
    session.commit()
    target = f"/customers/{decision.customer_id}#consents"
    return with_notice(RedirectResponse(target, status_code=303), "consent_recorded")


@router.post("/customers/{customer_id:int}/identities")
async def add_identity(request: Request, session: DB, viewer: PostingViewer, customer_id: int) -> Response:
    form = await request.form()
    state = read_form(form, ("kind", "value"))
    lang, t = _lang_t(viewer)
    actor = viewer.actor.via("ui")

    def save() -> Any:
        customer = customers.get_customer(session, customer_id)
        identities.add_identity(
            session, actor=actor, customer=customer, kind_name=state.value("kind"), value=state.value("value")
        )
        return customer

    customer = submit(state, t, lang, save)
    if customer is None:
        session.rollback()
        return render_360(request, session, viewer, customer_id, status=422, identity_form=state)
    session.commit()
    return with_notice(RedirectResponse(f"/customers/{customer.id}#identities", status_code=303), "identity_added")


@router.post("/customers/{customer_id:int}/identities/{identity_id:int}/delete")
def remove_identity(session: DB, viewer: PostingViewer, customer_id: int, identity_id: int) -> Response:
    customer = customers.get_customer(session, customer_id)
    identities.remove_identity(session, actor=viewer.actor.via("ui"), customer=customer, identity_id=identity_id)
    session.commit()
    return with_notice(RedirectResponse(f"/customers/{customer.id}#identities", status_code=303), "identity_removed")


def stale_line(t: Any, change: edits.Change, zone: str | None) -> str:
    """ "山田 changed this at 2026-11-27 10:00 (e-mail, tags)" in the user's language."""
    labels = []
    for name in change.fields:
        label = t("customers." + name)
        labels.append(name if label.startswith("customers.") else label)
    return t("error.stale_by", who=change.actor, when=localtime(change.at, zone), fields=", ".join(labels))
