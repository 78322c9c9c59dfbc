"""CTB analysis (category / taste / brand), its customer groups, "likely to buy" and recommendations, computed by
Ibis on DuckDB reading the store (SQLite and PostgreSQL) and by the store's own engine, checked by hand."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import update
from sqlalchemy.engine import Engine

from kizuna.analytics.ctb import CTBSpec, affinities, ctb, customer_tops
from kizuna.analytics.ctb_likely import LikelySpec, likely
from kizuna.analytics.engine import ibis_url, open_store
from kizuna.analytics.recommend import recommendations
from kizuna.db import transaction
from kizuna.errors import ValidationError
from tests import factories

JST = ZoneInfo("Asia/Tokyo")
AS_OF = dt.date(2024, 12, 31)


def _jst(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=JST)


@pytest.fixture(params=["duckdb", "native"])
def store(db: Engine, request: pytest.FixtureRequest):  # noqa: ANN201
    """DuckDB reading the store (the default), and the store's own engine through Ibis: the same numbers."""
    url = db.url.render_as_string(hide_password=False)
    s = open_store(url, analytics_url="" if request.param == "duckdb" else ibis_url(url))
    yield s
    s.con.disconnect()


def _products(s) -> dict[str, int]:  # noqa: ANN001
    from kizuna.catalog.models import Product

    made = {
        "P1": factories.product(s, sku="P1", name="煎茶", category="tea", taste="green", brand="A"),
        "P2": factories.product(s, sku="P2", name="深煎り", category="coffee", taste="bitter", brand="B"),
        "P3": factories.product(s, sku="P3", name="ほうじ茶", category="tea", brand="B"),
        "P4": factories.product(s, sku="P4", name="福袋"),
    }
    # A blank category (written around the service, as an old import might have) is no category.
    s.execute(update(Product).where(Product.sku == "P4").values(category="  "))
    return {sku: p.id for sku, p in made.items()}


def _order(s, cid: int, at: dt.datetime, *lines: tuple[str, int], **fields) -> None:  # noqa: ANN001
    factories.order(
        s,
        customer_id=cid,
        ordered_at=at,
        lines=[{"sku": sku, "quantity": 1, "unit_price": amount} for sku, amount in lines],
        **fields,
    )


def _by_value(rows: list) -> dict:  # noqa: ANN001
    return {row.value: row for row in rows}


def test_affinity_is_recency_weighted_share_of_spend_and_lines(db, store):
    with transaction(db) as s:
        _products(s)
        x = factories.customer(s, family_name="重み").id
        _order(s, x, _jst(2024, 12, 31, 10), ("P1", 1000))  # age 0: weight 1
        _order(s, x, _jst(2024, 7, 4, 10), ("P2", 2000), ("P4", 500))  # age 180 days: weight 0.5
    spec = CTBSpec(end=AS_OF)
    rows = _by_value(affinities(store, spec))
    # Weighted spend: tea 1000, coffee 2000×0.5 = 1000, uncategorised (a blank category is none) 500×0.5 = 250.
    assert rows["tea"].spend_share == pytest.approx(1000 / 2250, rel=1e-9)
    assert rows["coffee"].spend_share == pytest.approx(1000 / 2250, rel=1e-9)
    assert rows[None].spend_share == pytest.approx(250 / 2250, rel=1e-9)
    # Weighted lines: 1, 0.5, 0.5 of 2.
    assert [rows[v].count_share for v in ("tea", "coffee", None)] == pytest.approx([0.5, 0.25, 0.25], rel=1e-9)
    assert (rows["coffee"].spend, rows["coffee"].lines, rows["coffee"].quantity) == (Decimal("2000.00"), 1, 1)
    # A quarter-year half-life weighs the July order 0.25.
    quick = _by_value(affinities(store, CTBSpec(end=AS_OF, half_life_days=90)))
    assert quick["tea"].spend_share == pytest.approx(1000 / 1625, rel=1e-9)
    assert quick["coffee"].spend_share == pytest.approx(500 / 1625, rel=1e-9)
    # Tea and coffee tie on spend; tea wins on lines. The brand ties the same way (A over B).
    [top] = customer_tops(store, spec)
    assert (top.customer_id, top.top_category, top.top_brand, top.spend) == (x, "tea", "A", Decimal("3500.00"))
    assert top.category_share == pytest.approx(1000 / 2250, rel=1e-9)
    # Taste: P1 green, P2 bitter, P4 none: green 1000, bitter 1000 → green on lines.
    assert top.top_taste == "green"


