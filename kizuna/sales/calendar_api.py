"""The calendar feed over HTTP: the secret ``.ics`` URL calendar clients poll, and its management in the API."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from kizuna.sales import calendar
from kizuna.sales.schemas import CalendarFeedRead
from kizuna.web.deps import DB, APIActor

# Outside /api/v1: calendar clients fetch it without a token header; the path is the credential.
feed_router = APIRouter(tags=["calendar"])
calendar_router = APIRouter(prefix="/calendar", tags=["calendar"])


@feed_router.get(
    "/calendar/{token}.ics",
    response_class=Response,
    responses={200: {"content": {"text/calendar": {}}}, 404: {"description": "unknown or revoked URL"}},
)
def feed(token: str, session: DB) -> Response:
    """The user's tasks, meetings and deal close dates as iCalendar (RFC 5545). 404 once the URL is revoked."""
    actor = calendar.feed_owner(session, token)
    body = calendar.feed_ics(session, actor=actor)
    session.commit()  # last_used_at
    # The URL is a credential: no shared cache may keep the answer.
    headers = {"Cache-Control": "private, max-age=300", "Content-Disposition": 'inline; filename="kizuna.ics"'}
    return Response(body, media_type="text/calendar; charset=utf-8", headers=headers)


def feed_url(request: Request, secret: str) -> str:
    """The full URL to subscribe to: under KIZUNA_PUBLIC_URL when set, else this request's host."""
    url = calendar.feed_url(secret)
    return url if url.startswith("http") else str(request.base_url).rstrip("/") + url


@calendar_router.get("/feed", response_model=CalendarFeedRead)
def get_feed(session: DB, actor: APIActor) -> CalendarFeedRead:
    """Whether the calling user has a feed URL (its prefix and dates; never the URL itself)."""
    found = calendar.active_feed(session, actor=actor)
    if found is None:
        return CalendarFeedRead(active=False)
    return CalendarFeedRead(
        active=True,
        prefix=found.prefix,
        created_at=found.created_at.isoformat(),
        last_used_at=found.last_used_at.isoformat() if found.last_used_at else None,
    )


@calendar_router.post("/feed", status_code=201, response_model=CalendarFeedRead)
def create_feed(request: Request, session: DB, actor: APIActor) -> CalendarFeedRead:
    """A new secret feed URL for the calling user, shown this once; the previous URL stops working."""
    made, secret = calendar.create_feed(session, actor=actor)
    session.commit()
    return CalendarFeedRead(
        active=True, prefix=made.prefix, created_at=made.created_at.isoformat(), url=feed_url(request, secret)
    )


@calendar_router.delete("/feed", status_code=204)
def revoke_feed(session: DB, actor: APIActor) -> Response:
    """Revoke the calling user's feed URL: it answers 404 from now on."""
    calendar.revoke_feed(session, actor=actor)
    session.commit()
    return Response(status_code=204)
