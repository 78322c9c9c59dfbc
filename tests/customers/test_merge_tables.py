"""Every table that holds a customer's rows is either moved by a merge or excluded from it on purpose."""

from __future__ import annotations

import kizuna.models  # noqa: F401  (every table on the metadata)
from kizuna.customers import merge
from kizuna.db import Base


def test_every_table_with_a_customer_id_is_moved_by_merges_or_excluded_with_a_reason():
    with_customer = {t.name for t in Base.metadata.sorted_tables if "customer_id" in t.c}
    moved = {t.name for t in merge.MOVED}
    excluded = set(merge.NOT_MOVED)
    assert moved | excluded == with_customer, "a table with customer_id is neither moved nor in merge.NOT_MOVED"
    assert not moved & excluded
    assert all(merge.NOT_MOVED.values()), "each exclusion says why"


def test_the_tables_a_merge_moves_include_the_domain_tables():
    assert {t.name for t in merge.MOVED} >= {
        "customer_identities",
        "consents",
        "notes",
        "orders",
        "order_lines",
        "events",
    }


def test_every_other_reference_to_customers_is_handled_by_merges():
    references = {
        f"{table.name}.{fk.parent.name}"
        for table in Base.metadata.sorted_tables
        for fk in table.foreign_keys
        if fk.column.table.name == "customers" and fk.parent.name != "customer_id"
    }
    assert references == set(merge.OTHER_REFERENCES), "a new reference to customers: say what a merge does with it"
