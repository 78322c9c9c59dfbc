"""The customer snapshot (audit diffs, merges) is every column of the person's data, derived from the model."""

from __future__ import annotations

from sqlalchemy import Column, MetaData, String, select

from kizuna.auth.models import AuditEntry
from kizuna.customers import merge, service
from kizuna.customers.models import Customer
from kizuna.customers.schemas import CustomerUpdate
from tests import factories


def test_snapshot_is_every_customer_column_but_the_listed_exclusions():
    columns = {c.key for c in Customer.__table__.columns}
    # An exclusion must name a real column, so the list cannot silently outlive the schema.
    assert set(service.SNAPSHOT_EXCLUDED) <= columns
    assert set(service.SNAPSHOT_FIELDS) == columns - set(service.SNAPSHOT_EXCLUDED)
    assert all(reason for reason in service.SNAPSHOT_EXCLUDED.values())


def test_a_column_added_to_customers_appears_in_the_snapshot():
    # What a newcomer does when adding a field: a column on the model. The same derivation, run on a copy of
    # the table with one more column, takes the new column without anyone listing it.
    table = Customer.__table__.to_metadata(MetaData())
    table.append_column(Column("nickname", String(50)))
    assert service.snapshot_fields(table) == (*service.SNAPSHOT_FIELDS, "nickname")


def test_audit_diff_and_merge_use_every_snapshot_field(session):
    survivor = factories.customer(session, email="keep@example.jp")
    merged = factories.customer(session, phone="090-1111-2222", city="札幌市", gender="female", source="shop")
    before = service.snapshot(merged)
    assert set(before) == set(service.SNAPSHOT_FIELDS)
    merge.merge_customers(session, actor=factories.SYSTEM, survivor_id=survivor.id, merged_id=merged.id, reason="t")
    assert (survivor.city, survivor.gender, survivor.source) == ("札幌市", "female", "shop")
    service.update_customer(
        session,
        actor=factories.SYSTEM,
        customer_id=survivor.id,
        data=CustomerUpdate(postal_code="060-0001", birth_date="1990-01-02"),
        expected_version=None,
    )
    entry = session.scalars(select(AuditEntry).where(AuditEntry.action == "customer.update")).one()
    assert set(entry.details) == {"postal_code", "birth_date"}
    assert entry.details["birth_date"] == [None, "1990-01-02"]
