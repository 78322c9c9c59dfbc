"""Erasure: deleting a customer leaves no row naming them, except in the tables kept on purpose."""

from __future__ import annotations

from sqlalchemy import func, or_, select

import kizuna.models  # noqa: F401  (every table on the metadata)
from kizuna.customers import service as customers
from kizuna.db import Base
from kizuna.privacy import subject_export
from kizuna.privacy.erasure import KEPT_AFTER_DELETE, UNLINKED_ON_DELETE
from tests import factories


def _rows_naming(session, ids: list[int]) -> dict[str, int]:  # noqa: ANN001
    """Table -> rows that still name one of ``ids`` (in customer_id or any foreign key to customers)."""
    found = {}
    for table in Base.metadata.sorted_tables:
        columns = subject_export.subject_columns(table)
        if not columns:
            continue
        where = or_(*[c.in_(ids) for c in columns])
        if count := session.scalar(select(func.count()).select_from(table).where(where)):
            found[table.name] = count
    return found


def _child_keys(session, ids: list[int]) -> dict[str, set[int]]:  # noqa: ANN001
    """The rows of the tables reached through a parent (chat messages, journey steps ...), by primary key."""
    keys = {}
    for name, part in subject_export.plan().items():
        if not subject_export.subject_columns(part.table):
            key = next(iter(part.table.primary_key.columns))
            keys[name] = set(session.scalars(select(key).where(part.where(ids))))
    return keys


def test_deleting_a_customer_leaves_rows_only_in_the_tables_kept_on_purpose(session, subject):
    ids = [subject["id"], subject["merged"]]
    before = _rows_naming(session, ids)
    children = _child_keys(session, ids)
    # The fixture has a row in every table that names a customer and in every child table, so this covers all.
    assert set(before) == {t.name for t in Base.metadata.sorted_tables if subject_export.subject_columns(t)}
    assert all(children.values()), children
    stranger_before = _rows_naming(session, [subject["stranger"]])

    customers.delete_customer(session, actor=factories.SYSTEM, customer_id=subject["id"], expected_version=None)
    session.commit()

    left = _rows_naming(session, ids)
    assert set(left) <= set(KEPT_AFTER_DELETE), (
        f"rows still name the deleted customer: {set(left) - set(KEPT_AFTER_DELETE)}"
    )
    # A child row stays only with a parent that stays, unlinked from the person (a deal's stage history).
    for name, keys in children.items():
        table = Base.metadata.tables[name]
        key = next(iter(table.primary_key.columns))
        still = set(session.scalars(select(key).where(key.in_(keys))))
        parents = {fk.column.table.name for fk in table.foreign_keys} & set(UNLINKED_ON_DELETE)
        assert not still or parents, f"{name} rows of the deleted customer stay: {sorted(still)}"
    # Everything of the stranger stays as it was.
    assert _rows_naming(session, [subject["stranger"]]) == stranger_before


def test_every_reference_to_a_customer_is_deleted_or_listed_as_kept_or_unlinked():
    """A table naming a customer must cascade its rows on delete, or say why it keeps them (no foreign key:
    kept as evidence) or keeps them unlinked (SET NULL)."""
    for table in Base.metadata.sorted_tables:
        columns = subject_export.subject_columns(table)
        if not columns or table.name == "customers":
            continue
        rules = set()
        for column in columns:
            fks = [fk for fk in column.foreign_keys if fk.column.table.name == "customers"]
            rules |= {(fk.ondelete or "NO ACTION").upper() for fk in fks} or {"NO FOREIGN KEY"}
        if rules == {"CASCADE"}:
            continue
        if rules == {"SET NULL"}:
            assert table.name in UNLINKED_ON_DELETE, f"{table.name}: rows stay unlinked on delete; say why"
        else:
            assert table.name in KEPT_AFTER_DELETE, f"{table.name} ({', '.join(sorted(rules))}): say why it keeps rows"
    assert all(r.strip() for r in {**KEPT_AFTER_DELETE, **UNLINKED_ON_DELETE}.values())
