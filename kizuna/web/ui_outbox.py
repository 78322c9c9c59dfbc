"""Admin page for the outbox: what each subscriber has left to do, and dead deliveries to retry."""

from __future__ import annotations

from typing import Annotated

from fastapi import Form, Request
from starlette.responses import RedirectResponse, Response

from kizuna.outbox import service
from kizuna.web.deps import DB
from kizuna.web.session import CurrentViewer, PostingViewer
from kizuna.web.ui_base import render, ui_router

router = ui_router()


@router.get("/admin/outbox")
def outbox_page(request: Request, session: DB, viewer: CurrentViewer, subscriber: str | None = None) -> Response:
    rows = service.status(session, actor=viewer.actor)
    dead = service.list_deliveries(session, actor=viewer.actor, status="dead", subscriber=subscriber or None)
    return render(request, "admin/outbox.html", viewer, rows=rows, dead=dead, subscriber=subscriber or "")


@router.post("/admin/outbox/retry")
def retry(
    session: DB,
    viewer: PostingViewer,
    delivery_id: Annotated[int | None, Form()] = None,
    subscriber: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    service.retry(
        session,
        actor=viewer.actor,
        delivery_ids=[delivery_id] if delivery_id is not None else None,
        subscriber=subscriber or None,
    )
    session.commit()
    return RedirectResponse("/admin/outbox", status_code=303)
