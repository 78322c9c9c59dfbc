"""Admin page for custom fields: the fields of customers, companies and deals, add one, delete one (asked
to confirm first; the stored values stay)."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from starlette.responses import RedirectResponse, Response

from kizuna.auth.permissions import require
from kizuna.fields import service
from kizuna.fields.schemas import CustomFieldCreate
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
