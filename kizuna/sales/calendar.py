"""Each user's calendar as an iCalendar feed at a secret URL (``/calendar/{token}.ics``).

Outlook and Google Calendar subscribe to a URL and cannot sign in, so the URL itself is the credential: a random
token of which only the SHA-256 is kept (as for API tokens), shown once, revocable, and replaced by a new one on
demand. The feed holds the user's open tasks with a due time, their meetings (activities of kind ``meeting``)
and the expected close dates of their open deals, each only while the user's role may read that kind of record.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets

from icalendar import Calendar, Event
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from kizuna.auth import audit
from kizuna.auth.models import User
from kizuna.auth.permissions import Actor
from kizuna.config import get_settings
from kizuna.db import utcnow
from kizuna.errors import NotFound
from kizuna.sales.models import Activity, CalendarFeed, Deal, Stage, Task

FEED_PREFIX = "kzcal_"  # noqa: S105 - a visible prefix, not a secret
# Past items kept in the feed: enough to look back on last quarter, small enough that clients poll it cheaply.
PAST_DAYS = 90
# A meeting logged without a duration is shown as this long.
DEFAULT_MEETING_MINUTES = 60
# A task is a point in time; calendars show it as a short event at its due time.
TASK_MINUTES = 15


def _sha256(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def active_feed(session: Session, *, actor: Actor) -> CalendarFeed | None:
    """The user's current (not revoked) feed, or None."""
    if actor.user_id is None:
        return None
    return session.scalar(
        select(CalendarFeed)
        .where(CalendarFeed.user_id == actor.user_id, CalendarFeed.revoked_at.is_(None))
        .order_by(CalendarFeed.id.desc())
    )