def test_ties_on_spend_and_lines_go_to_the_smaller_name_and_uncategorised_is_never_top(db, store):
    with transaction(db) as s:
        _products(s)
        y = factories.customer(s, family_name="同点").id
        only_unknown = factories.customer(s, family_name="不明").id
        _order(s, y, _jst(2024, 5, 1, 12), ("P1", 300), ("P2", 300))
        _order(s, only_unknown, _jst(2024, 5, 1, 12), ("P4", 900))
    tops = {t.customer_id: t for t in customer_tops(store, CTBSpec(end=AS_OF))}
    assert (tops[y].top_category, tops[y].top_brand, tops[y].top_taste) == ("coffee", "A", "bitter")
    assert tops[y].category_share == pytest.approx(0.5, rel=1e-9)
    assert (tops[only_unknown].top_category, tops[only_unknown].category_share) == (None, None)
    assert tops[only_unknown].spend == Decimal("900.00")


def test_excluded_statuses_currencies_refunds_future_rows_discount_lines_and_lost_products(db, store):
    from kizuna.orders.models import OrderLine

    with transaction(db) as s:
        ids = _products(s)
        z = factories.customer(s, family_name="除外").id
        _order(s, z, _jst(2024, 3, 1), ("P3", 1000), ("P2", -200))  # a discount line: left out
        _order(s, z, _jst(2024, 3, 2), ("P2", 5000), status="cancelled")
        _order(s, z, _jst(2024, 3, 3), ("P2", 7000), status="returned")
        _order(s, z, _jst(2024, 3, 4), ("P2", 9000), status="pending")
        _order(s, z, _jst(2024, 3, 5), ("P2", 50), currency="USD")
        _order(s, z, _jst(2024, 3, 6), ("P2", -300))  # a refund recorded as its own negative order
        _order(s, z, _jst(2025, 1, 1, 0, 1), ("P2", 4000))  # after the as-of day (the 1st in Tokyo)
        _order(s, z, _jst(2024, 3, 7), ("P1", 0))  # a free sample: a line, no spend
        _order(s, z, _jst(2024, 3, 8), ("P2", 600))
        lost = ids["P2"]
        s.execute(
            update(OrderLine).where(OrderLine.product_id == lost, OrderLine.unit_price == 600).values(product_id=None)
        )
    result = ctb(store, CTBSpec(end=AS_OF))
    assert (result.customers, result.revenue, result.currency) == (1, Decimal("1600.00"), "JPY")
    values = _by_value(result.values)
    assert set(values) == {"tea", None}
    assert (values["tea"].revenue, values["tea"].lines, values["tea"].customers) == (Decimal("1000.00"), 2, 1)
    assert values["tea"].share == pytest.approx(1000 / 1600, rel=1e-9)
    assert (values[None].revenue, values[None].top_customers, values["tea"].top_customers) == (Decimal("600.00"), 0, 1)
    assert [v.value for v in result.values] == ["tea", None]  # uncategorised last
    usd = ctb(store, CTBSpec(end=AS_OF, currency="usd", dimension="brand"))
    assert (usd.revenue, [v.value for v in usd.values]) == (Decimal("50.00"), ["B"])
    later = ctb(store, CTBSpec(end=dt.date(2025, 1, 1), start=dt.date(2025, 1, 1)))
    assert later.revenue == Decimal("4000.00")


def test_customer_groups_are_explained_by_their_dominant_values_and_deterministic(db, store):
    with transaction(db) as s:
        _products(s)
        tea = [factories.customer(s, family_name=f"茶{i}").id for i in range(4)]
        coffee = [factories.customer(s, family_name=f"珈琲{i}").id for i in range(3)]
        for i, cid in enumerate(tea):
            _order(s, cid, _jst(2024, 6, 1 + i, 12), ("P1", 1000 + i))
        for i, cid in enumerate(coffee):
            _order(s, cid, _jst(2024, 6, 1 + i, 12), ("P2", 2000 + i))
    spec = CTBSpec(end=AS_OF, groups=2)
    result = ctb(store, spec)
    assert [(g.group, g.customers) for g in result.groups] == [(1, 4), (2, 3)]
    first, second = result.groups
    assert first.revenue == Decimal("4006.00") and second.revenue == Decimal("6003.00")
    assert [(v.value, v.share) for v in first.category] == [("tea", 1.0)]
    assert [(v.value, v.share) for v in first.brand] == [("A", 1.0)]
    assert [(v.value, v.share) for v in second.category] == [("coffee", 1.0)]
    assert ctb(store, spec).groups == result.groups
    # Five groups asked, two distinct profiles: two groups.
    assert len(ctb(store, CTBSpec(end=AS_OF)).groups) == 2


