"""Files as shop and CRM systems export them import with no --map: EC-CUBE 4, Shopify, HubSpot, Salesforce.

The samples under samples/ are written as those systems write them (EC-CUBE: Shift_JIS/CP932 with its own
column names and one row per order item, shipping rows included; Shopify: UTF-8, one row per line item with
the order's fields on its first row only).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

from sqlalchemy import select

from kizuna.auth.permissions import Actor
from kizuna.catalog.models import Product
from kizuna.customers.models import Consent, Customer
from kizuna.imports.runner import run_import
from kizuna.orders.models import Order

SYSTEM = Actor.system("test")
SAMPLES = Path(__file__).parent / "samples"


def _customer(session, email: str) -> Customer:
    return session.scalars(select(Customer).where(Customer.email == email)).one()


def _orders(session) -> dict[str, Order]:
    return {o.external_id: o for o in session.scalars(select(Order))}


def test_eccube_members_and_orders(db, session):
    members = run_import(db, "customers", SAMPLES / "eccube_members.csv", actor=SYSTEM)
    assert members.encoding == "cp932"
    assert (members.inserted, members.rejected, members.warnings) == (3, 0, [])
    ichiro = _customer(session, "ichiro.takahashi@example.jp")
    assert (ichiro.external_id, ichiro.family_name, ichiro.given_name, ichiro.full_name_kana) == (
        "1",
        "髙橋",
        "一郎",
        "タカハシ イチロウ",
    )
    assert ichiro.birth_date == dt.date(1985, 4, 2)  # exported as "1985-04-02 00:00:00"
    assert (ichiro.prefecture, ichiro.city, ichiro.address_line) == ("東京都", "渋谷区神南", "1-2-3 ~ビル1")  # NFKC
    assert (ichiro.phone, ichiro.gender, ichiro.postal_code) == ("+819012345678", "male", "1500041")
    assert _customer(session, "hanako.sato@example.jp").gender == "female"

    orders = run_import(db, "orders", SAMPLES / "eccube_orders.csv", actor=SYSTEM, create_products=True)
    assert (orders.inserted, orders.rejected, orders.warnings) == (2, 0, [])
    assert orders.mapping["注文ID"] == "external_id" and "注文番号" in orders.ignored_columns
    stored = _orders(session)
    first = stored["1001"]
    assert first.customer_id == ichiro.id and first.status == "completed"
    assert first.total_amount == Decimal("4400") and first.ordered_at == dt.datetime(2024, 1, 5, 4, 0, tzinfo=dt.UTC)
    # The 送料 row is part of the total, not a line item.
    assert [(x.sku, x.quantity, x.unit_price, x.amount) for x in first.lines] == [
        ("TEA-001", 2, Decimal("1200"), Decimal("2400")),
        ("TEA-002", 1, Decimal("600"), Decimal("600")),
    ]
    assert stored["1002"].status == "cancelled" and len(stored["1002"].lines) == 1
    names = dict(session.execute(select(Product.sku, Product.name)).all())
    assert names == {"TEA-001": "緑茶 100g", "TEA-002": "ほうじ茶 200g"}
    again = run_import(db, "orders", SAMPLES / "eccube_orders.csv", actor=SYSTEM, create_products=True)
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, 2)


def test_shopify_customers_and_orders_linked_by_email(db, session):
    customers = run_import(db, "customers", SAMPLES / "shopify_customers.csv", actor=SYSTEM)
    assert (customers.inserted, customers.rejected, customers.warnings) == (2, 0, [])
    taro = _customer(session, "taro.yamada@example.com")
    assert (taro.external_id, taro.family_name, taro.given_name) == ("7101234567890", "Yamada", "Taro")
    assert (taro.prefecture, taro.city, taro.country, taro.postal_code) == ("東京都", "Shibuya-ku", "JP", "150-0001")
    assert taro.phone == "+819077778888" and [t.name for t in taro.tags] == ["VIP", "newsletter"]
    answers = dict(session.execute(select(Consent.customer_id, Consent.status)).all())
    assert answers == {taro.id: "granted", _customer(session, "mei.tanaka@example.com").id: "withdrawn"}

    orders = run_import(db, "orders", SAMPLES / "shopify_orders.csv", actor=SYSTEM, create_products=True)
    assert (orders.inserted, orders.rejected, orders.warnings) == (2, 0, [])
    stored = _orders(session)
    first = stored["#1001"]
    assert first.customer_id == taro.id and first.total_amount == Decimal("3500") and first.currency == "JPY"
    assert first.ordered_at == dt.datetime(2024, 3, 5, 5, 22, 10, tzinfo=dt.UTC)
    assert (first.status, first.channel) == ("completed", "web")
    assert [(x.sku, x.quantity, x.amount) for x in first.lines] == [
        ("SEN-100", 2, Decimal("2400")),
        ("HOJ-200", 1, Decimal("600")),
    ]
    assert (stored["#1002"].status, stored["#1002"].channel) == ("returned", "pos")


def test_hubspot_contacts(db, session):
    report = run_import(db, "customers", SAMPLES / "hubspot_contacts.csv", actor=SYSTEM)
    assert (report.inserted, report.rejected, report.warnings) == (2, 0, [])
    kenta = _customer(session, "kenta.kobayashi@example.jp")
    assert (kenta.external_id, kenta.full_name, kenta.phone) == ("51", "小林 健太", "+81355550101")
    assert (kenta.prefecture, kenta.city, kenta.address_line, kenta.country) == ("東京都", "渋谷区", "神南1-2-3", "JP")
    emily = _customer(session, "emily.clark@example.com")
    assert (emily.country, emily.phone, emily.postal_code) == ("US", None, "94043")


def test_salesforce_contacts_with_a_bad_birthdate_keep_the_person(db, session):
    report = run_import(db, "customers", SAMPLES / "salesforce_contacts.csv", actor=SYSTEM)
    assert (report.inserted, report.rejected) == (2, 0)
    assert [(w.line, w.field) for w in report.warnings] == [(3, "birth_date")]
    misaki = _customer(session, "misaki.watanabe@example.jp")
    assert (misaki.external_id, misaki.birth_date, misaki.source) == ("0035g00000AbCdEAAV", dt.date(1982, 7, 15), "Web")
    assert (misaki.prefecture, misaki.city, misaki.phone) == ("大阪府", "大阪市北区", "+81669990000")
    daisuke = _customer(session, "daisuke.nakamura@example.jp")
    assert daisuke.birth_date is None and daisuke.family_name == "中村"
    # "Email Opt Out" is the consent asked the other way round.
    answers = dict(session.execute(select(Consent.customer_id, Consent.status)).all())
    assert answers == {misaki.id: "granted", daisuke.id: "withdrawn"}
