"""Identity stitching: anonymous visitors, identify, alias, merges, the default scope and retention."""

from __future__ import annotations

import base64
import datetime as dt

import pytest
from sqlalchemy import select, update

from kizuna.auth.permissions import Actor
from kizuna.customers import service as customers
from kizuna.customers.merge import merge_customers
from kizuna.customers.models import Customer
from kizuna.customers.schemas import CustomerCreate
from kizuna.db import new_session, utcnow
from kizuna.events.models import Event
from kizuna.ingest import retention, sources

ADMIN = Actor.system("test")


@pytest.fixture
def tracker(app, db):  # noqa: ANN001, ANN201
    from fastapi.testclient import TestClient

    with new_session(db) as s:
        _, key = sources.create_source(s, actor=ADMIN, name="site")
        s.commit()
    auth = base64.b64encode(f"{key}:".encode()).decode()
    with TestClient(app, headers={"Authorization": f"Basic {auth}"}) as c:
        yield c


def _customer_of(db, anonymous_id: str) -> Customer:  # noqa: ANN001
    with new_session(db) as s:
        event = s.scalar(select(Event).where(Event.anonymous_id == anonymous_id).order_by(Event.id.desc()).limit(1))
        return s.get(Customer, customers.resolve_id(s, event.customer_id))


def _visit(tracker, anonymous_id: str, *pages: str) -> None:  # noqa: ANN001
    batch = [{"type": "page", "anonymousId": anonymous_id, "name": p} for p in pages]
    assert tracker.post("/v1/batch", json={"batch": batch}).json()["accepted"] == len(pages)


def test_anonymous_visitor_is_left_out_of_lists_until_identified(tracker, client, db) -> None:  # noqa: ANN001
    _visit(tracker, "anon-1", "Home", "Pricing")
    visitor = _customer_of(db, "anon-1")
    assert visitor.status == "anonymous"
    assert client.get("/api/v1/customers").json()["items"] == []
    assert [c["id"] for c in client.get("/api/v1/customers?status=anonymous").json()["items"]] == [visitor.id]
    # An identify on form submit (an e-mail, no user id yet): the visitor becomes a customer with their history.
    r = tracker.post("/v1/identify", json={"anonymousId": "anon-1", "traits": {"email": "Aiko@Example.jp"}})
    assert r.json()["accepted"] == 1
    person = _customer_of(db, "anon-1")
    assert (person.id, person.status, person.email) == (visitor.id, "active", "aiko@example.jp")
    assert [c["id"] for c in client.get("/api/v1/customers").json()["items"]] == [person.id]
    timeline = client.get(f"/api/v1/customers/{person.id}/timeline").json()["items"]
    assert sum(1 for item in timeline if item["kind"] == "event") == 2


def test_identify_stitches_the_visitor_into_the_known_customer(tracker, client, db) -> None:  # noqa: ANN001
    with new_session(db) as s:
        known = customers.create_customer(
            s, actor=ADMIN, data=CustomerCreate(family_name="佐藤", external_id="shop-42", email="sato@example.jp")
        )
        s.commit()
        known_id = known.id
    _visit(tracker, "anon-2", "Home", "Cart")
    visitor = _customer_of(db, "anon-2")
    assert visitor.id != known_id
    tracker.post("/v1/identify", json={"userId": "shop-42", "anonymousId": "anon-2", "traits": {"plan": "gold"}})
    tracker.post("/v1/track", json={"anonymousId": "anon-2", "event": "Order Completed"})
    with new_session(db) as s:
        assert s.get(Customer, visitor.id).status == "merged"
        events = list(s.scalars(select(Event).order_by(Event.id)))
        assert {e.customer_id for e in events} == {known_id}
        assert s.get(Customer, known_id).attributes == {"plan": "gold"}
    timeline = client.get(f"/api/v1/customers/{known_id}/timeline").json()["items"]
    assert sorted(i["title"] for i in timeline if i["kind"] == "event") == ["Order Completed", "page_view", "page_view"]


def test_identify_by_email_of_a_known_customer_merges_the_visitor(tracker, db) -> None:  # noqa: ANN001
    with new_session(db) as s:
        known = customers.create_customer(s, actor=ADMIN, data=CustomerCreate(email="ken@example.jp"))
        s.commit()
        known_id = known.id
    _visit(tracker, "anon-3", "Home")
    tracker.post("/v1/identify", json={"anonymousId": "anon-3", "traits": {"email": "ken@example.jp"}})
    assert _customer_of(db, "anon-3").id == known_id


def test_alias_links_ids_and_refuses_two_customers(tracker, db) -> None:  # noqa: ANN001
    _visit(tracker, "anon-4", "Home")
    r = tracker.post("/v1/alias", json={"previousId": "anon-4", "userId": "user-4"})
    assert r.json()["accepted"] == 1
    person = _customer_of(db, "anon-4")
    assert (person.status, person.external_id) == ("active", "user-4")
    tracker.post("/v1/identify", json={"userId": "user-5"})
    r = tracker.post("/v1/alias", json={"previousId": "user-4", "userId": "user-5"})
    (rejected,) = r.json()["rejected"]
    assert rejected["field"] == "previousId" and "two customers" in rejected["error"]


