"""A tracking batch's one ``events.recorded`` message triggers and converts per event, exactly as one
``event.recorded`` message per event (the events API's) does: property filters, backfill, goals, and once."""

from __future__ import annotations

from sqlalchemy import select, update

from kizuna.auth.permissions import Actor
from kizuna.db import utcnow
from kizuna.events import recorded
from kizuna.events import service as events
from kizuna.events.models import Event
from kizuna.events.schemas import EventCreate
from kizuna.ingest import service as tracking
from kizuna.ingest import sources
from kizuna.ingest.models import Source
from kizuna.outbox.models import OutboxDelivery, OutboxMessage
from tests import factories
from tests.journeys.conftest import definition, enrollments, publish
from tests.journeys.test_triggers import TAG_AND_EXIT, drain

ADMIN = Actor.system("test")
WAIT = [{"id": "w", "type": "wait", "duration": "P3D", "next": "x"}, {"id": "x", "type": "exit"}]


def _track(session, calls: list[tuple[str, str, dict]]) -> list[int]:  # noqa: ANN001
    """Store (userId, event, properties) track calls as one tracking batch; returns the customers, in order."""
    source = session.scalar(select(Source).where(Source.name == "site"))
    if source is None:
        source, _ = sources.create_source(session, actor=ADMIN, name="site")
    messages = [{"type": "track", "userId": u, "event": e, "properties": p} for u, e, p in calls]
    known = sources.KnownSource(id=source.id, name=source.name)
    outcome = tracking.ingest(session, source=known, messages=messages)
    assert outcome.accepted == len(calls) and not outcome.rejected
    session.commit()
    ids = session.scalars(select(Event.customer_id).order_by(Event.id.desc()).limit(len(calls)))
    return list(ids)[::-1]


def test_each_event_of_a_batch_triggers_once_with_its_own_key(session, db):
    trigger = {"type": "event", "event": "Product Viewed", "properties": {"sku": "A", "channel": "other"}}
    journey = publish(session, definition(TAG_AND_EXIT, trigger=trigger))
    a, b, a_again, c = _track(
        session,
        [
            ("u1", "Product Viewed", {"sku": "A"}),
            ("u2", "Product Viewed", {"sku": "B"}),
            ("u1", "Product Viewed", {"sku": "A"}),
            ("u3", "Signed Up", {"sku": "A"}),
        ],
    )
    assert a == a_again
    batch = session.scalars(select(OutboxMessage).where(OutboxMessage.topic == recorded.BATCH_TOPIC)).one()
    drain(db)
    rows = enrollments(session, journey)
    first = session.scalar(select(Event.id).where(Event.customer_id == a).order_by(Event.id).limit(1))
    assert [(e.customer_id, e.entry_key, e.status) for e in rows] == [(a, f"e:{first}", "completed")]
    # Handled again (a worker that died after its commit and a delivery redone by hand): nobody enters twice.
    session.execute(
        update(OutboxDelivery)
        .where(OutboxDelivery.message_id == batch.id)
        .values(status="pending", attempts=0, finished_at=None)
    )
    session.commit()
    drain(db)
    assert len(enrollments(session, journey)) == 1
    assert b not in {e.customer_id for e in rows} and c not in {e.customer_id for e in rows}


def test_a_batch_enrols_the_same_customers_as_one_message_per_event(session, db):
    trigger = {"type": "event", "event": "page_view", "properties": {"path": "/sale"}}
    journey = publish(session, definition(TAG_AND_EXIT, trigger=trigger, reentry="after_exit"))
    per_event = [factories.customer(session, email=f"p{i}@example.jp").id for i in range(4)]
    session.commit()
    for i, customer_id in enumerate(per_event):
        data = EventCreate(
            customer_id=customer_id, type="page_view", channel="web", occurred_at=utcnow(),
            properties={"path": "/sale" if i % 2 == 0 else "/"},
        )  # fmt: skip
        events.record_event(session, actor=factories.SYSTEM, data=data)
    session.commit()
    drain(db)
    by_message = sorted(e.customer_id for e in enrollments(session, journey))
    tracked = _track(session, [(f"t{i}", "page_view", {"path": "/sale" if i % 2 == 0 else "/"}) for i in range(4)])
    drain(db)
    by_batch = sorted(e.customer_id for e in enrollments(session, journey)[len(by_message) :])
    assert by_message == [per_event[0], per_event[2]]
    assert by_batch == sorted([tracked[0], tracked[2]])


def test_imported_batches_trigger_only_journeys_that_include_backfill(session, db):
    plain = publish(session, definition(TAG_AND_EXIT, name="plain", trigger={"type": "event", "event": "Signed Up"}))
    backfill = {"type": "event", "event": "Signed Up", "include_backfill": True}
    history = publish(session, definition(TAG_AND_EXIT, name="history", trigger=backfill))
    customer = factories.customer(session, email="h@example.jp").id
    session.add(Event(customer_id=customer, type="Signed Up", channel="web", occurred_at=utcnow(), properties={}))
    session.flush()
    ids = list(session.scalars(select(Event.id)))
    recorded.emit_recorded(session, ids, origin="import")
    session.commit()
    drain(db)
    assert enrollments(session, plain) == []
    assert [e.customer_id for e in enrollments(session, history)] == [customer]


def test_a_tracked_goal_converts_and_a_deleted_event_triggers_nothing(session, db):
    goal = {"event": "Order Completed", "within_days": 7}
    trigger = {"type": "event", "event": "Product Viewed"}
    journey = publish(session, definition(WAIT, trigger=trigger, goal=goal))
    (buyer, browser) = _track(session, [("b1", "Product Viewed", {}), ("b2", "Product Viewed", {})])
    drain(db)
    assert {e.customer_id: e.status for e in enrollments(session, journey)} == {buyer: "waiting", browser: "waiting"}
    _track(session, [("b1", "Order Completed", {"total": 1980}), ("b3", "Product Viewed", {})])
    # The second event is gone before the worker reads the message (its customer was erased, say).
    late = session.scalar(select(Event).order_by(Event.id.desc()).limit(1))
    session.delete(late)
    session.commit()
    drain(db)
    rows = {e.customer_id: e for e in enrollments(session, journey)}
    assert set(rows) == {buyer, browser}
    assert rows[buyer].status == "converted" and rows[buyer].converted_at is not None
    assert rows[browser].status == "waiting" and rows[browser].converted_at is None


def test_ranges_round_trip() -> None:
    ids = [9, 3, 4, 5, 11, 12, 4]
    assert recorded.ranges(ids) == [[3, 5], [9, 9], [11, 12]]
    assert list(recorded.ids_of({"event_ids": recorded.ranges(ids)})) == [3, 4, 5, 9, 11, 12]
    assert list(recorded.ids_of({"event_ids": [[5, 3], "x", [1]]})) == []
