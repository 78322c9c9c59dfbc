from __future__ import annotations

import csv
import json
from decimal import Decimal

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from kizuna.auth.permissions import Actor
from kizuna.catalog.models import Product
from kizuna.events.models import Event
from kizuna.imports.reader import ImportFileError
from kizuna.imports.runner import run_import
from kizuna.orders.models import Order
from tests import factories

SYSTEM = Actor.system("test")
PRODUCTS = [
    "商品コード,商品名,カテゴリ,味,ブランド,価格",
    'SKU-1,緑茶,飲料,渋め,絆園,"1,200"',
    "SKU-2,ほうじ茶,飲料,香ばしい,絆園,800",
]


@pytest.fixture
def shop(db, session, csv_file):
    factories.customer(session, external_id="C-1", email="one@example.jp")
    factories.customer(session, email="two@example.jp")
    session.commit()
    run_import(db, "products", csv_file(PRODUCTS, name="products.csv"), actor=SYSTEM)
    return db


def test_products_upserted_by_sku(db, session, csv_file):
    first = run_import(db, "products", csv_file(PRODUCTS), actor=SYSTEM)
    assert first.inserted == 2
    again = run_import(db, "products", csv_file(PRODUCTS), actor=SYSTEM)
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, 2)
    changed = run_import(db, "products", csv_file(["SKU,価格", "SKU-1,1300"]), actor=SYSTEM)
    assert changed.updated == 1
    product = session.scalars(select(Product).where(Product.sku == "SKU-1")).one()
    assert (product.name, product.price, product.currency, product.version) == ("緑茶", Decimal("1300"), "JPY", 2)


def test_order_lines_grouped_into_orders_with_total_summed(shop, session, csv_file):
    path = csv_file(
        [
            "注文番号,顧客ID,メールアドレス,注文日時,商品コード,数量,単価,店舗",
            "O-1,C-1,,2024/1/5 13:00,SKU-1,2,1200,渋谷店",
            "O-2,,two@example.jp,2024年2月1日,SKU-2,1,800,",
            "O-1,C-1,,2024/1/5 13:00,SKU-2,1,800,渋谷店",
        ]
    )
    report = run_import(shop, "orders", path, actor=SYSTEM)
    assert (report.inserted, report.rejected) == (2, 0)
    order = session.scalars(select(Order).where(Order.external_id == "O-1")).one()
    assert order.total_amount == Decimal("3200") and order.currency == "JPY" and order.store == "渋谷店"
    assert order.ordered_at.isoformat() == "2024-01-05T04:00:00+00:00"  # 13:00 in Tokyo
    assert [(x.sku, x.quantity, x.amount) for x in order.lines] == [("SKU-1", 2, Decimal("2400")), ("SKU-2", 1, 800)]
    again = run_import(shop, "orders", path, actor=SYSTEM)
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, 2)
    session.expire_all()
    assert session.scalar(select(func.sum(Order.version))) == 2


def test_order_with_a_bad_line_is_rejected_whole(shop, session, csv_file):
    path = csv_file(
        [
            "order_id,customer_id,ordered_at,sku,quantity,unit_price",
            "O-1,C-1,2024-01-05,SKU-1,1,1200",
            "O-1,C-1,2024-01-05,NOPE,1,100",
            "O-2,C-404,2024-01-05,SKU-1,1,1200",
            "O-3,C-1,2024-01-06,SKU-2,1,800",
        ]
    )
    report = run_import(shop, "orders", path, mapping={"customer_id": "customer_external_id"}, actor=SYSTEM)
    assert report.inserted == 1
    assert sorted((r.line, r.field) for r in report.rejects) == [(2, "sku"), (3, "sku"), (4, "customer_external_id")]
    assert "unknown product 'NOPE'" in report.rejects[0].reason
    assert "'C-404'" in next(r.reason for r in report.rejects if r.line == 4)
    assert list(session.scalars(select(Order.external_id))) == ["O-3"]
    created = run_import(
        shop, "orders", path, mapping={"customer_id": "customer_external_id"}, actor=SYSTEM, create_products=True
    )
    assert created.inserted == 1 and created.notes["products created"] == 1