def test_a_merge_keeps_both_histories(tracker, db) -> None:  # noqa: ANN001
    tracker.post("/v1/track", json={"userId": "a", "event": "One"})
    tracker.post("/v1/track", json={"userId": "b", "event": "Two"})
    with new_session(db) as s:
        a, b = (s.scalar(select(Customer.id).where(Customer.external_id == x)) for x in ("a", "b"))
        merge_customers(s, actor=ADMIN, survivor_id=a, merged_id=b, reason="same person")
        s.commit()
    tracker.post("/v1/track", json={"userId": "b", "event": "Three"})
    with new_session(db) as s:
        assert [(e.type, e.customer_id) for e in s.scalars(select(Event).order_by(Event.id))] == [
            ("One", a),
            ("Two", a),
            ("Three", a),
        ]


def test_anonymous_profiles_age_out(tracker, db) -> None:  # noqa: ANN001
    _visit(tracker, "old", "Home")
    _visit(tracker, "recent", "Home")
    tracker.post("/v1/identify", json={"userId": "kept", "anonymousId": "known-visitor"})
    old = _customer_of(db, "old").id
    long_ago = utcnow() - dt.timedelta(days=120)
    with new_session(db) as s:
        s.execute(update(Customer).values(created_at=long_ago))
        s.execute(update(Event).where(Event.customer_id == old).values(received_at=long_ago))
        s.commit()
        assert retention.purge_anonymous(s, actor=ADMIN, days=90) == 1
        s.commit()
        assert s.get(Customer, old) is None
        assert s.scalars(select(Event.anonymous_id)).all() == ["recent"]
        assert {c.status for c in s.scalars(select(Customer))} == {"anonymous", "active"}


def test_anonymous_visitors_enter_no_journey(tracker, db) -> None:  # noqa: ANN001
    from kizuna.journeys import service as journeys
    from kizuna.journeys.models import JourneyEnrollment
    from kizuna.outbox.worker import run_once

    with new_session(db) as s:
        journeys.apply(
            s,
            actor=ADMIN,
            definition={
                "name": "Viewed",
                "trigger": {"type": "event", "event": "Product Viewed"},
                "start": "x",
                "steps": [{"id": "x", "type": "exit"}],
            },
        )
        s.commit()
    tracker.post("/v1/track", json={"anonymousId": "anon-j", "event": "Product Viewed"})
    tracker.post("/v1/track", json={"userId": "known-j", "event": "Product Viewed"})
    while True:
        tally = run_once(db, worker="test", limit=500)
        if not (tally.done or tally.failed or tally.pumped):
            break
    with new_session(db) as s:
        entered = [s.get(Customer, e.customer_id) for e in s.scalars(select(JourneyEnrollment))]
        assert [(c.status, c.external_id) for c in entered] == [("active", "known-j")]


def test_the_worker_purges_old_anonymous_profiles_once_a_day(tracker, db) -> None:  # noqa: ANN001
    from kizuna.outbox.models import OutboxDelivery, OutboxMessage
    from kizuna.outbox.worker import run_once

    _visit(tracker, "gone", "Home")
    _visit(tracker, "staying", "Home")
    gone = _customer_of(db, "gone").id
    long_ago = utcnow() - dt.timedelta(days=400)
    with new_session(db) as s:
        # Making the source started the daily chain: one purge waits, a day from then.
        waiting = s.scalars(select(OutboxDelivery).where(OutboxDelivery.subscriber == retention.SUBSCRIBER)).all()
        assert [d.status for d in waiting] == ["pending"]
        assert waiting[0].available_at > utcnow() + dt.timedelta(hours=23)
        s.execute(update(Customer).where(Customer.id == gone).values(created_at=long_ago))
        s.execute(update(Event).where(Event.customer_id == gone).values(received_at=long_ago))
        # A day passes.
        s.execute(update(OutboxMessage).values(available_at=utcnow() - dt.timedelta(seconds=1)))
        s.execute(update(OutboxDelivery).values(available_at=utcnow() - dt.timedelta(seconds=1)))
        s.commit()
    run_once(db, worker="test", limit=500)
    with new_session(db) as s:
        assert s.get(Customer, gone) is None
        assert s.scalars(select(Event.anonymous_id)).all() == ["staying"]
        after = s.scalars(
            select(OutboxDelivery).where(
                OutboxDelivery.subscriber == retention.SUBSCRIBER, OutboxDelivery.status == "pending"
            )
        ).all()
        assert len(after) == 1 and after[0].available_at > utcnow() + dt.timedelta(hours=23)
