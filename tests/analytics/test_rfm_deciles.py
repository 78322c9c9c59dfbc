"""RFM and deciles computed by Ibis on DuckDB reading the store (SQLite and PostgreSQL), checked by hand."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.engine import Engine

from kizuna.analytics.deciles import DecileSpec, customer_deciles, deciles
from kizuna.analytics.engine import ibis_url, open_store
from kizuna.analytics.rfm import SEGMENT_GRID, SEGMENTS, RFMSpec, customer_scores, rfm
from kizuna.db import transaction
from tests import factories

JST = ZoneInfo("Asia/Tokyo")


def _jst(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=JST)


@pytest.fixture(params=["duckdb", "native"])
def store(db: Engine, request: pytest.FixtureRequest):  # noqa: ANN201
    """The analytics on DuckDB reading the store (the default), and run by the store's own engine through Ibis
    (``KIZUNA_ANALYTICS_URL`` naming it): the same expressions must give the same numbers."""
    url = db.url.render_as_string(hide_password=False)
    s = open_store(url, analytics_url="" if request.param == "duckdb" else ibis_url(url))
    yield s
    s.con.disconnect()


def _spend(s, customer_id: int, amount: int, at: dt.datetime, **fields) -> None:  # noqa: ANN001
    factories.order(s, customer_id=customer_id, ordered_at=at, total_amount=amount, lines=[], **fields)


def test_the_segment_grid_names_every_cell_once():
    cells = [(r, f) for _, rs, fs in SEGMENT_GRID for r in rs for f in fs]
    assert sorted(cells) == [(r, f) for r in range(1, 6) for f in range(1, 6)]
    assert {name for name, _, _ in SEGMENT_GRID} == set(SEGMENTS)


def test_deciles_cut_equal_groups_top_first_with_ties_by_id(db, store):
    with transaction(db) as s:
        ids = [factories.customer(s, family_name=f"客{i}").id for i in range(12)]
        # Spend 1200, 1100, ... 100; customers 4 and 5 tie at 800 (the lower id ranks first).
        amounts = [1200, 1100, 1000, 900, 800, 800, 600, 500, 400, 300, 200, 100]
        for cid, amount in zip(ids, amounts, strict=True):
            _spend(s, cid, amount, _jst(2024, 6, 1, 12))
    per, _ = customer_deciles(store, DecileSpec(start=dt.date(2024, 1, 1), end=dt.date(2024, 12, 31)))
    got = {row["customer_id"]: row["decile"] for row in per.to_pyarrow().to_pylist()}
    # 12 customers in 10 groups: the first two groups hold 2 each.
    assert [got[c] for c in ids] == [1, 1, 2, 2, 3, 4, 5, 6, 7, 8, 9, 10]
    result = deciles(store, DecileSpec(start=dt.date(2024, 1, 1), end=dt.date(2024, 12, 31)))
    assert result.customers == 12 and result.revenue == Decimal("7900.00")
    top = result.deciles[0]
    assert (top.customers, top.revenue, top.orders) == (2, Decimal("2300.00"), 2)
    assert top.share == pytest.approx(2300 / 7900, rel=1e-12)
    assert result.deciles[-1].cumulative_share == pytest.approx(1.0, rel=1e-12)
    assert result.deciles[0].average_order_value == Decimal("1150.00")


def test_spend_leaves_out_cancelled_returned_refunds_other_currencies_and_merged_customers(db, store):
    from kizuna.auth.permissions import Actor
    from kizuna.customers.merge import merge_customers

    with transaction(db) as s:
        a = factories.customer(s, family_name="対象").id
        b = factories.customer(s, family_name="統合元").id
        c = factories.customer(s, family_name="統合先").id
        _spend(s, a, 1000, _jst(2024, 3, 1))
        _spend(s, a, 5000, _jst(2024, 3, 2), status="cancelled")
        _spend(s, a, 7000, _jst(2024, 3, 3), status="returned")
        _spend(s, a, 9000, _jst(2024, 3, 4), status="pending")
        _spend(s, a, -300, _jst(2024, 3, 5))  # a refund recorded as its own negative order
        _spend(s, a, 50, _jst(2024, 3, 6), currency="USD")
        _spend(s, a, 0, _jst(2024, 3, 7))  # a free sample: an order, no spend
        _spend(s, b, 400, _jst(2024, 3, 1))
        _spend(s, c, 600, _jst(2024, 3, 1))
        merge_customers(s, actor=Actor.system("test"), survivor_id=c, merged_id=b, reason="test")
    spec = DecileSpec(start=dt.date(2024, 1, 1), end=dt.date(2024, 12, 31))
    by_customer = {r["customer_id"]: r for r in customer_deciles(store, spec)[0].to_pyarrow().to_pylist()}
    assert set(by_customer) == {a, c}  # the merged record's order now belongs to the survivor
    assert (by_customer[a]["spend"], by_customer[a]["orders"]) == (Decimal("1000.00"), 2)
    assert by_customer[c]["spend"] == Decimal("1000.00")
    with_refunds = customer_deciles(store, spec.model_copy(update={"include_refunds": True}))[0]
    assert {r["customer_id"]: r["spend"] for r in with_refunds.to_pyarrow().to_pylist()}[a] == Decimal("700.00")
    usd = deciles(store, spec.model_copy(update={"currency": "usd"}))
    assert (usd.currency, usd.customers, usd.revenue) == ("USD", 1, Decimal("50.00"))


def test_a_period_is_whole_days_in_the_configured_time_zone(db, store):
    with transaction(db) as s:
        inside = factories.customer(s, family_name="年内").id
        outside = factories.customer(s, family_name="年明け").id
        _spend(s, inside, 100, _jst(2024, 12, 31, 23, 59))  # 14:59 UTC on the 31st
        _spend(s, outside, 100, _jst(2025, 1, 1, 0, 1))  # still the 31st in UTC, but the 1st in Tokyo
    per, _ = customer_deciles(store, DecileSpec(start=dt.date(2024, 12, 31), end=dt.date(2024, 12, 31)))
    assert [r["customer_id"] for r in per.to_pyarrow().to_pylist()] == [inside]


def test_rfm_scores_recency_frequency_money_and_names_segments(db, store):
    as_of = dt.date(2024, 12, 31)
    with transaction(db) as s:
        ids = [factories.customer(s, family_name=f"R{i}").id for i in range(10)]
        # Customer i: last order (10*i) days before as_of, i+1 orders before that, 1000*(10-i) each.
        for i, cid in enumerate(ids):
            last = dt.datetime.combine(as_of, dt.time(10), tzinfo=JST) - dt.timedelta(days=10 * i)
            for k in range(10 - i):
                _spend(s, cid, 1000, last - dt.timedelta(days=k))
    scores = {row.customer_id: row for row in customer_scores(store, RFMSpec(as_of=as_of))}
    first, last = scores[ids[0]], scores[ids[-1]]
    assert (first.recency_days, first.frequency, first.monetary) == (0, 10, Decimal("10000.00"))
    assert (last.recency_days, last.frequency, last.monetary) == (90, 1, Decimal("1000.00"))
    # Ten customers in five groups of two, best first.
    assert [scores[c].r for c in ids] == [5, 5, 4, 4, 3, 3, 2, 2, 1, 1]
    assert [scores[c].f for c in ids] == [5, 5, 4, 4, 3, 3, 2, 2, 1, 1]
    assert [scores[c].segment for c in ids] == [
        "champions",
        "champions",
        "loyal",
        "loyal",
        "need_attention",
        "need_attention",
        "hibernating",
        "hibernating",
        "lost",
        "lost",
    ]
    summary = rfm(store, RFMSpec(as_of=as_of))
    assert summary.customers == 10 and summary.revenue == Decimal("55000.00")
    champions = next(seg for seg in summary.segments if seg.segment == "champions")
    assert (champions.customers, champions.revenue) == (2, Decimal("19000.00"))
    assert summary.grid[4][4] == 2 and summary.grid[0][0] == 2 and sum(map(sum, summary.grid)) == 10
    # An order after the as-of day is not seen; three bins rescale to the five-point segment grid.
    three = {row.customer_id: row for row in customer_scores(store, RFMSpec(as_of=as_of, bins=3))}
    assert {three[c].r for c in ids} == {1, 2, 3}
    assert three[ids[0]].segment == "champions"


def test_rfm_as_of_an_earlier_day_ignores_later_orders(db, store):
    with transaction(db) as s:
        cid = factories.customer(s, family_name="過去").id
        _spend(s, cid, 1000, _jst(2024, 1, 10, 9))
        _spend(s, cid, 5000, _jst(2024, 2, 10, 9))
    scores = customer_scores(store, RFMSpec(as_of=dt.date(2024, 1, 31)))
    assert [(r.frequency, r.monetary, r.recency_days) for r in scores] == [(1, Decimal("1000.00"), 21)]


def test_rfm_recency_counts_an_order_at_midnight_as_that_day(db, store):
    with transaction(db) as s:
        first = factories.customer(s, family_name="零時").id
        last = factories.customer(s, family_name="前日").id
        _spend(s, first, 1000, _jst(2024, 1, 31, 0, 0, 0))  # the first second of the as-of day
        _spend(s, last, 1000, _jst(2024, 1, 30, 23, 59, 59))  # the last second of the day before
    scores = {r.customer_id: r.recency_days for r in customer_scores(store, RFMSpec(as_of=dt.date(2024, 1, 31)))}
    assert scores == {first: 0, last: 1}
