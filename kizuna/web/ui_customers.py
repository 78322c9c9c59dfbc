"""UI pages for one customer: the customer 360 and its notes (lists and exports live in ``ui_lists``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Form, Query, Request
from starlette.responses import RedirectResponse, Response

from kizuna.customers import service as customers
from kizuna.customers.schemas import NoteCreate
from kizuna.web.deps import DB
from kizuna.web.forms import FormState, submit
from kizuna.web.i18n import translator
from kizuna.web.session import CurrentViewer, PostingViewer, Viewer
from kizuna.web.ui_base import TIMELINE_KINDS, ui_router

router = ui_router()

PAGE_SIZE = 50


@router.get("/customers/{customer_id:int}")
def customer_detail(
    request: Request,
    session: DB,
    viewer: CurrentViewer,
    customer_id: int,
    before: str | None = None,
    kind: Annotated[list[str] | None, Query()] = None,
) -> Response:
    return _detail_page(request, session, viewer, customer_id, before=before, kind=kind)


def _detail_page(
    request: Request,
    session: DB,
    viewer: Viewer,
    customer_id: int,
    *,
    before: str | None = None,
    note_form: FormState | None = None,
    status: int = 200,
    kind: list[str] | None = None,
) -> Response:
    """The 360 page; ``note_form`` re-shows a refused note with its text and the message next to the field."""
    from kizuna.web.ui_customer_forms import render_360

    forms = {"note_form": note_form} if note_form is not None else {}
    # The timeline filter's checkboxes; a kind that no longer exists (an old bookmark) is ignored, not an error.
    kinds = [k for k in TIMELINE_KINDS if k in (kind or [])]
    return render_360(request, session, viewer, customer_id, status=status, before=before, kinds=kinds, **forms)


@router.post("/customers/{customer_id:int}/notes")
def add_note(
    request: Request, session: DB, viewer: PostingViewer, customer_id: int, body: Annotated[str, Form()] = ""
) -> Response:
    """Add a note as written; a blank or too long one re-shows the 360 page with the text and the message."""
    state = FormState(values={"body": body})
    note = submit(
        state,
        translator(viewer.lang),
        viewer.lang,
        lambda: customers.add_note(session, actor=viewer.actor, customer_id=customer_id, data=NoteCreate(body=body)),
    )
    if note is None:
        session.rollback()
        return _detail_page(request, session, viewer, customer_id, note_form=state, status=422)
    session.commit()
    return RedirectResponse(f"/customers/{note.customer_id}#timeline", status_code=303)
