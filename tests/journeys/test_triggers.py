"""Ways in and the goal: segment entries, events with property filters (backfilled history enrols nobody), orders,
the date and dormancy scans in each customer's time zone, manual enrolment, re-entry rules, and conversions."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select, update

from kizuna.auth.permissions import Actor
from kizuna.db import utcnow
from kizuna.events import service as events
from kizuna.events.schemas import EventCreate
from kizuna.journeys import engine, scans, service
from kizuna.journeys.models import JourneyEnrollment
from kizuna.outbox.models import OutboxMessage
from kizuna.outbox.worker import run_once
from kizuna.segments import service as segments
from kizuna.segments.schemas import SegmentCreate
from tests import factories
from tests.journeys.conftest import MARKETER, definition, enrollments, publish

TAG_AND_EXIT = [{"id": "t", "type": "tag", "add": ["journeyed"], "next": "x"}, {"id": "x", "type": "exit"}]
IMPORTER = Actor.system("import", origin="import")


def drain(db) -> None:  # noqa: ANN001
    """Run the worker in this process until the outbox and the engine have nothing left."""
    while True:
        tally = run_once(db, worker="test-worker", limit=500)
        if not (tally.done or tally.failed or tally.pumped):
            return


def page_view(session, customer_id: int | None, path: str, *, actor: Actor = factories.SYSTEM, **more):  # noqa: ANN001, ANN201
    data = EventCreate(
        customer_id=customer_id,
        anonymous_id=None if customer_id else "anon-1",
        type="page_view",
        channel="web",
        occurred_at=utcnow(),
        properties={"path": path, **more},
    )
    return events.record_event(session, actor=actor, data=data)[0]


def test_customers_entering_a_segment_enter_the_journey_once(session, db):
    tokyo = [factories.customer(session, email=f"t{i}@example.jp", prefecture="東京都").id for i in range(3)]
    factories.customer(session, email="o@example.jp", prefecture="大阪府")
    segment = segments.create_segment(
        session,
        actor=factories.SYSTEM,
        data=SegmentCreate(name="東京", rule={"attribute": "prefecture", "op": "eq", "value": "東京都"}),
    )
    session.commit()
    trigger = {"type": "segment_entered", "segment": segment.id}
    newcomers = publish(session, definition(TAG_AND_EXIT, name="newcomers", trigger=trigger))
    everyone = publish(session, definition(TAG_AND_EXIT, name="everyone", trigger={**trigger, "include_initial": True}))
    # The new segment's first refresh finds its first members: only the journey that asks for them takes them.
    segments.refresh(session, segment.id, actor=factories.SYSTEM)
    session.commit()
    drain(db)
    assert enrollments(session, newcomers) == []
    rows = enrollments(session, everyone)
    assert sorted(e.customer_id for e in rows) == tokyo and {e.status for e in rows} == {"completed"}
    entered = {
        m.customer_id: m.id
        for m in session.scalars(select(OutboxMessage).where(OutboxMessage.topic == "segment.entered"))
    }
    assert {e.customer_id: e.entry_key for e in rows} == {c: f"m:{entered[c]}" for c in tokyo}
    # A customer who enters later enters both.
    late = factories.customer(session, email="late@example.jp", prefecture="東京都").id
    session.commit()
    segments.refresh(session, segment.id, actor=factories.SYSTEM)
    session.commit()
    drain(db)
    assert [e.customer_id for e in enrollments(session, newcomers)] == [late]
    assert len(enrollments(session, everyone)) == 4
    # Leaving and entering again: "never" keeps out whom a journey had; the newcomers' journey never had them.
    from kizuna.customers.models import Customer

    session.execute(update(Customer).where(Customer.id == tokyo[0]).values(prefecture="大阪府"))
    session.commit()
    segments.refresh(session, segment.id, actor=factories.SYSTEM, full=True)
    session.execute(update(Customer).where(Customer.id == tokyo[0]).values(prefecture="東京都"))
    session.commit()
    segments.refresh(session, segment.id, actor=factories.SYSTEM, full=True)
    session.commit()
    drain(db)
    assert sorted(e.customer_id for e in enrollments(session, newcomers)) == [tokyo[0], late]
    assert len(enrollments(session, everyone)) == 4


def test_an_event_trigger_filters_on_properties_and_ignores_imported_history(session, db):
    a = factories.customer(session, email="a@example.jp").id
    b = factories.customer(session, email="b@example.jp").id
    c = factories.customer(session, email="c@example.jp").id
    session.commit()
    trigger = {"type": "event", "event": "page_view", "properties": {"path": "/sale", "channel": "web"}}
    journey_id = publish(session, definition(TAG_AND_EXIT, trigger=trigger))
    page_view(session, a, "/sale")
    page_view(session, b, "/")
    page_view(session, c, "/sale", actor=IMPORTER)
    page_view(session, None, "/sale")
    session.commit()
    drain(db)
    assert [e.customer_id for e in enrollments(session, journey_id)] == [a]
    # include_backfill: imported events count too.
    trigger["include_backfill"] = True
    raw = definition(TAG_AND_EXIT, trigger=trigger)
    publish(session, raw)
    page_view(session, c, "/sale", actor=IMPORTER)
    session.commit()
    drain(db)
    assert sorted(e.customer_id for e in enrollments(session, journey_id)) == [a, c]


def test_an_order_trigger_with_a_property_and_the_re_entry_rules(session, db):
    a = factories.customer(session, email="a@example.jp").id
    session.commit()
    trigger = {"type": "event", "event": "order.completed", "properties": {"channel": "web"}}
    never = publish(session, definition(TAG_AND_EXIT, name="never", trigger=trigger))
    again = publish(session, definition(TAG_AND_EXIT, name="again", trigger=trigger, reentry="after_exit"))
    later = publish(
        session,
        definition(TAG_AND_EXIT, name="later", trigger=trigger, reentry="after_exit", reentry_after_days=30),
    )
    for channel in ("web", "store", "web"):
        factories.order(session, customer_id=a, ordered_at=utcnow(), lines=[], total_amount=1000, channel=channel)
        session.commit()
        drain(db)
    assert [len(enrollments(session, j)) for j in (never, again, later)] == [1, 2, 1]


def test_manual_enrolment_refuses_a_journey_that_is_not_live_and_skips_unknown_or_merged_customers(session, db):
    import pytest

    from kizuna.customers.models import Customer
    from kizuna.errors import Conflict

    a = factories.customer(session, email="a@example.jp").id
    b = factories.customer(session, email="b@example.jp").id
    session.execute(update(Customer).where(Customer.id == b).values(status="merged"))
    journey = service.create_journey(session, actor=MARKETER, definition=definition(TAG_AND_EXIT))
    session.commit()
    with pytest.raises(Conflict, match="only a live journey"):
        service.enroll_customers(session, journey.id, actor=MARKETER, customer_ids=[a])
    service.publish(session, journey.id, actor=MARKETER)
    result = service.enroll_customers(session, journey.id, actor=MARKETER, customer_ids=[a, b, 10_000])
    assert (result.enrolled, result.skipped) == (1, 2)
    again = service.enroll_customers(session, journey.id, actor=MARKETER, customer_ids=[a])
    assert (again.enrolled, again.skipped) == (0, 1)


def test_the_goal_converts_open_customers_within_its_window_and_stamps_those_who_finished(session, db):
    ids = [factories.customer(session, email=f"g{i}@example.jp").id for i in range(4)]
    session.commit()
    goal = {"event": "order.completed", "within_days": 7}
    waiting = publish(
        session, definition([{"id": "w", "type": "wait", "duration": "P3D", "next": "x"}, {"id": "x", "type": "exit"}],
                            name="waiting", goal=goal)
    )  # fmt: skip
    done = publish(session, definition(TAG_AND_EXIT, name="done", goal=goal))
    for journey_id in (waiting, done):
        service.enroll_customers(session, journey_id, actor=MARKETER, customer_ids=ids)
    session.commit()
    drain(db)
    line = []
    factories.order(session, customer_id=ids[0], ordered_at=utcnow(), lines=line, total_amount=500)
    # Before the entry: not a conversion of this pass.
    factories.order(session, customer_id=ids[1], ordered_at=utcnow() - dt.timedelta(days=1), lines=line, total_amount=1)
    factories.order(session, customer_id=ids[2], ordered_at=utcnow() + dt.timedelta(days=8), lines=line, total_amount=1)
    session.commit()
    drain(db)
    w = {e.customer_id: e for e in enrollments(session, waiting)}
    assert (w[ids[0]].status, w[ids[0]].next_at is None) == ("converted", True)
    assert w[ids[0]].converted_at is not None and w[ids[0]].finished_at is not None
    assert {w[i].status for i in ids[1:]} == {"waiting"} and all(w[i].converted_at is None for i in ids[1:])
    d = {e.customer_id: e for e in enrollments(session, done)}
    assert d[ids[0]].status == "completed" and d[ids[0]].converted_at is not None
    assert all(d[i].converted_at is None for i in ids[1:])


def test_a_date_trigger_enrols_each_customer_at_the_time_of_day_in_their_own_zone(session, db):
    tokyo = factories.customer(session, email="t@example.jp", birth_date=dt.date(1990, 4, 1), timezone="Asia/Tokyo")
    la = factories.customer(
        session, email="la@example.jp", birth_date=dt.date(1985, 3, 31), timezone="America/Los_Angeles"
    )
    la_tomorrow = factories.customer(
        session, email="la2@example.jp", birth_date=dt.date(1985, 4, 1), timezone="America/Los_Angeles"
    )
    renewal = factories.customer(session, email="r@example.jp", attributes={"renewal_date": "2026-05-01"})
    session.commit()
    birthday = publish(
        session, definition(TAG_AND_EXIT, name="birthday", trigger={"type": "date", "attribute": "birth_date"})
    )
    renew = publish(
        session,
        definition(
            TAG_AND_EXIT,
            name="renewal",
            trigger={"type": "date", "attribute": "attributes.renewal_date", "offset_days": -30, "at": "09:30"},
        ),
    )
    now = dt.datetime(2026, 3, 31, 23, 30, tzinfo=dt.UTC)  # 08:30 on 1 April in Tokyo; 16:30 on 31 March in LA
    assert scans.scan(session, now=now) == 3
    assert scans.scan(session, now=now) == 0  # the same occurrence enrols once
    session.commit()
    rows = {e.customer_id: e for e in enrollments(session, birthday)}
    assert set(rows) == {tokyo.id, la.id}
    assert rows[tokyo.id].next_at == dt.datetime(2026, 4, 1, 0, 0, tzinfo=dt.UTC)  # 09:00 Tokyo, due soon
    assert rows[la.id].next_at == now  # 09:00 in LA has passed today: caught up now
    assert rows[tokyo.id].entry_key == "date:2026-04-01" and la_tomorrow.id not in rows
    (r,) = enrollments(session, renew)
    assert (r.customer_id, r.next_at, r.entry_key) == (
        renewal.id, dt.datetime(2026, 4, 1, 0, 30, tzinfo=dt.UTC), "date:2026-05-01"
    )  # fmt: skip


def test_dormancy_enrols_customers_whose_last_order_just_turned_n_days_old(session, db):
    now = utcnow()
    ids = {}
    for name, days in (("dormant", 91), ("recent", 30), ("long_gone", 200)):
        c = factories.customer(session, email=f"{name}@example.jp")
        factories.order(session, customer_id=c.id, ordered_at=now - dt.timedelta(days=days), lines=[], total_amount=1)
        ids[name] = c.id
    session.commit()
    journey_id = publish(session, definition(TAG_AND_EXIT, trigger={"type": "dormancy", "days": 90}))
    assert scans.scan(session) == 1
    assert scans.scan(session) == 0
    session.commit()
    (e,) = enrollments(session, journey_id)
    assert e.customer_id == ids["dormant"] and e.entry_key.startswith("dormant:")


def test_publishing_a_scanned_journey_schedules_the_hourly_scan_which_reschedules_itself(session, db):
    journey_id = publish(session, definition(TAG_AND_EXIT, trigger={"type": "dormancy", "days": 90}))
    due = session.scalars(select(OutboxMessage).where(OutboxMessage.topic == scans.TOPIC)).all()
    assert len(due) == 1 and due[0].available_at.minute == 0 and due[0].available_at > utcnow()
    session.execute(update(OutboxMessage).values(available_at=utcnow()))
    from kizuna.outbox.models import OutboxDelivery

    session.execute(update(OutboxDelivery).values(available_at=utcnow()))
    session.commit()
    run_once(db, worker="w")
    session.expire_all()
    assert len(session.scalars(select(OutboxMessage).where(OutboxMessage.topic == scans.TOPIC)).all()) == 2
    # Once no live journey needs it, the chain stops; resuming one starts it again.
    service.pause(session, journey_id, actor=MARKETER)
    session.execute(update(OutboxDelivery).where(OutboxDelivery.status == "pending").values(available_at=utcnow()))
    session.commit()
    run_once(db, worker="w")
    session.expire_all()
    assert len(session.scalars(select(OutboxMessage).where(OutboxMessage.topic == scans.TOPIC)).all()) == 2
    service.resume(session, journey_id, actor=MARKETER)
    session.commit()
    assert len(session.scalars(select(OutboxMessage).where(OutboxMessage.topic == scans.TOPIC)).all()) == 3


def test_the_engine_does_not_claim_a_journeys_future_entries_before_their_time(session, db):
    c = factories.customer(session, email="f@example.jp", birth_date=dt.date(1990, 4, 1))
    session.commit()
    journey_id = publish(session, definition(TAG_AND_EXIT, trigger={"type": "date", "attribute": "birth_date"}))
    scans.scan(session, now=dt.datetime(2099, 3, 31, 23, 30, tzinfo=dt.UTC))
    session.commit()
    assert engine.run_pass(db, "w") == 0
    assert [(e.customer_id, e.status) for e in enrollments(session, journey_id)] == [(c.id, "active")]
    assert session.scalar(select(JourneyEnrollment.next_at)) > utcnow()
