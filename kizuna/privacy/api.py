"""``/api/v1/privacy/provisions``: the third-party provision records (APPI), for admins."""

from __future__ import annotations

from fastapi import APIRouter, Request

from kizuna.config import get_settings
from kizuna.privacy import service
from kizuna.privacy.schemas import ProvisionRead
from kizuna.schemas import Page
from kizuna.web.api import Cursor, Limit, Sort, filter_params
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
