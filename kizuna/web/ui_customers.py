"""UI pages for customers: the customer 360 and notes (the lists are in ``ui_lists``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Form, Request
from starlette.responses import RedirectResponse, Response

from kizuna.customers import service as customers
from kizuna.customers.customer360 import customer_360
from kizuna.customers.schemas import NoteCreate
from kizuna.web.deps import DB
from kizuna.web.session import CurrentViewer, PostingViewer
from kizuna.web.ui_base import render, ui_router

router = ui_router()

PAGE_SIZE = 50


@router.get("/customers/{customer_id:int}")
def customer_detail(
    request: Request, session: DB, viewer: CurrentViewer, customer_id: int, before: str | None = None
) -> Response:
    view = customer_360(
        session, actor=viewer.actor, customer_id=customer_id, timeline_cursor=before, timeline_limit=PAGE_SIZE
    )
    if view.customer.id != customer_id:
        # A merged id: show the survivor under its own address.
        return RedirectResponse(f"/customers/{view.customer.id}", status_code=302)
    return render(
        request,
        "customers/detail.html",
        viewer,
        view=view,
        customer=view.customer,
        older=view.timeline_next_cursor,
        before=before,
    )


@router.post("/customers/{customer_id:int}/notes")
def add_note(
    session: DB, viewer: PostingViewer, customer_id: int, body: Annotated[str, Form(max_length=20000)] = ""
) -> Response:
    note = customers.add_note(session, actor=viewer.actor, customer_id=customer_id, data=NoteCreate(body=body))
    session.commit()
    return RedirectResponse(f"/customers/{note.customer_id}#timeline", status_code=303)
