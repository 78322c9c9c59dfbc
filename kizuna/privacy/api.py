"""``/api/v1/privacy/provisions``: the third-party provision records (APPI), for admins; and
``/api/v1/customers/{id}/export``: a data-subject access export."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from sqlalchemy.orm import Session

from kizuna.auth.permissions import Actor
from kizuna.config import get_settings
from kizuna.privacy import service
from kizuna.privacy.schemas import ProvisionRead
from kizuna.privacy.subject_export import write_subject_export
from kizuna.schemas import Page
from kizuna.web.api import Cursor, Limit, Sort, filter_params, spooled_download
from kizuna.web.deps import DB, APIActor

router = APIRouter(prefix="/privacy", tags=["privacy"])


@router.get("/provisions", response_model=Page[ProvisionRead])
def list_provisions(
    request: Request, session: DB, actor: APIActor, sort: Sort = None, cursor: Cursor = None, limit: Limit = 50
) -> dict:
    """Who received which fields of which customer, when, how and why; filter like any list
    (``customer_id=12``, ``recipient__contains=Google``, ``via=webhook``, ``provided_at__gte=2026-01-01``)."""
    rows, next_cursor = service.list_provisions(
        session,
        actor=actor,
        params=filter_params(request),
        sort=sort,
        cursor=cursor,
        limit=min(limit, get_settings().page_size_max),
    )
    return {"items": [ProvisionRead.model_validate(r) for r in rows], "next_cursor": next_cursor}


@router.post("/provisions/purge")
def purge(session: DB, actor: APIActor) -> dict[str, int]:
    """Delete the records older than the three-year retention now (the worker also does it daily)."""
    count = service.purge_expired(session, actor=actor)
    session.commit()
    return {"purged": count}


# --- data-subject access export (GDPR art. 15, APPI 開示請求) ----------------------------------------------------
subjects = APIRouter(prefix="/customers", tags=["privacy"])


def subject_export_response(session: Session, *, actor: Actor, customer_id: int) -> StreamingResponse:
    """Write the export to a spool file, commit its audit entry, then stream the ZIP (the API and the UI's button)."""
    return spooled_download(
        session,
        lambda out: write_subject_export(session, actor=actor, customer_id=customer_id, out=out),
        media_type="application/zip",
        headers=lambda result: {
            "Content-Disposition": f'attachment; filename="{result.file_name}"',
            "Cache-Control": "no-store",
        },
    )


@subjects.get(
    "/{customer_id}/export",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/zip": {}}, "description": "A ZIP of JSON files"}},
)
def export_subject(customer_id: int, session: DB, actor: APIActor) -> StreamingResponse:
    """Everything Kizuna holds about the customer, for a data-subject access request (GDPR art. 15, APPI 開示請求).

    A ZIP with one JSON file per table (the customer, the records merged into it, identities, consents, orders and
    their lines, events, messages and their opens and clicks, journeys, segments, deals, inquiries, chats, survey
    answers, audit entries, third-party provisions ...), ``context/`` for what ids refer to, and ``manifest.json``
    with the row counts and what was left out (secrets) and why. A merged id exports its survivor. Admins only
    (``customers:export_subject``); audited as ``privacy.subject_export``.
    """
    return subject_export_response(session, actor=actor, customer_id=customer_id)
