from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Request, Response
from sqlalchemy import select

from kizuna.auth.permissions import require
from kizuna.events import service
from kizuna.events.filters import EVENT_FILTERS
from kizuna.events.models import Event
from kizuna.events.schemas import EventCreate, EventRead
from kizuna.schemas import Page
from kizuna.web.api import Cursor, Limit, Sort, page_of, require_if_match, with_etag
from kizuna.web.deps import DB, APIActor

router = APIRouter(prefix="/events", tags=["events"])
IfMatch = Annotated[str | None, Header(description='ETag from a GET, e.g. W/"1"')]


@router.get("", response_model=Page[EventRead])
def list_events(
    request: Request, session: DB, actor: APIActor, sort: Sort = None, cursor: Cursor = None, limit: Limit = 50
) -> dict:
    require(actor, "events:read")
    return page_of(
        session, EVENT_FILTERS, select(Event), request, schema=EventRead, sort=sort, cursor=cursor, limit=limit
    )


@router.post(
    "",
    response_model=EventRead,
    status_code=201,
    responses={200: {"description": "An event with this external_id was already recorded"}},
)
def record_event(data: EventCreate, response: Response, session: DB, actor: APIActor) -> Event:
    """Record a touchpoint. Events are append-only: there is no update; resending an external_id is a no-op."""
    event, created = service.record_event(session, actor=actor, data=data)
    session.commit()
    if not created:
        response.status_code = 200
    response.headers["Location"] = f"/api/v1/events/{event.id}"
    return event


@router.get("/{event_id}", response_model=EventRead)
def get_event(event_id: int, response: Response, session: DB, actor: APIActor) -> Event:
    require(actor, "events:read")
    event = service.get_event(session, event_id)
    with_etag(response, service.EVENT_VERSION)
    return event


@router.delete("/{event_id}", status_code=204)
def delete_event(event_id: int, session: DB, actor: APIActor, if_match: IfMatch = None) -> Response:
    """Delete an event (a correction or an erasure); like every delete it needs ``If-Match``."""
    service.delete_event(session, actor=actor, event_id=event_id, expected_version=require_if_match(if_match))
    session.commit()
    return Response(status_code=204)
