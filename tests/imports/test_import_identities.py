"""Imports read identities of every kind: columns named after a kind (LINE user id, external_id:<source>)."""

from __future__ import annotations

from sqlalchemy import select

from kizuna.auth.permissions import Actor
from kizuna.customers.models import Customer, CustomerIdentity
from kizuna.imports.runner import run_import
from tests import factories

SYSTEM = Actor.system("test")
LINE = "U" + "0123456789abcdef" * 2
LINE2 = "U" + "fedcba9876543210" * 2


def _ids(session) -> list[tuple[str, str, str]]:
    session.expire_all()
    rows = session.execute(
        select(Customer.email, CustomerIdentity.kind, CustomerIdentity.value).join(
            Customer, Customer.id == CustomerIdentity.customer_id
        )
    )
    return sorted(tuple(r) for r in rows)


def test_line_ids_and_shop_ids_import_as_identities_by_both_paths(db, session, csv_file):
    lines = ["email,LINE user ID,external_id:shopify,好きな色"] + [
        f"p{i}@example.jp,,{7000 + i},赤" for i in range(30)
    ] + [f"line@example.jp,{LINE},7999,青"]  # fmt: skip
    for workers in (1, 2):  # in-process, and parser processes staging into files
        from tests.conftest import clean

        session.rollback()  # the test's own read must not hold a lock over the truncation
        clean(db)
        report = run_import(
            db, "customers", csv_file(lines), actor=SYSTEM, workers=workers, batch_size=10, extra_to_attributes=True
        )
        assert (report.inserted, report.rejected) == (31, 0), report.rejects
        stored = _ids(session)
        assert ("line@example.jp", "line_user_id", LINE) in stored
        assert ("p3@example.jp", "external_id:shopify", "7003") in stored
        assert len([k for k in stored if k[1] == "external_id:shopify"]) == 31
        line = session.scalar(select(Customer).where(Customer.email == "line@example.jp"))
        assert line.attributes == {"好きな色": "青"}  # identity columns are not attributes
        again = run_import(db, "customers", csv_file(lines), actor=SYSTEM, workers=workers, batch_size=10)
        assert (again.inserted, again.updated) == (0, 0)


def test_a_line_id_recognises_the_customer_and_a_bad_one_rejects_the_row(db, session, csv_file):
    known = factories.customer(session, email="known@example.jp")
    session.commit()
    run_import(db, "customers", csv_file(["email,line_user_id", f"known@example.jp,{LINE}"]), actor=SYSTEM)
    # The LINE id alone finds the customer now (a LINE-only row, as a LINE friends export has).
    report = run_import(db, "customers", csv_file(["line_user_id,city", f"{LINE},札幌市"]), actor=SYSTEM)
    assert (report.inserted, report.updated, report.rejected) == (0, 1, 0), report.rejects
    session.expire_all()
    assert session.get(Customer, known.id).city == "札幌市"
    bad = run_import(db, "customers", csv_file(["email,line_user_id", "x@example.jp,taro"]), actor=SYSTEM)
    assert bad.rejected == 1 and "LINE user id" in bad.rejects[0].reason
    other = run_import(db, "customers", csv_file(["email,line_user_id", f"new@example.jp,{LINE2}"]), actor=SYSTEM)
    assert other.inserted == 1
