"""Admin page for tracking sources: create one (its write key shown once), revoke one, see its traffic."""

from __future__ import annotations

from typing import Annotated

from fastapi import Form, Request
from starlette.responses import RedirectResponse, Response

from kizuna.errors import Conflict, NotFound, ValidationError
from kizuna.ingest import sources
from kizuna.web.deps import DB
from kizuna.web.session import CurrentViewer, PostingViewer, Viewer
from kizuna.web.ui_base import error_text, render, ui_router, with_notice

router = ui_router()


def _page(
    request: Request,
    session: DB,
    viewer: Viewer,
    *,
    status: int = 200,
    error: str = "",
    name: str = "",
    new_key: str = "",
) -> Response:
    rows = sources.list_sources(session, actor=viewer.actor)
    snippet_host = str(request.base_url).rstrip("/")
    return render(
        request,
        "admin/sources.html",
        viewer,
        status=status,
        sources=rows,
        error=error,
        name=name,
        new_key=new_key,
        host=snippet_host,
    )


@router.get("/admin/sources")
def sources_page(request: Request, session: DB, viewer: CurrentViewer) -> Response:
    return _page(request, session, viewer)


@router.post("/admin/sources")
def create_source(
    request: Request, session: DB, viewer: PostingViewer, name: Annotated[str, Form(max_length=200)] = ""
) -> Response:
    try:
        _, key = sources.create_source(session, actor=viewer.actor, name=name)
    except (ValidationError, Conflict) as exc:
        session.rollback()
        message = error_text(viewer.lang, exc.status_code, exc)
        return _page(request, session, viewer, status=exc.status_code, error=message, name=name)
    session.commit()
    # Rendered, not redirected: the key is shown this once and never travels in a URL or a cookie.
    response = _page(request, session, viewer, new_key=key)
    response.headers["Cache-Control"] = "no-store"
    return response


@router.post("/admin/sources/{source_id}/revoke")
def revoke_source(session: DB, viewer: PostingViewer, source_id: int) -> Response:
    try:
        sources.revoke_source(session, actor=viewer.actor, ref=source_id)
    except NotFound:
        session.rollback()
        raise
    session.commit()
    return with_notice(RedirectResponse("/admin/sources", status_code=303), "saved")