def test_orders_without_ordered_at_column_are_fatal(shop, csv_file):
    with pytest.raises(ImportFileError, match="missing required column: ordered_at"):
        run_import(shop, "orders", csv_file(["注文ID,顧客ID,SKU,単価", "O-1,C-1,SKU-1,100"]), actor=SYSTEM)


def test_events_jsonl_import_is_idempotent_with_derived_ids(shop, session, tmp_path):
    lines = [
        {"customer_id": "C-1", "event": "page_view", "channel": "web", "timestamp": "2024-03-01T10:00:00", "path": "/"},
        {"email": "two@example.jp", "type": "store_visit", "channel": "店舗", "日時": "2024/3/2 11:00",
         "properties": {"store": "渋谷"}},
        {"external_id": "ev-9", "anonymous_id": "anon-1", "type": "page_view", "channel": "web",
         "occurred_at": "2024-03-03"},
        {"email": "nobody@example.jp", "type": "page_view", "channel": "web", "occurred_at": "2024-03-03"},
        "not an object",
    ]  # fmt: skip
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(json.dumps(x, ensure_ascii=False) for x in lines) + "\n", encoding="utf-8")
    report = run_import(shop, "events", path, actor=SYSTEM, mapping={"customer_id": "customer_external_id"})
    assert report.inserted == 3
    assert [(r.line, r.field) for r in sorted(report.rejects, key=lambda r: r.line)] == [
        (4, "customer_email"),
        (5, "row"),
    ]
    visit = session.scalars(select(Event).where(Event.type == "store_visit")).one()
    assert visit.channel == "store" and visit.properties == {"store": "渋谷"} and visit.external_id.startswith("h:")
    view = session.scalars(select(Event).where(Event.external_id.startswith("h:"), Event.type == "page_view")).one()
    assert view.properties == {"path": "/"}
    again = run_import(shop, "events", path, actor=SYSTEM, mapping={"customer_id": "customer_external_id"})
    assert (again.inserted, again.unchanged) == (0, 3)


def test_cli_exit_codes_and_report_file(db, csv_file, tmp_path, monkeypatch):
    from kizuna.config import get_settings
    from kizuna.db import get_engine
    from kizuna.imports.cli import imports_app

    monkeypatch.setenv("KIZUNA_DATABASE_URL", db.url.render_as_string(hide_password=False))
    get_settings.cache_clear()
    get_engine.cache_clear()
    runner = CliRunner()
    try:
        good = csv_file(["email", "a@example.jp"], name="good.csv")
        result = runner.invoke(imports_app, ["customers", str(good), "--report", str(tmp_path / "good-report.csv")])
        assert result.exit_code == 0, result.output
        good_report = (tmp_path / "good-report.csv").read_text(encoding="utf-8-sig").splitlines()
        assert good_report == ["line,field,reason,reason_code,severity,params"]

        bad = csv_file(["email", "b@example.jp", "broken"], name="bad.csv")
        result = runner.invoke(imports_app, ["customers", str(bad), "--report", str(tmp_path / "bad-report.csv")])
        assert result.exit_code == 1
        # In English, with the code and the row as the file had it.
        assert "3,email,email: " in (tmp_path / "bad-report.csv").read_text(encoding="utf-8-sig")
        with (tmp_path / "bad-report.csv").open(encoding="utf-8-sig", newline="") as fh:
            (row,) = csv.DictReader(fh)
        assert (row["reason_code"], row["severity"], row["params"], row["email"]) == (
            "email_invalid",
            "error",
            '{"value": "broken"}',
            "broken",
        )

        result = runner.invoke(imports_app, ["customers", str(bad), "--map", "email=nonsense"])
        assert result.exit_code == 2 and "unknown field 'nonsense'" in result.output

        result = runner.invoke(imports_app, ["customers", str(bad), "--dry-run", "--report", str(tmp_path / "r.csv")])
        assert result.exit_code == 1 and "DRY RUN" in result.output

        latin = csv_file(["email,given_name", "jose@example.es,José"], name="latin.csv", encoding="latin-1")
        result = runner.invoke(imports_app, ["customers", str(latin), "--encoding", "latin-1"])
        assert result.exit_code == 0 and "(iso8859-1)" in result.output, result.output
        result = runner.invoke(imports_app, ["customers", str(latin), "--encoding", "utf-8"])
        assert result.exit_code == 2 and "line 2 does not decode as utf-8" in result.output
    finally:
        get_settings.cache_clear()
        get_engine.cache_clear()