def test_likely_to_buy_ranks_by_co_purchase_and_leaves_out_recent_buyers(db, store):
    with transaction(db) as s:
        for sku, brand in (("A1", "A"), ("B1", "B"), ("C1", "C")):
            factories.product(s, sku=sku, name=sku, category="tea", brand=brand)
        c = [factories.customer(s, family_name=f"L{i}").id for i in range(6)]
        recent = _jst(2024, 12, 1, 12)
        _order(s, c[0], recent, ("A1", 500), ("B1", 500))
        _order(s, c[1], recent, ("A1", 500), ("B1", 500))
        _order(s, c[2], recent, ("A1", 800))
        _order(s, c[3], _jst(2024, 6, 14, 12), ("B1", 700))  # 200 days before the end of the as-of day
        _order(s, c[4], recent, ("C1", 900))
        _order(s, c[5], recent, ("A1", 1000), ("C1", 1000))
    spec = LikelySpec(end=AS_OF, dimension="brand", value="B")
    result = likely(store, spec)
    assert result.buyers == 3
    # p(B|A) = 2 of A's 4 buyers; C's buyers never bought B.
    assert [(p.value, p.buyers, p.probability) for p in result.co_purchases] == [("A", 4, 0.5)]
    got = [(r.customer_id, r.score, r.days_since_bought, r.because) for r in result.customers]
    assert got == [(c[3], 1.0, 200, None), (c[2], 0.5, None, "A"), (c[5], 0.25, None, "A")]
    assert result.customers[0].affinity == 1.0
    everyone = likely(store, spec.model_copy(update={"exclude_within_days": None}))
    assert [r.customer_id for r in everyone.customers] == [c[3], c[0], c[1], c[2], c[5]]
    # c0 and c1: half their weighted spend on B (p=1), half on A (p=0.5).
    assert everyone.customers[1].score == pytest.approx(0.75, rel=1e-9)
    with pytest.raises(ValidationError) as err:
        likely(store, spec.model_copy(update={"value": "Z"}))
    assert err.value.field == "value"


def test_recommendations_come_from_co_purchases_skip_owned_and_inactive_products_and_fill_with_popular(db, store):
    from kizuna.catalog.models import Product

    with transaction(db) as s:
        for n in range(1, 6):
            factories.product(s, sku=f"R{n}", name=f"商品{n}", category="tea", brand="A")
        u = [factories.customer(s, family_name=f"U{i}").id for i in range(5)]
        target = factories.customer(s, family_name="対象").id
        newcomer = factories.customer(s, family_name="新規").id
        at = _jst(2024, 6, 1, 12)
        _order(s, u[0], at, ("R1", 100), ("R2", 100))
        _order(s, u[1], at, ("R1", 100), ("R2", 100), ("R3", 100))
        _order(s, u[2], at, ("R1", 100), ("R5", 100))
        _order(s, u[3], at, ("R2", 100), ("R5", 100))
        _order(s, u[4], at, ("R4", 100))
        _order(s, target, at, ("R1", 100))
        s.execute(update(Product).where(Product.sku == "R5").values(is_active=False))
        pid = {p.sku: p.id for p in s.query(Product)}
    recs = recommendations(store, [target, u[0], newcomer], k=3, end=AS_OF)
    # R1 has 4 buyers, R2 3, R3 1: cos(R1,R2) = 2/√12, cos(R1,R3) = 1/√4; R5 is no longer sold.
    assert [(r.product_id, r.reason) for r in recs[target]] == [
        (pid["R2"], "co_purchase"),
        (pid["R3"], "co_purchase"),
        (pid["R4"], "popular"),
    ]
    assert recs[target][0].score == pytest.approx(2 / 12**0.5, rel=1e-9)
    assert recs[target][0].because_product_id == pid["R1"]
    # u0 owns R1 and R2: R3 scores 1/√4 + 1/√3, most like R2.
    assert recs[u[0]][0].product_id == pid["R3"] and recs[u[0]][0].because_product_id == pid["R2"]
    assert recs[u[0]][0].score == pytest.approx(0.5 + 1 / 3**0.5, rel=1e-9)
    assert all(r.product_id not in (pid["R1"], pid["R2"]) for r in recs[u[0]])
    # A customer with no purchases gets the best sellers still sold (R3 before R4 on id).
    assert [r.product_id for r in recs[newcomer]] == [pid["R1"], pid["R2"], pid["R3"]]
    assert recommendations(store, [newcomer, u[0], target], k=3, end=AS_OF) == recs
