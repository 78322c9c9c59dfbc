"""The 360 summary counts spend by the one definition (orders/spend.py), the same on SQLite and PostgreSQL."""

from __future__ import annotations

from decimal import Decimal

import pytest

from kizuna.customers import service as customers
from kizuna.customers.customer360 import customer_360
from kizuna.customers.schemas import CompanyCreate, NoteCreate
from kizuna.orders.schemas import OrderStatus
from kizuna.orders.spend import SPEND_STATUSES, spend_totals
from tests import factories

# (status, currency, total, day): every case the definition has to decide.
ORDERS = [
    ("completed", "JPY", "1000", "2024-01-10"),
    ("completed", "JPY", "2500.50", "2024-03-02"),
    ("completed", "JPY", "0", "2024-02-01"),  # a free sample: an order, no spend
    ("completed", "JPY", "-500", "2024-03-05"),  # a refund recorded as a row of its own
    ("cancelled", "JPY", "9999", "2024-04-01"),
    ("returned", "JPY", "3000", "2024-04-02"),
    ("pending", "JPY", "700", "2024-05-01"),
    ("completed", "USD", "12.34", "2024-02-15"),
]


@pytest.fixture
def buyer(session) -> int:
    owner = factories.user(session, email="owner@example.com", role="sales", name="営業 一郎")
    c = factories.customer(session, email="buyer@example.jp", owner_id=owner.id)
    other = factories.customer(session, email="other@example.jp")
    for status, currency, total, day in ORDERS:
        factories.order(
            session,
            customer_id=c.id,
            ordered_at=factories.at(day),
            lines=[],
            status=status,
            currency=currency,
            total_amount=total,
        )
    factories.order(session, customer_id=other.id, ordered_at=factories.at("2024-01-01"), lines=[], total_amount=50)
    factories.consent(session, customer_id=c.id, channel="email", recorded_at=factories.at("2024-01-01"))
    factories.consent(
        session, customer_id=c.id, channel="email", status="withdrawn", recorded_at=factories.at("2024-02-01")
    )
    factories.consent(session, customer_id=c.id, channel="line", recorded_at=factories.at("2024-01-01"))
    factories.event(session, customer_id=c.id, type="page_view", channel="web", occurred_at=factories.at("2024-06-01"))
    session.commit()
    return c.id


def hand_sum(currency: str) -> tuple[Decimal, int]:
    """Spend by the definition written out by hand: completed, not negative, in one currency."""
    kept = [Decimal(t) for s, cur, t, _ in ORDERS if s == "completed" and cur == currency and Decimal(t) >= 0]
    return sum(kept, Decimal(0)), len(kept)


def test_summary_revenue_is_completed_orders_without_cancelled_returned_or_refunds(session, buyer):
    summary = customer_360(session, actor=factories.SYSTEM, customer_id=buyer).summary
    yen, yen_orders = hand_sum("JPY")
    dollars, dollar_orders = hand_sum("USD")
    assert (yen, yen_orders) == (Decimal("3500.50"), 3)
    assert summary.currency == "JPY"
    assert summary.lifetime_revenue == yen
    assert summary.order_count == yen_orders + dollar_orders == 4
    assert summary.average_order_value == Decimal("1166.83")
    assert [(r.currency, r.amount, r.orders) for r in summary.revenue_by_currency] == [
        ("JPY", yen, 3),
        ("USD", dollars, 1),
    ]
    assert summary.first_order_at == factories.at("2024-01-10")
    assert summary.last_order_at == factories.at("2024-03-02")


def test_summary_reads_last_activity_owner_and_consent_in_force(session, buyer):
    summary = customer_360(session, actor=factories.SYSTEM, customer_id=buyer).summary
    assert summary.last_activity is not None
    assert (summary.last_activity.kind, summary.last_activity.title) == ("event", "page_view")
    assert summary.owner_name == "営業 一郎"
    assert summary.consent == {
        "email": "withdrawn",
        "sms": "none",
        "line": "granted",
        "phone": "none",
        "post": "none",
        "push": "none",
    }
    customers.add_note(session, actor=factories.SYSTEM, customer_id=buyer, data=NoteCreate(body="later"))
    session.commit()
    assert customer_360(session, actor=factories.SYSTEM, customer_id=buyer).summary.last_activity.kind == "note"


def test_refunds_are_netted_in_only_when_asked(session, buyer):
    from sqlalchemy import func, select

    from kizuna.orders.models import Order
    from kizuna.orders.spend import counts_as_spend

    netted = session.scalar(
        select(func.sum(Order.total_amount)).where(
            Order.customer_id == buyer, Order.currency == "JPY", counts_as_spend(include_refunds=True)
        )
    )
    assert netted == Decimal("3000.50")


def test_every_order_status_is_decided_and_only_completed_counts():
    assert set(SPEND_STATUSES) <= set(OrderStatus.__args__)
    assert SPEND_STATUSES == ("completed",)


def test_a_customer_without_orders_has_zero_revenue(session):
    c = factories.customer(session, email="nobody@example.jp")
    session.commit()
    summary = customer_360(session, actor=factories.SYSTEM, customer_id=c.id).summary
    assert (summary.currency, summary.lifetime_revenue, summary.order_count) == (None, Decimal(0), 0)
    assert summary.average_order_value is None and summary.last_activity is None
    assert set(summary.consent.values()) == {"none"}


def test_company_spend_sums_its_contacts_by_the_same_definition(session, buyer):
    company = customers.create_company(session, actor=factories.SYSTEM, data=CompanyCreate(name="株式会社サンプル"))
    session.flush()
    from kizuna.customers.schemas import CustomerUpdate

    customers.update_customer(
        session,
        actor=factories.SYSTEM,
        customer_id=buyer,
        data=CustomerUpdate(company_id=company.id),
        expected_version=None,
    )
    colleague = factories.customer(session, email="colleague@example.jp", company_id=company.id)
    factories.order(session, customer_id=colleague.id, ordered_at=factories.at("2024-07-01"), lines=[], total_amount=99)
    session.commit()
    totals = spend_totals(session, company_id=company.id)
    assert [(t.currency, t.amount, t.orders) for t in totals] == [
        ("JPY", Decimal("3599.50"), 4),
        ("USD", Decimal("12.34"), 1),
    ]


def test_api_360_carries_the_summary(client, buyer):
    body = client.get(f"/api/v1/customers/{buyer}/360").json()
    assert body["summary"]["lifetime_revenue"] == "3500.50"
    assert body["summary"]["order_count"] == 4
    assert body["summary"]["revenue_by_currency"][1] == {
        "currency": "USD",
        "amount": "12.34",
        "orders": 1,
        "average_order_value": "12.34",
    }
