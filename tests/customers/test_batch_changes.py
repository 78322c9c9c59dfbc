"""The set-based tag and attribute changes (journeys' tag and attribute steps) write what ``update_customer``
writes for the same change: the values, the version bump, the audit entry and the ``customer.updated`` message."""

from __future__ import annotations

from sqlalchemy import select

from kizuna.auth.models import AuditEntry
from kizuna.auth.permissions import Actor
from kizuna.customers import batch
from kizuna.customers import service as customers
from kizuna.customers.schemas import CustomerUpdate
from kizuna.outbox.models import OutboxMessage
from tests import factories

ACTOR = Actor.system("journeys", origin="worker")


def _written(session, customer_id: int):  # noqa: ANN001, ANN202
    session.expire_all()
    c = customers.get_customer(session, customer_id)
    entry = session.scalars(
        select(AuditEntry).where(AuditEntry.customer_id == customer_id, AuditEntry.action == "customer.update")
    ).one()
    message = session.scalars(
        select(OutboxMessage).where(OutboxMessage.customer_id == customer_id, OutboxMessage.topic == "customer.updated")
    ).one()
    return (
        sorted(t.name for t in c.tags),
        c.attributes,
        c.lifecycle_stage,
        c.version,
        entry.details,
        entry.actor,
        message.payload,
        message.origin,
    )


def test_batch_tags_and_attributes_write_what_update_customer_writes(session):
    one = factories.customer(session, email="one@example.jp", tags=["old", "keep"], attributes={"a": 1})
    two = factories.customer(session, email="two@example.jp", tags=["old", "keep"], attributes={"a": 1})
    same = factories.customer(session, email="same@example.jp", tags=["new"])
    session.commit()
    customers.update_customer(
        session,
        actor=ACTOR,
        customer_id=one.id,
        data=CustomerUpdate(tags=["keep", "new"]),
        expected_version=None,
    )
    assert batch.change_tags(session, actor=ACTOR, customer_ids=[two.id, same.id], add=["new"], remove=["old"]) == [
        two.id
    ]
    session.commit()
    expected, got = _written(session, one.id), _written(session, two.id)
    assert got[:4] == expected[:4]
    assert got[4] == expected[4] == {"tags": [["keep", "old"], ["keep", "new"]]}
    assert got[5:] == (expected[5], {"customer_id": two.id, "fields": ["tags"]}, "worker")
    assert expected[6] == {"customer_id": one.id, "fields": ["tags"]}


def test_batch_attributes_match_update_customer_and_unchanged_customers_are_left_alone(session):
    one = factories.customer(session, email="one@example.jp", attributes={"a": 1})
    two = factories.customer(session, email="two@example.jp", attributes={"a": 1})
    same = factories.customer(session, email="same@example.jp", attributes={"a": 1, "stage": "done"})
    session.commit()
    customers.update_customer(
        session,
        actor=ACTOR,
        customer_id=one.id,
        data=CustomerUpdate(attributes={"a": 1, "stage": "done"}, lifecycle_stage="prospect"),
        expected_version=None,
    )
    changed = batch.set_attributes(
        session,
        actor=ACTOR,
        customer_ids=[two.id],
        values={"attributes.stage": "done", "lifecycle_stage": "prospect"},
    )
    assert changed == [two.id]
    assert batch.set_attributes(session, actor=ACTOR, customer_ids=[same.id], values={"stage": "done"}) == []
    session.commit()
    expected, got = _written(session, one.id), _written(session, two.id)
    assert got[:5] == expected[:5]
    assert sorted(got[4]) == ["attributes", "lifecycle_stage"]
    session.expire_all()
    assert customers.get_customer(session, same.id).version == 1