def _revoke_all(session: Session, user_id: int) -> int:
    result = session.execute(
        update(CalendarFeed)
        .where(CalendarFeed.user_id == user_id, CalendarFeed.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def create_feed(session: Session, *, actor: Actor) -> tuple[CalendarFeed, str]:
    """A new secret feed URL token for the acting user (any earlier one stops working); the token is returned
    once and never stored."""
    if actor.user_id is None:
        raise NotFound("a calendar feed belongs to a signed-in user")
    replaced = _revoke_all(session, actor.user_id)
    secret = FEED_PREFIX + secrets.token_urlsafe(32)
    feed = CalendarFeed(user_id=actor.user_id, prefix=secret[:12], token_hash=_sha256(secret))
    session.add(feed)
    session.flush()
    audit.record(
        session,
        actor=actor,
        action="calendar.create",
        entity_type="calendar_feed",
        entity_id=feed.id,
        details={"replaced": replaced},
        summary="calendar feed URL created" + (" (the previous one revoked)" if replaced else ""),
    )
    return feed, secret


def revoke_feed(session: Session, *, actor: Actor) -> int:
    """Revoke the acting user's feed URL; answers how many were revoked (0 when there was none)."""
    if actor.user_id is None:
        return 0
    revoked = _revoke_all(session, actor.user_id)
    if revoked:
        audit.record(
            session,
            actor=actor,
            action="calendar.revoke",
            entity_type="calendar_feed",
            entity_id=actor.user_id,
            summary="calendar feed URL revoked",
        )
    return revoked


def feed_url(secret: str) -> str:
    """The URL to subscribe to: under ``KIZUNA_PUBLIC_URL`` when set, else a path the page completes."""
    return f"{get_settings().public_url.rstrip('/')}/calendar/{secret}.ics"


def feed_owner(session: Session, token: str) -> Actor:
    """The user a feed token belongs to, as an Actor; NotFound for an unknown, revoked or deactivated one
    (the same answer for each, so a probe learns nothing)."""
    from kizuna.auth.service import actor_for

    row = session.execute(
        select(CalendarFeed, User)
        .join(User, User.id == CalendarFeed.user_id)
        .where(CalendarFeed.token_hash == _sha256(token), CalendarFeed.revoked_at.is_(None))
    ).first()
    if row is None or not row[1].is_active:
        raise NotFound("no such calendar")
    feed, user = row
    feed.last_used_at = utcnow()
    return actor_for(user).via("calendar")


def feed_ics(session: Session, *, actor: Actor, now: dt.datetime | None = None) -> bytes:
    """The iCalendar text of ``actor``'s tasks, meetings and deal close dates that their role may read."""
    now = now or utcnow()
    since = now - dt.timedelta(days=PAST_DAYS)
    base = get_settings().public_url.rstrip("/")
    cal = Calendar()
    cal.add("prodid", "-//Kizuna CRM//calendar feed//EN")
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    cal.add("x-wr-calname", f"Kizuna: {actor.label}")
    # How often clients should poll (Outlook and Apple read these; Google polls on its own schedule).
    cal.add("refresh-interval", dt.timedelta(hours=1), parameters={"VALUE": "DURATION"})
    cal.add("x-published-ttl", "PT1H")
    uid_host = "kizuna"
    if actor.can("tasks:read"):
        tasks = session.scalars(
            select(Task)
            .where(Task.owner_id == actor.user_id, Task.status == "open", Task.due_at >= since)
            .order_by(Task.due_at, Task.id)
        )
        for task in tasks:
            due = task.due_at
            assert due is not None  # filtered above
            event = _event(f"task-{task.id}@{uid_host}", task.title, task.updated_at or now)
            event.add("dtstart", due)
            event.add("dtend", due + dt.timedelta(minutes=TASK_MINUTES))
            event.add("categories", ["task"])
            _describe(event, task.notes, f"{base}/deals/{task.deal_id}" if task.deal_id else None)
            cal.add_component(event)
    if actor.can("activities:read"):
        meetings = session.scalars(
            select(Activity)
            .where(Activity.user_id == actor.user_id, Activity.kind == "meeting", Activity.occurred_at >= since)
            .order_by(Activity.occurred_at, Activity.id)
        )
        for meeting in meetings:
            minutes = meeting.duration_minutes or DEFAULT_MEETING_MINUTES
            event = _event(f"meeting-{meeting.id}@{uid_host}", meeting.subject, meeting.updated_at or now)
            event.add("dtstart", meeting.occurred_at)
            event.add("dtend", meeting.occurred_at + dt.timedelta(minutes=minutes))
            event.add("categories", ["meeting"])
            _describe(event, meeting.notes, f"{base}/deals/{meeting.deal_id}" if meeting.deal_id else None)
            cal.add_component(event)
    if actor.can("deals:read"):
        deals = session.scalars(
            select(Deal)
            .join(Stage, Stage.id == Deal.stage_id)
            .where(
                Deal.owner_id == actor.user_id,
                Stage.kind == "open",
                Deal.expected_close_date.is_not(None),
                Deal.expected_close_date >= since.date(),
            )
            .order_by(Deal.expected_close_date, Deal.id)
        )
        for deal in deals:
            close = deal.expected_close_date
            assert close is not None  # filtered above
            event = _event(f"deal-close-{deal.id}@{uid_host}", f"{deal.name} (close)", deal.updated_at or now)
            event.add("dtstart", close)  # a date: an all-day event
            event.add("dtend", close + dt.timedelta(days=1))
            event.add("transp", "TRANSPARENT")  # a close date does not make the user busy
            event.add("categories", ["deal"])
            _describe(event, f"{deal.amount:,.0f} {deal.currency}, {deal.probability}%", f"{base}/deals/{deal.id}")
            cal.add_component(event)
    return cal.to_ical()


def _event(uid: str, summary: str, stamp: dt.datetime) -> Event:
    event = Event()
    event.add("uid", uid)
    event.add("summary", summary)
    event.add("dtstamp", stamp)
    return event


def _describe(event: Event, text: str, url: str | None) -> None:
    if text:
        event.add("description", text)
    if url and url.startswith("http"):
        event.add("url", url)
