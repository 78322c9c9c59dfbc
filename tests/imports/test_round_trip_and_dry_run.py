"""What an export writes imports back unchanged; a dry run changes nothing, is quick and leaves no lock behind."""

from __future__ import annotations

import time

from sqlalchemy import func, select, text

from kizuna.auth.models import AuditEntry
from kizuna.auth.permissions import Actor
from kizuna.customers.models import Customer
from kizuna.db import transaction
from kizuna.events.models import Event
from kizuna.exports.service import write_export
from kizuna.imports.runner import run_import
from kizuna.orders.models import Order, OrderLine
from kizuna.outbox.models import OutboxMessage
from tests import factories

SYSTEM = Actor.system("test")


def _export(db, admin, kind: str, path) -> None:
    with transaction(db) as session, path.open("wb") as out:
        write_export(session, actor=admin, kind=kind, params={}, fmt="csv", out=out)


def test_an_export_imports_back_unchanged(db, session, admin, tmp_path):
    one = factories.customer(
        session, external_id="C-1", email="one@example.jp", phone="090-1234-5678", birth_date="1985-04-02", tags=["VIP"]
    )
    two = factories.customer(session, email="two@example.jp", family_name="佐藤", given_name="花子", city="札幌市")
    factories.product(session, sku="SKU-1", name="緑茶", price=1200)
    factories.order(
        session,
        customer_id=one.id,
        ordered_at=factories.at("2024-01-05T04:00:00"),
        external_id="O-1",
        lines=[{"sku": "SKU-1", "quantity": 2, "unit_price": 1200}],
        store="渋谷店",
    )
    factories.order(
        session,
        customer_id=two.id,
        ordered_at=factories.at("2024-02-01"),
        external_id="O-2",
        lines=[],
        total_amount=5000,
    )
    factories.event(
        session, customer_id=two.id, type="page_view", channel="web", occurred_at=factories.at("2024-03-01")
    )
    session.commit()
    for kind, expected in (("customers", 2), ("orders", 2), ("events", 1)):
        path = tmp_path / f"{kind}.csv"
        _export(db, admin, kind, path)
        header = path.read_text(encoding="utf-8-sig").splitlines()[0].split(",")
        assert "customer_id" not in header
        assert kind == "customers" or "kizuna_customer_id" in header
        report = run_import(db, kind, path, actor=SYSTEM)
        assert (report.read, report.unchanged, report.rejected, report.warnings) == (expected, expected, 0, [])
        assert (report.inserted, report.updated, report.merged) == (0, 0, 0), kind
    session.expire_all()
    assert session.scalar(select(func.sum(Order.version))) == 2
    assert session.scalar(select(func.count()).select_from(Event)) == 1


def _state(session) -> tuple[int, ...]:
    return tuple(
        session.scalar(select(func.count()).select_from(table))
        for table in (Customer, Order, AuditEntry, OutboxMessage)
    )


def test_a_dry_run_is_quick_changes_nothing_and_holds_no_lock(db, session, csv_file):
    before = _state(session)
    path = csv_file(["email,姓,注文番号", "a@example.jp,山田,", "b@example.jp,佐藤,"])
    started = time.perf_counter()
    report = run_import(db, "customers", path, actor=SYSTEM, dry_run=True)
    assert time.perf_counter() - started < 1.0
    assert report.dry_run and report.inserted == 2
    session.expire_all()
    assert _state(session) == before
    # Another connection writes at once: with no wait allowed, a lock still held would fail this.
    with db.connect() as other:
        if db.dialect.name == "sqlite":
            other.exec_driver_sql("PRAGMA busy_timeout=0")
        else:
            other.execute(text("SET lock_timeout = '100ms'"))
        other.execute(text("INSERT INTO tags (name) VALUES ('after-dry-run')"))
        other.commit()


def test_orders_with_no_line_items_import_as_totals(db, session, csv_file):
    one = factories.customer(session, external_id="M-1", email="one@example.jp")
    session.commit()
    path = csv_file(
        [
            "伝票番号,会員ID,購入日時,合計金額,店舗",
            "R-1,M-1,2024/4/1 10:15,3300,渋谷店",
            'R-2,M-1,2024/4/8 18:40,"1,100",新宿店',
            "R-3,M-1,2024/4/9 12:00,,新宿店",
        ]
    )
    report = run_import(db, "orders", path, actor=SYSTEM, mapping={"伝票番号": "external_id"})
    assert (report.inserted, report.rejected) == (2, 1)
    assert [(r.line, r.field) for r in report.rejects] == [(4, "total_amount")]
    stored = session.scalars(select(Order).order_by(Order.external_id)).all()
    assert [(o.external_id, o.customer_id, o.total_amount, o.store, o.lines) for o in stored] == [
        ("R-1", one.id, 3300, "渋谷店", []),
        ("R-2", one.id, 1100, "新宿店", []),
    ]
    assert session.scalar(select(func.count()).select_from(OrderLine)) == 0
    again = run_import(db, "orders", path, actor=SYSTEM, mapping={"伝票番号": "external_id"})
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, 2)


def test_a_line_without_sku_is_left_out_with_a_warning(db, session, csv_file):
    factories.customer(session, external_id="M-1", email="one@example.jp")
    factories.product(session, sku="SKU-1", name="緑茶", price=1200)
    session.commit()
    path = csv_file(
        [
            "注文ID,会員ID,注文日時,商品コード,数量,単価,合計",
            "O-1,M-1,2024-04-01,SKU-1,1,1200,1700",
            "O-1,M-1,2024-04-01,,1,500,1700",
        ]
    )
    report = run_import(db, "orders", path, actor=SYSTEM)
    assert (report.inserted, report.rejected) == (1, 0)
    assert [(w.line, w.field) for w in report.warnings] == [(3, "sku")]
    order = session.scalars(select(Order)).one()
    assert order.total_amount == 1700 and [x.sku for x in order.lines] == ["SKU-1"]
