"""A merge with picked values: the survivor ends with the values a person chose, and the choice is audited."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from kizuna.auth.models import AuditEntry
from kizuna.customers import merge, service
from kizuna.customers.models import Customer, CustomerIdentity
from kizuna.errors import Conflict, ValidationError
from kizuna.outbox.models import OutboxMessage
from tests import factories

SYSTEM = factories.SYSTEM


def two(session):  # noqa: ANN001, ANN201
    a = factories.customer(
        session, email="old@example.jp", phone="03-1111-2222", postal_code="100-0001", prefecture="東京都",
        city="千代田区", address_line="1-1-1", birth_date=dt.date(1980, 1, 1), lifecycle_stage="lead",
    )  # fmt: skip
    b = factories.customer(
        session, given_name="太朗", email="new@example.jp", phone="090-3333-4444", postal_code="530-0001",
        prefecture="大阪府", city="大阪市北区", address_line=None, lifecycle_stage="customer", source="store",
    )  # fmt: skip
    session.flush()
    return a, b


def test_kept_groups_take_the_merged_records_values_whole(session):
    a, b = two(session)
    survivor = merge.merge_customers(
        session, actor=SYSTEM, survivor_id=a.id, merged_id=b.id, reason="review",
        keep={"email": "merged", "address": "merged", "name": "survivor", "lifecycle_stage": "merged"},
    )  # fmt: skip
    assert survivor.email == "new@example.jp"
    # The address is taken whole: the merged record had no street, so the survivor has none either.
    assert (survivor.postal_code, survivor.prefecture, survivor.city, survivor.address_line) == (
        "530-0001", "大阪府", "大阪市北区", None,
    )  # fmt: skip
    assert survivor.given_name == "太郎" and survivor.full_name == "山田 太郎"
    assert survivor.lifecycle_stage == "customer"
    assert survivor.phone == "+81311112222"  # not picked: the survivor's own
    assert survivor.source == "store"  # not picked, the survivor had none: filled as before
    # Both e-mails stay identities of the survivor; the picked one is its primary.
    emails = set(
        session.scalars(
            select(CustomerIdentity.value).where(CustomerIdentity.customer_id == a.id, CustomerIdentity.kind == "email")
        )
    )
    assert emails == {"old@example.jp", "new@example.jp"}
    assert service.read_customer(session, b.id).id == a.id


def test_the_audit_entry_holds_the_picked_values_and_the_message_only_whose_they_were(session):
    a, b = two(session)
    merge.merge_customers(
        session, actor=SYSTEM, survivor_id=a.id, merged_id=b.id, reason="review", keep={"email": "merged"}
    )
    entry = session.scalar(select(AuditEntry).where(AuditEntry.action == "customer.merge"))
    assert entry.details["kept"] == {"email": {"from": "merged", "email": "new@example.jp"}}
    message = session.scalar(select(OutboxMessage).where(OutboxMessage.topic == "customer.merged"))
    assert message.payload["kept"] == {"email": "merged"}


def test_keeping_the_survivors_empty_value_does_not_fill_it(session):
    a, b = two(session)
    a.source = None
    merge.merge_customers(
        session, actor=SYSTEM, survivor_id=a.id, merged_id=b.id, reason="r", keep={"source": "survivor"}
    )
    assert session.get(Customer, a.id).source is None


def test_an_unknown_group_or_side_is_refused_before_anything_changes(session):
    a, b = two(session)
    with pytest.raises(ValidationError) as refused:
        merge.merge_customers(
            session, actor=SYSTEM, survivor_id=a.id, merged_id=b.id, reason="r", keep={"id": "merged"}
        )
    assert refused.value.field == "keep"
    with pytest.raises(ValidationError):
        merge.merge_customers(session, actor=SYSTEM, survivor_id=a.id, merged_id=b.id, reason="r", keep={"email": "b"})
    assert session.get(Customer, b.id).status == "active"


def test_a_record_changed_since_it_was_read_refuses_the_merge(session):
    a, b = two(session)
    read = {a.id: a.version, b.id: b.version}
    service.update_customer(
        session, actor=SYSTEM, customer_id=b.id, data=service.CustomerUpdate(city="堺市"), expected_version=None
    )
    session.flush()
    with pytest.raises(Conflict):
        merge.merge_customers(session, actor=SYSTEM, survivor_id=a.id, merged_id=b.id, reason="r",
                              expected_versions=read)  # fmt: skip


def test_every_snapshot_field_but_attributes_can_be_picked():
    grouped = {name for fields in merge.KEEP_GROUPS.values() for name in fields}
    assert grouped == set(service.SNAPSHOT_FIELDS) - {"attributes"}


def test_api_merge_applies_picked_values_and_refuses_a_stale_version(client, session):
    a, b = two(session)
    session.commit()
    stale = client.post(
        f"/api/v1/customers/{a.id}/merge", json={"merge_id": b.id, "versions": {str(b.id): b.version + 1}}
    )
    assert stale.status_code == 409, stale.text
    bad = client.post(f"/api/v1/customers/{a.id}/merge", json={"merge_id": b.id, "keep": {"email": "other"}})
    assert bad.status_code == 422
    r = client.post(
        f"/api/v1/customers/{a.id}/merge",
        json={"merge_id": b.id, "reason": "same person", "keep": {"email": "merged", "phone": "merged"}},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["id"], body["email"], body["phone"]) == (a.id, "new@example.jp", "+819033334444")
    assert client.get(f"/api/v1/customers/{b.id}").json()["id"] == a.id
