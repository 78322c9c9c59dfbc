"""Product similarities kept by the daily refresh (``product_neighbors``): recommendations read them and give the
lists the on-the-fly computation gives; a heavy buyer's old purchases do not count towards similarity."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from sqlalchemy import func, select, update

from kizuna.analytics import recommend, service
from kizuna.analytics.ctb import CTBSpec
from kizuna.analytics.engine import open_store
from kizuna.analytics.models import MetricRun, ProductNeighbor, ProductPopularity
from kizuna.analytics.neighbors import refresh_neighbors
from kizuna.auth.permissions import Actor
from kizuna.catalog.models import Product
from kizuna.db import transaction
from tests import factories

JST = ZoneInfo("Asia/Tokyo")
ADMIN = Actor.system("test")


def _order(s, cid: int, at: dt.datetime, *skus: str) -> None:  # noqa: ANN001
    lines = [{"sku": sku, "quantity": 1, "unit_price": 100} for sku in skus]
    factories.order(s, customer_id=cid, ordered_at=at, lines=lines)


def _shop(db) -> tuple[list[int], dict[str, int]]:  # noqa: ANN001
    at = dt.datetime.now(JST) - dt.timedelta(days=30)
    with transaction(db) as s:
        for n in range(1, 6):
            factories.product(s, sku=f"R{n}", name=f"商品{n}", category="tea", brand="A")
        u = [factories.customer(s, family_name=f"U{i}").id for i in range(6)]
        _order(s, u[0], at, "R1", "R2")
        _order(s, u[1], at, "R1", "R2", "R3")
        _order(s, u[2], at, "R1", "R5")
        _order(s, u[3], at, "R2", "R5")
        _order(s, u[4], at, "R4")
        _order(s, u[5], at, "R1")
        pid = {p.sku: p.id for p in s.query(Product)}
    return u, pid


def _lists(db, ids: list[int]) -> dict[int, list[tuple[int, str, float, int | None]]]:  # noqa: ANN001
    url = db.url.render_as_string(hide_password=False)
    found = service.recommendations(actor=ADMIN, customer_ids=ids, k=3, database_url=url)
    return {
        c.customer_id: [(p.product_id, p.reason, round(p.score, 9), p.because_product_id) for p in c.products]
        for c in found
    }


def test_the_daily_similarities_give_the_same_lists_and_a_new_refresh_replaces_them(db):
    u, pid = _shop(db)
    computed = _lists(db, u)  # no refresh yet: computed now
    assert computed[u[5]][0][:2] == (pid["R2"], "co_purchase")
    run = refresh_neighbors(db)
    with transaction(db) as s:
        stored = s.scalar(select(func.count()).select_from(ProductNeighbor))
        buyers = dict(s.execute(select(ProductPopularity.product_id, ProductPopularity.buyers)).all())
        assert s.scalar(select(func.count()).where(MetricRun.kind == "neighbors")) == 1
    # R1-R2, R1-R3, R2-R3, R1-R5, R2-R5 both ways; R4 was bought alone.
    assert (run.kind, run.customers, run.changed, stored) == ("neighbors", 6, 10, 10)
    assert buyers == {pid["R1"]: 4, pid["R2"]: 3, pid["R3"]: 1, pid["R4"]: 1, pid["R5"]: 2}
    assert _lists(db, u) == computed
    # A product taken off sale after the refresh is not recommended from the stored rows either.
    with transaction(db) as s:
        s.execute(update(Product).where(Product.sku == "R2").values(is_active=False))
    assert all(p[0] != pid["R2"] for products in _lists(db, u).values() for p in products)
    refresh_neighbors(db)
    with transaction(db) as s:
        assert s.scalar(select(func.count()).select_from(ProductNeighbor)) == 10
        assert s.scalar(select(func.count()).where(MetricRun.kind == "neighbors")) == 2


def test_only_a_customers_most_recent_products_count_towards_similarity(db, monkeypatch):
    now = dt.datetime.now(JST)
    with transaction(db) as s:
        for n in range(1, 4):
            factories.product(s, sku=f"H{n}", name=f"商品{n}")
        heavy = factories.customer(s, family_name="常連").id
        light = factories.customer(s, family_name="一見").id
        _order(s, heavy, now - dt.timedelta(days=90), "H1")
        _order(s, heavy, now - dt.timedelta(days=60), "H2")
        _order(s, heavy, now - dt.timedelta(days=30), "H3", "H1")  # H1 bought again: recent again
        _order(s, light, now - dt.timedelta(days=10), "H2")
        pid = {p.sku: p.id for p in s.query(Product)}
    monkeypatch.setattr(recommend, "BASKET", 2)
    store = open_store(db.url.render_as_string(hide_password=False))
    try:
        rows = recommend.baskets(store, CTBSpec()).to_pyarrow().to_pylist()
    finally:
        store.con.disconnect()
    basket = sorted((r["customer_id"], r["product_id"]) for r in rows)
    assert basket == sorted([(heavy, pid["H1"]), (heavy, pid["H3"]), (light, pid["H2"])])
    found = recommend.similarity(recommend.pa.Table.from_pylist(rows))
    assert found.neighbors == {pid["H1"]: [(pid["H3"], 1.0, 1.0)], pid["H3"]: [(pid["H1"], 1.0, 1.0)]}


def test_the_stores_read_by_index_counts_the_same_products_as_the_analytics(db):
    """Every order each rule leaves out, once: the by-index read must leave out the same."""
    from kizuna.analytics.neighbors import recommendations_from_store
    from kizuna.customers.models import Customer
    from kizuna.orders.models import Order, OrderLine

    u, pid = _shop(db)
    at = dt.datetime.now(JST) - dt.timedelta(days=20)
    with transaction(db) as s:
        extra = [factories.customer(s, family_name=f"X{i}").id for i in range(7)]
        for cid in extra:
            _order(s, cid, at, "R3")
        _order(s, u[5], at, "R4")  # the line is made negative below: R4 stays recommendable to u5
        orders = {o.customer_id: o.id for o in s.query(Order).where(Order.customer_id.in_(extra))}
        s.execute(update(Order).where(Order.id == orders[extra[0]]).values(status="cancelled"))
        s.execute(update(Order).where(Order.id == orders[extra[1]]).values(currency="USD"))
        s.execute(update(Order).where(Order.id == orders[extra[2]]).values(total_amount=-100))
        future = dt.datetime.now(dt.UTC) + dt.timedelta(days=3)
        s.execute(update(Order).where(Order.id == orders[extra[3]]).values(ordered_at=future))
        s.execute(update(OrderLine).where(OrderLine.order_id == orders[extra[4]]).values(product_id=None))
        s.execute(update(Customer).where(Customer.id == extra[5]).values(status="merged"))
        last = s.scalar(select(func.max(Order.id)).where(Order.customer_id == u[5]))
        s.execute(update(OrderLine).where(OrderLine.order_id == last).values(amount=-100))
        # extra[6] is counted: the only one of them that owns R3.
    everyone = [*u, *extra]
    url = db.url.render_as_string(hide_password=False)
    store = open_store(url)
    try:
        computed = recommend.recommendations(store, everyone, 3)
    finally:
        store.con.disconnect()
    refresh_neighbors(db)
    with transaction(db) as s:
        stored = recommendations_from_store(s, everyone, 3)
    assert stored == computed
    # Counted: extra6 owns R3, whose one other buyer also bought R1 and R2; the best seller left fills the list.
    assert [(r.product_id, r.reason) for r in stored[extra[6]]] == [
        (pid["R2"], "co_purchase"),
        (pid["R1"], "co_purchase"),
        (pid["R5"], "popular"),
    ]
    # Left out: they own nothing, so they get the best sellers, R3 among them.
    for left_out in extra[:6]:
        assert [r.product_id for r in stored[left_out]] == [pid["R1"], pid["R2"], pid["R3"]], left_out


def test_a_customers_score_sums_over_their_most_recent_products_on_both_paths(db, monkeypatch):
    from kizuna.analytics.neighbors import recommendations_from_store

    now = dt.datetime.now(JST)
    with transaction(db) as s:
        for n in range(1, 6):
            factories.product(s, sku=f"H{n}", name=f"商品{n}")
        heavy, a, b = (factories.customer(s, family_name=name).id for name in ("常連", "甲", "乙"))
        _order(s, heavy, now - dt.timedelta(days=90), "H1")  # the oldest: beyond a basket of two
        _order(s, heavy, now - dt.timedelta(days=60), "H2")
        _order(s, heavy, now - dt.timedelta(days=30), "H3")
        _order(s, a, now - dt.timedelta(days=10), "H1", "H4")
        _order(s, b, now - dt.timedelta(days=10), "H3", "H5")
        pid = {p.sku: p.id for p in s.query(Product)}
    monkeypatch.setattr(recommend, "BASKET", 2)
    store = open_store(db.url.render_as_string(hide_password=False))
    try:
        computed = recommend.recommendations(store, [heavy], 2)
        with transaction(db) as s:
            from kizuna.analytics.models import ProductNeighbor as N  # noqa: N817

            table = recommend.neighbors_table(store, CTBSpec())[0]
            s.execute(N.__table__.insert(), table.to_pylist())
            popular = recommend.neighbors_table(store, CTBSpec())[1]
            s.execute(ProductPopularity.__table__.insert(), popular.to_pylist())
    finally:
        store.con.disconnect()
    with transaction(db) as s:
        stored = recommendations_from_store(s, [heavy], 2)
    assert stored == computed
    # H5 is like H3 (recent); H4 is like H1 only, which is too old to count: it comes in as a best seller.
    assert [(r.product_id, r.reason) for r in stored[heavy]] == [(pid["H5"], "co_purchase"), (pid["H4"], "popular")]
