"""The business-card page: upload a photo or scan, correct the draft Tesseract read, save it as a customer."""

from __future__ import annotations

from fastapi import Request
from starlette.datastructures import UploadFile
from starlette.responses import RedirectResponse, Response

from kizuna.auth.permissions import require
from kizuna.customers import card_scan
from kizuna.customers.card_parse import CardDraft, CardReadError
from kizuna.customers.schemas import CardContactIn
from kizuna.web.deps import DB
from kizuna.web.forms import FormState, read_form, submit, translate_error
from kizuna.web.i18n import translator
from kizuna.web.session import CurrentViewer, PostingViewer, Viewer
from kizuna.web.ui_base import render, ui_router, with_notice

router = ui_router()

FIELDS = tuple(CardContactIn.model_fields)


def _page(
    request: Request,
    viewer: Viewer,
    *,
    form: FormState | None = None,
    lines: list[str] | None = None,
    upload_error: str = "",
    status: int = 200,
) -> Response:
    return render(
        request,
        "customers/scan.html",
        viewer,
        status=status,
        form=form,
        lines=lines or [],
        upload_error=upload_error,
        fields=FIELDS,
    )


def _form_of(draft: CardDraft) -> FormState:
    values = {name: "" for name in FIELDS}
    for name in FIELDS:
        value = getattr(draft, name, None)
        if isinstance(value, str):
            values[name] = value
    values["phone"] = draft.phones[0] if draft.phones else ""
    values["other_phones"] = ", ".join(draft.phones[1:])
    return FormState(values=values)


@router.get("/customers/scan")
def scan_form(request: Request, viewer: CurrentViewer) -> Response:
    require(viewer.actor, "customers:write")
    return _page(request, viewer)


@router.post("/customers/scan")
async def scan(request: Request, viewer: PostingViewer) -> Response:
    """Read the uploaded card and show the draft in the form to correct; nothing is stored yet."""
    require(viewer.actor, "customers:write")
    form = await request.form()
    upload = form.get("file")
    data = await upload.read(card_scan.MAX_BYTES + 1) if isinstance(upload, UploadFile) else b""
    try:
        draft = card_scan.read_card(data)
    except CardReadError as exc:
        message = translate_error(translator(viewer.lang), viewer.lang, exc)
        return _page(request, viewer, upload_error=message, status=422)
    return _page(request, viewer, form=_form_of(draft), lines=draft.lines)


@router.post("/customers/scan/save")
async def save(request: Request, session: DB, viewer: PostingViewer) -> Response:
    """Save the corrected card through the import's identity rules and open the customer."""
    require(viewer.actor, "customers:write")
    form = await request.form()
    state = read_form(form, FIELDS)
    lines = [v for v in form.getlist("line") if isinstance(v, str)]
    t = translator(viewer.lang)
    actor = viewer.actor.via("ui")
    saved = submit(
        state,
        t,
        viewer.lang,
        lambda: card_scan.save_card(
            session,
            actor=actor,
            values=CardContactIn.model_validate({k: v or None for k, v in state.values.items()}).model_dump(),
        ),
    )
    if saved is None:
        session.rollback()
        return _page(request, viewer, form=state, lines=lines, status=422)
    session.commit()
    customer, outcome = saved
    return with_notice(RedirectResponse(f"/customers/{customer.id}", status_code=303), f"card_{outcome}")
