"""A small world of customers with known events, orders, tags, consents and metrics, for every rule kind."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy.engine import Engine

from kizuna.analytics.models import CustomerMetrics
from kizuna.analytics.periods import today
from kizuna.auth.permissions import Actor
from kizuna.db import transaction, utcnow
from tests import factories

MARKETER = Actor(label="marketer", role="marketer", user_id=None, origin="api")


def days_ago(n: int, hour: int = 12) -> dt.datetime:
    """Noon (local time) ``n`` days before today, in UTC."""
    from kizuna.analytics.periods import zone

    return dt.datetime.combine(today() - dt.timedelta(days=n), dt.time(hour), tzinfo=zone()).astimezone(dt.UTC)


def metrics(session: Any, customer_id: int, **fields: Any) -> None:
    now = utcnow()
    values: dict[str, Any] = {
        "currency": "JPY",
        "order_count": 1,
        "total_spend": Decimal("1000"),
        "first_order_at": now,
        "last_order_at": now,
        "r": 3,
        "f": 3,
        "m": 3,
        "rfm_segment": "need_attention",
        "decile": 5,
        "computed_at": now,
    }
    values.update(fields)
    session.add(CustomerMetrics(customer_id=customer_id, **values))


@pytest.fixture
def world(db: Engine) -> dict[str, int]:
    return build_world(db)


def build_world(db: Engine) -> dict[str, int]:
    """Five customers:

    - aki: Tokyo, VIP, email consent, 3 page_views of /sale in the last week, 2 completed orders (total 15,000)
      one with a tea product 10 days ago; Champions, decile 1, clv 90,000, churn 0.1
    - ben: Osaka, withdrew email consent, 1 page_view of /sale 5 days ago, one cancelled order; Lost, decile 10
    - chie: Tokyo, no consent, 3 page_views 60 days ago, one completed order of 3,000 (coffee) 200 days ago
    - dan: Kyoto, created with e-mail dan@example.com, nothing else
    - eve: Tokyo, merged into aki (not active): never a member
    """
    with transaction(db) as s:
        tea = factories.product(s, sku="TEA-1", name="Sencha", category="tea", brand="Kizuna", taste="green")
        coffee = factories.product(s, sku="COF-1", name="Blend", category="coffee", brand="Other", taste="bitter")
        aki = factories.customer(s, family_name="秋", prefecture="東京都", email="aki@example.com", tags=["VIP"])
        ben = factories.customer(s, family_name="ベン", prefecture="大阪府")
        chie = factories.customer(s, family_name="千恵", prefecture="東京都")
        dan = factories.customer(s, family_name="段", prefecture="京都府", email="dan@example.com")
        eve = factories.customer(s, family_name="恵", prefecture="東京都")
        factories.consent(s, customer_id=aki.id, channel="email")
        factories.consent(s, customer_id=ben.id, channel="email")
        factories.consent(s, customer_id=ben.id, channel="email", status="withdrawn")
        for n in (1, 2, 3):
            factories.event(
                s,
                customer_id=aki.id,
                type="page_view",
                channel="web",
                occurred_at=days_ago(n),
                properties={"path": "/sale"},
            )
        factories.event(
            s,
            customer_id=ben.id,
            type="page_view",
            channel="web",
            occurred_at=days_ago(5),
            properties={"path": "/sale"},
        )
        for n in (60, 61, 62):
            factories.event(
                s,
                customer_id=chie.id,
                type="page_view",
                channel="web",
                occurred_at=days_ago(n),
                properties={"path": "/"},
            )
        line = {"product_id": tea.id, "unit_price": 5000, "quantity": 1}
        factories.order(s, customer_id=aki.id, ordered_at=days_ago(10), lines=[line])
        factories.order(s, customer_id=aki.id, ordered_at=days_ago(40), lines=[], total_amount=10000)
        factories.order(s, customer_id=ben.id, ordered_at=days_ago(3), lines=[line], status="cancelled")
        factories.order(
            s, customer_id=chie.id, ordered_at=days_ago(200), lines=[{"product_id": coffee.id, "unit_price": 3000}]
        )
        metrics(s, aki.id, rfm_segment="champions", decile=1, clv=Decimal("90000"), churn_risk=0.1, p_alive=0.9)
        metrics(s, ben.id, rfm_segment="lost", decile=10, clv=Decimal("100"), churn_risk=0.9, p_alive=0.1)
        s.flush()
        from kizuna.customers import merge  # noqa: F401 - the merge service marks eve as merged
        from kizuna.customers.models import Customer

        s.get(Customer, eve.id).status = "merged"
        return {"aki": aki.id, "ben": ben.id, "chie": chie.id, "dan": dan.id, "eve": eve.id}
