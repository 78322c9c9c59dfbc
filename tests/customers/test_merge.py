"""Merging two records of one person keeps everything both had, and the old id still resolves."""

from __future__ import annotations

from sqlalchemy import func, select

from kizuna.auth.models import AuditEntry
from kizuna.customers import merge, service
from kizuna.customers.models import Consent, CustomerIdentity, CustomerMerge, Note
from kizuna.customers.schemas import ConsentCreate, NoteCreate
from kizuna.events.models import Event
from kizuna.orders.models import Order
from tests import factories


def test_merge_keeps_orders_events_consents_notes_and_identities(session, client):
    a = factories.customer(session, email="a@example.jp", family_name="山田")
    b = factories.customer(
        session, phone="090-1111-2222", family_name="山田", given_name=None, city="札幌市", tags=["VIP"]
    )
    service.record_consent(
        session,
        actor=factories.SYSTEM,
        customer_id=b.id,
        data=ConsentCreate(channel="email", status="granted", method="web_form"),
    )
    service.add_note(session, actor=factories.SYSTEM, customer_id=b.id, data=NoteCreate(body="note on b"))
    session.add(
        Event(
            customer_id=b.id, type="store_visit", channel="store", occurred_at=factories.at("2025-01-01"), properties={}
        )
    )
    session.commit()
    client.post("/api/v1/products", json={"sku": "S1", "name": "S1", "price": "100"})
    assert (
        client.post(
            "/api/v1/orders",
            json={
                "customer_id": b.id,
                "ordered_at": "2025-02-01T00:00:00Z",
                "lines": [{"sku": "S1", "unit_price": "100"}],
            },
        ).status_code
        == 201
    )

    r = client.post(f"/api/v1/customers/{a.id}/merge", json={"merge_id": b.id, "reason": "same person"})
    assert r.status_code == 200, r.text
    merged = r.json()
    assert merged["id"] == a.id
    assert merged["phone"] == "+819011112222"
    assert merged["city"] == "札幌市"
    assert merged["tags"] == ["VIP"]

    session.expire_all()
    for model in (Order, Event, Consent, Note):
        assert session.scalar(select(func.count()).select_from(model).where(model.customer_id == b.id)) == 0
        assert session.scalar(select(func.count()).select_from(model).where(model.customer_id == a.id)) == 1
    kinds = {i.kind for i in session.scalars(select(CustomerIdentity).where(CustomerIdentity.customer_id == a.id))}
    assert kinds == {"email", "phone"}
    assert merge.merged_ids(session, a.id) == [b.id]
    assert session.scalar(select(CustomerMerge.snapshot).where(CustomerMerge.merged_id == b.id))["city"] == "札幌市"
    assert session.scalar(select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "customer.merge"))

    old = client.get(f"/api/v1/customers/{b.id}")
    assert old.status_code == 200 and old.json()["id"] == a.id
    kinds_on_timeline = {i["kind"] for i in client.get(f"/api/v1/customers/{b.id}/timeline").json()["items"]}
    assert kinds_on_timeline == {"order", "event", "consent", "note", "merge"}
    listed = client.get("/api/v1/customers").json()["items"]
    assert [c["id"] for c in listed] == [a.id]


def test_merge_chain_resolves_to_the_last_survivor(session):
    a, b, c = (factories.customer(session, email=f"{n}@example.jp") for n in "abc")
    merge.merge_customers(session, actor=factories.SYSTEM, survivor_id=b.id, merged_id=c.id, reason="t")
    merge.merge_customers(session, actor=factories.SYSTEM, survivor_id=a.id, merged_id=b.id, reason="t")
    session.commit()
    assert service.resolve_id(session, c.id) == a.id
    assert sorted(merge.merged_ids(session, a.id)) == sorted([b.id, c.id])


def test_merge_into_itself_is_refused(client, session):
    a = factories.customer(session, email="self@example.jp")
    session.commit()
    r = client.post(f"/api/v1/customers/{a.id}/merge", json={"merge_id": a.id})
    assert r.status_code == 422 and r.json()["error"]["field"] == "merge_id"


def test_two_customers_with_metrics_rows_merge_and_the_next_refresh_recomputes_them(db, session):
    """The metrics rows stay where they are (moving the merged one onto the survivor's collided with its own);
    the next metrics refresh counts the survivor's orders, both records', and removes the merged record's row."""
    from kizuna.analytics.models import CustomerMetrics
    from kizuna.analytics.service import refresh_with

    a = factories.customer(session, family_name="一")
    b = factories.customer(session, family_name="二")
    for customer, amount in ((a, 1000), (b, 3000)):
        factories.order(
            session, customer_id=customer.id, ordered_at=factories.at("2025-01-05"), total_amount=amount, lines=[]
        )
    session.commit()
    refresh_with(db)
    merge.merge_customers(session, actor=factories.SYSTEM, survivor_id=a.id, merged_id=b.id, reason="same person")
    session.commit()
    refresh_with(db)
    rows = {m.customer_id: (m.order_count, m.total_spend) for m in session.scalars(select(CustomerMetrics))}
    assert rows == {a.id: (2, 4000)}