def test_customer_id_is_the_source_systems_id_and_kizuna_customer_id_is_kizunas(shop, session, csv_file):
    # The same header means the same thing in a customers file and an orders file from one shop system.
    from kizuna.customers.models import Customer

    two = session.scalar(select(Customer).where(Customer.email == "two@example.jp"))
    decoy = factories.customer(session, external_id=str(two.id), email="decoy@example.jp")
    session.commit()
    header = "order_id,{},ordered_at,sku,quantity,unit_price"
    by_source = run_import(
        shop,
        "orders",
        csv_file([header.format("customer_id"), f"O-SRC,{two.id},2024-01-05,SKU-1,1,1200"]),
        actor=SYSTEM,
    )
    assert by_source.mapping["customer_id"] == "customer_external_id"
    by_kizuna = run_import(
        shop,
        "orders",
        csv_file([header.format("kizuna_customer_id"), f"O-KZ,{two.id},2024-01-05,SKU-1,1,1200"]),
        actor=SYSTEM,
    )
    assert by_kizuna.mapping["kizuna_customer_id"] == "kizuna_customer_id"
    owners = dict(session.execute(select(Order.external_id, Order.customer_id)).all())
    assert owners == {"O-SRC": decoy.id, "O-KZ": two.id}


def test_every_alias_of_every_kind_names_one_field():
    from kizuna.imports.reader import header_key
    from kizuna.imports.runner import KINDS, importer_for

    for kind in KINDS:
        importer = importer_for(kind)
        owners: dict[str, set[str]] = {}
        for name, aliases in importer.columns.aliases.items():
            for alias in (name, *aliases):
                owners.setdefault(header_key(alias), set()).add(name)
        own = {header_key(n) for n in importer.columns.aliases}
        clashes = {k: v for k, v in owners.items() if len(v) > 1 and k not in own}
        assert clashes == {}, f"{kind}: aliases shared by several fields: {clashes}"


def test_a_nul_inside_event_properties_rejects_that_row_only(shop, session, tmp_path):
    # PostgreSQL cannot store U+0000 in JSONB: the row must be refused by name, not fail its whole batch.
    lines = [
        {"customer_id": "C-1", "type": "page_view", "channel": "web", "occurred_at": "2024-03-01", "path": "/a"},
        {"customer_id": "C-1", "type": "page_view", "channel": "web", "occurred_at": "2024-03-02",
         "properties": {"note": "bad\u0000value"}},
        {"customer_id": "C-1", "type": "page_view", "channel": "web", "occurred_at": "2024-03-03",
         "properties": {"nested": [{"k\u0000": 1}]}},
        {"customer_id": "C-1", "type": "page_view", "channel": "web", "occurred_at": "2024-03-04", "path": "/d"},
    ]  # fmt: skip
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(json.dumps(x, ensure_ascii=False) for x in lines) + "\n", encoding="utf-8")
    report = run_import(shop, "events", path, actor=SYSTEM, mapping={"customer_id": "customer_external_id"})
    assert (report.inserted, report.rejected) == (2, 2)
    assert [r.line for r in sorted(report.rejects, key=lambda r: r.line)] == [2, 3]
    assert all("NUL" in r.reason for r in report.rejects)
    stored = session.scalars(select(Event.properties).order_by(Event.occurred_at)).all()
    assert stored == [{"path": "/a"}, {"path": "/d"}]


def test_fallback_headers_belong_to_one_field_and_are_nobody_elses_alias():
    from kizuna.imports.reader import header_key
    from kizuna.imports.runner import KINDS, importer_for

    for kind in KINDS:
        columns = importer_for(kind).columns
        aliases = {header_key(a) for name, names in columns.aliases.items() for a in (name, *names)}
        seen: set[str] = set()
        for name, names in columns.fallbacks.items():
            assert name in columns.aliases, f"{kind}: fallback for unknown field {name}"
            keys = {header_key(a) for a in names}
            assert not keys & aliases and not keys & seen, f"{kind}: {name} fallbacks clash"
            seen |= keys
