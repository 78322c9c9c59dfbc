"""The persisted per-customer metrics: the same numbers as the RFM and decile analyses, written into the store
by DuckDB (the default) or through SQLAlchemy (another analytics backend), CLV columns kept across refreshes."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import inspect, select, update
from sqlalchemy.engine import Engine

from kizuna.analytics.deciles import DecileSpec, customer_deciles
from kizuna.analytics.engine import ibis_url, open_store
from kizuna.analytics.metrics import MetricsSpec, refresh
from kizuna.analytics.models import CustomerMetrics, MetricRun
from kizuna.analytics.rfm import RFMSpec, customer_scores
from kizuna.db import transaction
from tests import factories

JST = ZoneInfo("Asia/Tokyo")
AS_OF = dt.date(2024, 12, 31)


@pytest.fixture(params=["duckdb", "native"])
def writer(db: Engine, request: pytest.FixtureRequest):  # noqa: ANN201
    url = db.url.render_as_string(hide_password=False)
    s = open_store(url, analytics_url="" if request.param == "duckdb" else ibis_url(url))
    yield s
    s.con.disconnect()


def _shop(db: Engine) -> list[int]:
    """Twelve customers with 1..12 orders over 2024; lines in two categories; one cancelled order, one refund."""
    with transaction(db) as s:
        tea = factories.product(s, sku="TEA-1", name="緑茶", category="お茶", brand="静岡園").id
        sweets = factories.product(s, sku="SW-1", name="羊羹", category="和菓子", brand="とらや").id
        ids = []
        for i in range(12):
            cid = factories.customer(s, family_name=f"客{i}").id
            ids.append(cid)
            for k in range(i + 1):
                product = tea if (k + i) % 3 else sweets
                factories.order(
                    s,
                    customer_id=cid,
                    ordered_at=dt.datetime(2024, 1 + (i + k) % 12, 1 + k, 23, 30, 15, 123456, tzinfo=JST),
                    total_amount=1000 * (k + 1),
                    lines=[{"product_id": product, "unit_price": 1000 * (k + 1)}],
                )
        factories.order(
            s, customer_id=ids[0], ordered_at=dt.datetime(2024, 6, 1, tzinfo=JST), total_amount=99999,
            status="cancelled", lines=[],
        )  # fmt: skip
        factories.order(s, customer_id=ids[1], ordered_at=dt.datetime(2024, 6, 2, tzinfo=JST), total_amount=-500,
                        lines=[])  # fmt: skip
    return ids


def _persisted(db: Engine) -> dict[int, CustomerMetrics]:
    with transaction(db) as s:
        rows = s.scalars(select(CustomerMetrics)).all()
        s.expunge_all()
        return {r.customer_id: r for r in rows}


def test_refresh_persists_what_the_analyses_compute(db, writer):
    _shop(db)
    run = refresh(writer, db, MetricsSpec(as_of=AS_OF))
    assert (run.customers, run.changed, run.currency) == (12, 12, "JPY")
    got = _persisted(db)
    reader = open_store(db.url.render_as_string(hide_password=False))
    scores = {r.customer_id: r for r in customer_scores(reader, RFMSpec(as_of=AS_OF))}
    per, _ = customer_deciles(reader, DecileSpec(end=AS_OF))
    deciles = {row["customer_id"]: row["decile"] for row in per.to_pyarrow().to_pylist()}
    reader.con.disconnect()
    assert set(got) == set(scores) == set(deciles)
    for cid, m in got.items():
        s = scores[cid]
        assert (m.r, m.f, m.m, m.rfm_segment, m.order_count) == (s.r, s.f, s.m, s.segment, s.frequency)
        assert m.total_spend == s.monetary and isinstance(m.total_spend, Decimal)
        assert m.decile == deciles[cid]
        assert m.currency == "JPY" and m.computed_at.tzinfo is not None


def test_times_money_and_top_category_survive_the_round_trip(db, writer):
    ids = _shop(db)
    refresh(writer, db, MetricsSpec(as_of=AS_OF))
    got = _persisted(db)
    # Customer 0: one order, 2024-01-01 23:30:15.123456 JST (14:30:15 UTC), 1,000 yen of お茶? (0+0)%3 == 0: 和菓子.
    first = got[ids[0]]
    assert first.first_order_at == dt.datetime(2024, 1, 1, 14, 30, 15, tzinfo=dt.UTC)
    assert first.last_order_at == first.first_order_at
    assert first.total_spend == Decimal("1000.00") and first.top_category == "和菓子"
    # Customer 2: orders of 1000 (和菓子? (0+2)%3 -> お茶), 2000 ((1+2)%3 == 0: 和菓子), 3000 (お茶): お茶 4000.
    assert got[ids[2]].top_category == "お茶" and got[ids[2]].total_spend == Decimal("6000.00")
    # The refund (-500) is no spend; the cancelled order is not counted.
    assert got[ids[1]].total_spend == Decimal("3000.00") and got[ids[0]].order_count == 1


def test_a_first_refresh_writes_awkward_text_exactly_and_leaves_the_table_indexed(db, writer):
    # The first fill goes to the driver in bulk (PostgreSQL: CSV through COPY; SQLite: its indexes built after),
    # so text that CSV must quote, a missing category and cents must come back as they went in.
    odd = '抹茶, "濃い" 茶'
    with transaction(db) as s:
        tea = factories.product(s, sku="ODD-1", name="濃茶", category=odd).id
        bare = factories.product(s, sku="BARE-1", name="分類なし").id
        a = factories.customer(s, family_name="甲").id
        b = factories.customer(s, family_name="乙").id
        at = dt.datetime(2024, 3, 1, 9, 0, 1, tzinfo=JST)
        factories.order(s, customer_id=a, ordered_at=at, total_amount=Decimal("1234.56"),
                        lines=[{"product_id": tea, "unit_price": Decimal("1234.56")}])  # fmt: skip
        factories.order(
            s, customer_id=b, ordered_at=at, total_amount=500, lines=[{"product_id": bare, "unit_price": 500}]
        )
    refresh(writer, db, MetricsSpec(as_of=AS_OF))
    got = _persisted(db)
    assert got[a].top_category == odd and got[b].top_category is None
    assert got[a].total_spend == Decimal("1234.56") and got[b].total_spend == Decimal("500.00")
    assert got[a].first_order_at == dt.datetime(2024, 3, 1, 0, 0, 1, tzinfo=dt.UTC)
    assert got[a].computed_at.tzinfo is not None and got[a].currency == "JPY"
    present = {index["name"] for index in inspect(db).get_indexes("customer_metrics")}
    assert {index.name for index in CustomerMetrics.__table__.indexes} <= present
    # The second refresh finds nothing to change in what the first wrote.
    assert refresh(writer, db, MetricsSpec(as_of=AS_OF)).changed == 0


def test_a_refresh_keeps_clv_columns_and_drops_customers_who_no_longer_qualify(db, writer):
    ids = _shop(db)
    refresh(writer, db, MetricsSpec(as_of=AS_OF))
    with transaction(db) as s:
        s.execute(
            update(CustomerMetrics)
            .where(CustomerMetrics.customer_id == ids[5])
            .values(p_alive=0.25, churn_risk=0.75, clv=Decimal("12345.67"), expected_purchases=1.5)
        )
        factories.customer(s, family_name="注文なし")
    from kizuna.auth.permissions import Actor
    from kizuna.customers import service as customers

    with transaction(db) as s:
        customers.delete_customer(s, actor=Actor.system("test"), customer_id=ids[11], expected_version=None)
    run = refresh(writer, db, MetricsSpec(as_of=AS_OF))
    got = _persisted(db)
    assert ids[11] not in got and len(got) == 11
    kept = got[ids[5]]
    assert (kept.p_alive, kept.churn_risk, kept.clv, kept.expected_purchases) == (0.25, 0.75, Decimal("12345.67"), 1.5)
    # Removing the top customer moves others' deciles and scores: the run counts what changed.
    assert run.changed >= 1
    with transaction(db) as s:
        runs = s.scalars(select(MetricRun).order_by(MetricRun.id)).all()
        assert [r.kind for r in runs] == ["scores", "scores"] and runs[-1].details["as_of"] == "2024-12-31"


def test_a_store_without_orders_refreshes_to_nothing(db, writer):
    run = refresh(writer, db, MetricsSpec(as_of=AS_OF))
    assert (run.customers, run.changed) == (0, 0)
    assert _persisted(db) == {}


def test_the_worker_refreshes_a_minute_after_new_orders_and_then_daily(db):
    from kizuna.analytics.subscribers import SUBSCRIBER, TOPIC
    from kizuna.db import utcnow
    from kizuna.outbox.models import OutboxDelivery, OutboxMessage
    from kizuna.outbox.worker import run_once

    def refreshes() -> list[tuple[str, dt.datetime]]:
        with transaction(db) as s:
            return list(
                s.execute(
                    select(OutboxMessage.payload["reason"].as_string(), OutboxDelivery.available_at)
                    .join(OutboxDelivery, OutboxDelivery.message_id == OutboxMessage.id)
                    .where(OutboxMessage.topic == TOPIC, OutboxDelivery.subscriber == SUBSCRIBER,
                           OutboxDelivery.status == "pending")
                )
            )  # fmt: skip

    ids = _shop(db)  # twelve customers' orders: one refresh asked for, not one per order
    run_once(db, worker="w1", limit=1000)
    due = refreshes()
    assert len(due) == 1 and due[0][0] == "order.completed"
    assert dt.timedelta(seconds=30) < due[0][1] - utcnow() <= dt.timedelta(seconds=60)
    assert _persisted(db) == {}
    with transaction(db) as s:  # a minute passes
        s.execute(update(OutboxDelivery).where(OutboxDelivery.status == "pending").values(available_at=utcnow()))
    run_once(db, worker="w1", limit=1000)
    assert set(_persisted(db)) == set(ids)
    (reason, at), *more = refreshes()
    assert reason == "daily" and not more
    local = at.astimezone(JST)
    assert (local.hour, local.minute) == (3, 0) and at - utcnow() <= dt.timedelta(days=1)
    with transaction(db) as s:  # the night comes: the daily run also keeps what customers buy together
        s.execute(update(OutboxDelivery).where(OutboxDelivery.status == "pending").values(available_at=utcnow()))
    run_once(db, worker="w1", limit=1000)
    with transaction(db) as s:
        kinds = set(s.scalars(select(MetricRun.kind)))
    assert {"scores", "neighbors"} <= kinds
    assert [reason for reason, _ in refreshes()] == ["daily"]


def test_refresh_over_http_needs_the_refresh_permission_and_tells_segments(client, client_as, db):
    from kizuna.outbox.models import OutboxMessage

    _shop(db)
    assert client_as("viewer").post("/api/v1/analytics/refresh").status_code == 403
    r = client_as("marketer").post("/api/v1/analytics/refresh")
    assert r.status_code == 200, r.text
    assert r.json()["customers"] == 12 and r.json()["currency"] == "JPY"
    assert len(_persisted(db)) == 12
    with transaction(db) as s:
        told = s.scalars(select(OutboxMessage.payload).where(OutboxMessage.topic == "metrics.refreshed")).all()
    assert [m["customers"] for m in told] == [12]


def test_a_refresh_writes_only_what_changed(db, writer):
    ids = _shop(db)
    refresh(writer, db, MetricsSpec(as_of=AS_OF))
    before = _persisted(db)
    again = refresh(writer, db, MetricsSpec(as_of=AS_OF))
    assert (again.customers, again.changed) == (12, 0)
    assert {c: m.computed_at for c, m in _persisted(db).items()} == {c: m.computed_at for c, m in before.items()}
    # One more order for the top customer, earlier on the day of their last one: they stay first on every score,
    # so only their own row changes.
    top = ids[11]
    with transaction(db) as s:
        factories.order(s, customer_id=top, ordered_at=dt.datetime(2024, 12, 1, 9, tzinfo=JST), total_amount=100,
                        lines=[{"sku": "TEA-1", "unit_price": 100}])  # fmt: skip
    third = refresh(writer, db, MetricsSpec(as_of=AS_OF, categories=False))
    after = _persisted(db)
    assert third.changed == 1 and after[top].order_count == 13
    assert after[top].total_spend == before[top].total_spend + 100
    assert after[top].computed_at > before[top].computed_at
    assert after[top].top_category == before[top].top_category  # kept: categories were not computed this time
    assert all(after[c].computed_at == before[c].computed_at for c in ids if c != top)
