"""The calendar feed: a user's tasks, meetings and deal close dates at a secret URL, read by a real iCalendar
parser over real HTTP; revoked or replaced URLs answer 404."""

from __future__ import annotations

import datetime as dt
import hashlib

import httpx
from icalendar import Calendar
from sqlalchemy import select
from sqlalchemy.engine import Engine

from kizuna.auth import service as auth
from kizuna.auth.models import AuditEntry, User
from kizuna.db import transaction
from kizuna.sales import activities, calendar, deals
from kizuna.sales.models import CalendarFeed
from kizuna.sales.schemas import ActivityCreate, DealCreate, TaskCreate
from tests import factories
from tests.web.conftest import csrf_of

UTC = dt.UTC
DUE = dt.datetime(2031, 5, 20, 1, 30, tzinfo=UTC)  # 10:30 in Tokyo
MEETING = dt.datetime(2031, 5, 21, 5, 0, tzinfo=UTC)
CLOSE = dt.date(2031, 6, 30)


def _rep(db: Engine, email: str, role: str = "sales"):  # noqa: ANN202
    with transaction(db) as s:
        return auth.actor_for(factories.user(s, email=email, role=role))


def _fill(db: Engine, rep, other) -> None:  # noqa: ANN001
    with transaction(db) as s:
        who = {"customer_id": factories.customer(s, email="buyer@example.jp").id}
        big = DealCreate(name="大型案件", amount=1_200_000, expected_close_date=CLOSE, **who)
        on_deal = {"deal_id": deals.create_deal(s, actor=rep, data=big).id}
        quote = TaskCreate(title="見積書を送る", due_at=DUE, notes="PDF で", **on_deal)
        activities.create_task(s, actor=rep, data=quote)
        activities.create_task(s, actor=rep, data=TaskCreate(title="期限なしのメモ", **on_deal))
        meeting = ActivityCreate(kind="meeting", subject="定例会議", occurred_at=MEETING, duration_minutes=30, **who)
        activities.log_activity(s, actor=rep, data=meeting)
        activities.log_activity(s, actor=rep, data=ActivityCreate(kind="call", subject="電話は載らない", **who))
        # Someone else's task and deal stay out of the rep's feed.
        theirs = deals.create_deal(s, actor=other, data=DealCreate(name="他人の商談", expected_close_date=CLOSE, **who))
        activities.create_task(s, actor=other, data=TaskCreate(title="他人のタスク", due_at=DUE, deal_id=theirs.id))


def _events(body: bytes) -> dict[str, object]:
    cal = Calendar.from_ical(body)
    return {str(e.get("summary")): e for e in cal.walk("VEVENT")}


def test_feed_over_http_holds_the_users_task_meeting_and_close_date(db: Engine, live_server: str) -> None:
    rep, other = _rep(db, "rep@example.com"), _rep(db, "other@example.com")
    _fill(db, rep, other)
    with transaction(db) as s:
        _, secret = calendar.create_feed(s, actor=rep)
        stored = s.scalar(select(CalendarFeed))
        assert stored.token_hash == hashlib.sha256(secret.encode()).hexdigest() and secret not in stored.prefix + "x"
    r = httpx.get(f"{live_server}/calendar/{secret}.ics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/calendar")
    events = _events(r.content)
    assert set(events) == {"見積書を送る", "定例会議", "大型案件 (close)"}
    task = events["見積書を送る"]
    assert task.decoded("dtstart") == DUE and str(task.get("description")) == "PDF で"
    meeting = events["定例会議"]
    assert meeting.decoded("dtend") - meeting.decoded("dtstart") == dt.timedelta(minutes=30)
    close = events["大型案件 (close)"]
    assert close.decoded("dtstart") == CLOSE  # an all-day event on the date itself
    assert "1,200,000 JPY" in str(close.get("description"))
    with transaction(db) as s:
        assert s.scalar(select(CalendarFeed.last_used_at)) is not None


