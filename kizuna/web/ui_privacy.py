"""Audience downloads from a segment's page, and the third-party provision records (APPI) for admins."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Form, Request
from starlette.responses import Response

from kizuna.audiences.service import MEDIA_TYPE, write_audience
from kizuna.privacy import service as privacy
from kizuna.web.deps import DB
from kizuna.web.session import CurrentViewer, PostingViewer
from kizuna.web.ui_base import render, ui_router

router = ui_router()
PROVISION_FILTERS = ("customer_id", "recipient", "via")
PAGE = 50


@router.post("/segments/{segment_id}/audience")
def segment_audience(
    session: DB, viewer: PostingViewer, segment_id: int, platform: Annotated[str, Form()] = ""
) -> Response:
    """Download the segment's audience file for an ad platform (a POST with the CSRF token: a download of
    personal data, however hashed, must not start from another site's link). Provisions are recorded and the
    export audited by the service, in this request's transaction."""
    import io

    out = io.BytesIO()
    result = write_audience(session, actor=viewer.actor.via("ui"), segment_id=segment_id, platform=platform, out=out)
    session.commit()
    disposition = f'attachment; filename="{result.file_name}"'
    return Response(out.getvalue(), media_type=MEDIA_TYPE, headers={"Content-Disposition": disposition})


@router.get("/admin/provisions")
def provisions_page(request: Request, session: DB, viewer: CurrentViewer, cursor: str | None = None) -> Response:
    """Every third-party provision record, newest first, filtered by customer, recipient and channel."""
    form = {k: request.query_params.get(k, "").strip() for k in PROVISION_FILTERS}
    form = {k: v for k, v in form.items() if v}
    params: dict[str, Any] = {}
    if "customer_id" in form:
        params["customer_id"] = form["customer_id"]
    if "recipient" in form:
        params["recipient__contains"] = form["recipient"]
    if "via" in form:
        params["via"] = form["via"]
    rows, older = privacy.list_provisions(session, actor=viewer.actor, params=params, cursor=cursor, limit=PAGE)
    return render(
        request,
        "admin/provisions.html",
        viewer,
        rows=rows,
        older=older,
        before=cursor,
        form=form,
        retention_years=privacy.RETENTION_YEARS,
    )


@router.post("/customers/{customer_id:int}/export")
def customer_subject_export(session: DB, viewer: PostingViewer, customer_id: int) -> Response:
    """Download everything held about the customer (a data-subject access request) as a ZIP.

    A POST with the CSRF token, as the list and audience exports: a download of a person's data must not start
    from another site's link or image. A merged id exports its survivor; the service checks
    ``customers:export_subject`` and writes the audit entry.
    """
    from kizuna.privacy.api import subject_export_response

    return subject_export_response(session, actor=viewer.actor.via("ui"), customer_id=customer_id)
