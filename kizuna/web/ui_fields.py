"""Admin page for custom fields: the fields of customers, companies and deals, add one, edit one (its label,
rules and order; entity, key and type stay fixed so stored values keep their meaning), delete one (asked to
confirm first; the stored values stay)."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from starlette.responses import RedirectResponse, Response

from kizuna.auth.permissions import require
from kizuna.fields import service
from kizuna.fields.schemas import CustomFieldCreate, CustomFieldUpdate
from kizuna.web import custom_fields  # noqa: F401 - its template globals (custom_field_label)
from kizuna.web.deps import DB
from kizuna.web.forms import FormState, read_form, submit
from kizuna.web.i18n import translator
from kizuna.web.session import CurrentViewer, PostingViewer, Viewer
from kizuna.web.ui_base import render, ui_router, with_notice

router = ui_router()

FORM_FIELDS = (
    "entity", "key", "type", "label", "label_en", "required", "choices", "min_value", "max_value", "max_length",
    "help_text",
)  # fmt: skip

# What an edit may change (CustomFieldUpdate); the rest is shown, not editable.
EDIT_FIELDS = (
    "label", "label_en", "required", "choices", "min_value", "max_value", "max_length", "position", "help_text",
    "version",
)  # fmt: skip
# The rules a field of each type has (the edit form shows only those).
TYPE_RULES = {"choice": ("choices",), "multi_choice": ("choices",), "number": ("min_value", "max_value"),
              "text": ("max_length",), "url": ("max_length",)}  # fmt: skip


def _edit_names(kind: str) -> tuple[str, ...]:
    rules = ("choices", "min_value", "max_value", "max_length")
    return tuple(n for n in EDIT_FIELDS if n not in rules or n in TYPE_RULES.get(kind, ()))


def _page(request: Request, session: DB, viewer: Viewer, state: FormState, *, status: int = 200) -> Response:
    t = translator(viewer.lang)
    return render(
        request,
        "admin/fields.html",
        viewer,
        status=status,
        form=state,
        fields=service.definitions(session),
        entities=[(e, t(f"cfields.entity.{e}")) for e in service.ENTITIES],
        types=[(k, t(f"cfields.type.{k}")) for k in service.TYPES],
    )


def _payload(values: dict[str, str]) -> dict[str, Any]:
    """The form as CustomFieldCreate input: empty text as no value, one choice per line."""
    data: dict[str, Any] = {k: v.strip() for k, v in values.items() if v.strip() and k != "required"}
    data["required"] = values.get("required") in ("on", "true", "1")
    if "choices" in data:
        data["choices"] = [c.strip() for c in data["choices"].splitlines() if c.strip()]
    return data


@router.get("/admin/fields")
def fields_page(request: Request, session: DB, viewer: CurrentViewer) -> Response:
    require(viewer.actor, "fields:manage")
    state = FormState(values={name: "" for name in FORM_FIELDS})
    state.values.update(entity="customer", type="text")
    return _page(request, session, viewer, state)


@router.post("/admin/fields")
async def create_field(request: Request, session: DB, viewer: PostingViewer) -> Response:
    require(viewer.actor, "fields:manage")
    state = read_form(await request.form(), FORM_FIELDS)
    actor = viewer.actor.via("ui")
    made = submit(
        state,
        translator(viewer.lang),
        viewer.lang,
        lambda: service.create_field(
            session, actor=actor, data=CustomFieldCreate.model_validate(_payload(state.values))
        ),
    )
    if made is None:
        session.rollback()
        return _page(request, session, viewer, state, status=422)
    session.commit()
    return with_notice(RedirectResponse("/admin/fields", status_code=303), "created")


@router.get("/admin/fields/{field_id:int}/delete")
def confirm_delete(request: Request, session: DB, viewer: CurrentViewer, field_id: int) -> Response:
    require(viewer.actor, "fields:manage")
    return render(request, "admin/field_delete.html", viewer, field=service.get_field(session, field_id))


@router.post("/admin/fields/{field_id:int}/delete")
async def delete_field(request: Request, session: DB, viewer: PostingViewer, field_id: int) -> Response:
    form = await request.form()
    version = str(form.get("version", ""))
    service.delete_field(
        session,
        actor=viewer.actor.via("ui"),
        field_id=field_id,
        expected_version=int(version) if version.isdigit() else None,
    )
    session.commit()
    return with_notice(RedirectResponse("/admin/fields", status_code=303), "deleted")


def _edit_values(field: Any) -> dict[str, str]:
    def text(value: Any) -> str:
        if value is None:
            return ""
        return f"{value:g}" if isinstance(value, float) else str(value)

    names = _edit_names(field.type)
    values = {name: text(getattr(field, name)) for name in names if name not in ("choices", "required")}
    if "choices" in names:
        values["choices"] = "\n".join(field.choices or [])
    values["required"] = "on" if field.required else ""
    return values


def _edit_page(request: Request, viewer: Viewer, field: Any, state: FormState, *, status: int = 200) -> Response:
    return render(request, "admin/field_edit.html", viewer, status=status, field=field, form=state)


@router.get("/admin/fields/{field_id:int}/edit")
def edit_page(request: Request, session: DB, viewer: CurrentViewer, field_id: int) -> Response:
    require(viewer.actor, "fields:manage")
    field = service.get_field(session, field_id)
    return _edit_page(request, viewer, field, FormState(values=_edit_values(field)))


@router.post("/admin/fields/{field_id:int}/edit")
async def edit_field(request: Request, session: DB, viewer: PostingViewer, field_id: int) -> Response:
    require(viewer.actor, "fields:manage")
    field = service.get_field(session, field_id)
    names = _edit_names(field.type)
    state = read_form(await request.form(), names)

    def save() -> Any:
        values = state.values
        # Every box the form shows is sent: an emptied one clears its rule (explicit None), not "unchanged".
        texts = ("label", "label_en", "min_value", "max_value", "max_length", "help_text")
        data: dict[str, Any] = {name: (values.get(name, "").strip() or None) for name in texts if name in names}
        data["required"] = values.get("required") in ("on", "true", "1")
        if "choices" in names:
            data["choices"] = [c.strip() for c in values.get("choices", "").splitlines() if c.strip()]
        data["position"] = values.get("position", "").strip() or "0"
        version = values.get("version", "")
        data["version"] = int(version) if version.isdigit() else None
        update = CustomFieldUpdate.model_validate(data)
        return service.update_field(
            session, actor=viewer.actor.via("ui"), field_id=field_id, data=update, expected_version=None
        )

    saved = submit(state, translator(viewer.lang), viewer.lang, save)
    if saved is None:
        session.rollback()
        return _edit_page(request, viewer, service.get_field(session, field_id) or field, state, status=422)
    session.commit()
    return with_notice(RedirectResponse("/admin/fields", status_code=303), "saved")