def test_revoked_and_replaced_urls_answer_404(db: Engine, live_server: str) -> None:
    rep = _rep(db, "rep@example.com")
    with transaction(db) as s:
        _, first = calendar.create_feed(s, actor=rep)
    with transaction(db) as s:
        _, second = calendar.create_feed(s, actor=rep)  # regenerate: the first stops working
    assert httpx.get(f"{live_server}/calendar/{first}.ics").status_code == 404
    assert httpx.get(f"{live_server}/calendar/{second}.ics").status_code == 200
    with transaction(db) as s:
        assert calendar.revoke_feed(s, actor=rep) == 1
    assert httpx.get(f"{live_server}/calendar/{second}.ics").status_code == 404
    assert httpx.get(f"{live_server}/calendar/kzcal_guess.ics").status_code == 404
    with transaction(db) as s:
        actions = set(s.scalars(select(AuditEntry.action).where(AuditEntry.action.like("calendar.%"))))
    assert actions == {"calendar.create", "calendar.revoke"}


def test_a_deactivated_user_s_feed_answers_404(db: Engine, live_server: str) -> None:
    rep = _rep(db, "rep@example.com")
    with transaction(db) as s:
        _, secret = calendar.create_feed(s, actor=rep)
        s.get(User, rep.user_id).is_active = False
    assert httpx.get(f"{live_server}/calendar/{secret}.ics").status_code == 404


def test_feed_shows_only_the_kinds_the_role_may_read(db: Engine, monkeypatch) -> None:  # noqa: ANN001
    # Every shipped role reads sales records; a role without deals:read (a reduced one) gets no deals.
    from kizuna.auth.permissions import PERMISSIONS

    rep, other = _rep(db, "rep@example.com"), _rep(db, "other@example.com")
    _fill(db, rep, other)
    with transaction(db) as s:
        assert "大型案件 (close)" in _events(calendar.feed_ics(s, actor=rep))
        monkeypatch.setitem(PERMISSIONS, "sales", PERMISSIONS["sales"] - {"deals:read", "activities:read"})
        shown = _events(calendar.feed_ics(s, actor=rep))
    assert set(shown) == {"見積書を送る"}


def test_settings_page_shows_the_url_once_and_revokes_it(ui_client, db: Engine) -> None:
    c = ui_client("sales")
    c.cookies.set("kizuna_lang", "ja")
    page = c.get("/settings/calendar")
    assert page.status_code == 200 and "フィード URL はまだありません" in page.text
    made = c.post("/settings/calendar", data={"csrf_token": csrf_of(page.text)})
    assert made.status_code == 200  # followed the redirect
    url = made.text.split('id="calendar-url" data-testid="calendar-url"')[0].rsplit('value="', 1)[1].split('"')[0]
    assert url.startswith("http://testserver/calendar/kzcal_") and url.endswith(".ics")
    assert c.get(url.removeprefix("http://testserver")).status_code == 200
    again = c.get("/settings/calendar")
    assert url not in again.text and "フィード URL は有効です" in again.text  # shown once only
    revoked = c.post("/settings/calendar/revoke", data={"csrf_token": csrf_of(again.text)})
    assert "フィード URL を無効にしました" in revoked.text
    assert c.get(url.removeprefix("http://testserver")).status_code == 404


def test_api_creates_and_revokes_the_feed(client) -> None:
    assert client.get("/api/v1/calendar/feed").json() == {
        "active": False,
        "prefix": None,
        "created_at": None,
        "last_used_at": None,
        "url": None,
    }
    made = client.post("/api/v1/calendar/feed")
    assert made.status_code == 201
    url = made.json()["url"]
    assert client.get("/api/v1/calendar/feed").json()["url"] is None  # never shown again
    assert Calendar.from_ical(client.get(url).content).get("prodid")
    assert client.delete("/api/v1/calendar/feed").status_code == 204
    assert client.get(url).status_code == 404
