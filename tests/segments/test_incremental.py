"""Incremental refresh == full refresh, for every kind of change Kizuna records, on SQLite and PostgreSQL.

Each rule below is held by two segments: one refreshed incrementally (only the customers the change log names),
one fully (every customer). After one change made through the services, both must hold the same members and
have recorded the same entries and exits. Each case also checks that the change moved someone in or out of at
least one segment, so a case whose change the rules cannot see would fail instead of passing empty.
"""

from __future__ import annotations

import datetime as dt
import inspect
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.engine import Engine

from kizuna.db import transaction
from kizuna.segments import service
from kizuna.segments.models import SegmentMembership
from kizuna.segments.schemas import SegmentCreate
from tests import factories
from tests.segments.conftest import MARKETER, days_ago

TOKYO = {"attribute": "prefecture", "op": "eq", "value": "東京都"}
RULES: dict[str, Any] = {
    "tokyo": TOKYO,
    "vip": {"tag": "VIP"},
    "mailable": {"consent": {"channel": "email"}},
    "sale viewers": {"event": "page_view", "min_count": 2, "within_days": 7, "properties": {"path": "/sale"}},
    "no recent visit": {"event": "page_view", "within_days": 30, "negate": True},
    "spent 10k": {"orders": {"metric": "total_spend", "op": "gte", "value": 10000}},
    "under 2 orders": {"orders": {"metric": "order_count", "op": "lt", "value": 2}},
    "tea buyers": {"bought": {"category": "tea", "within_days": 365}},
    "good rfm": {"metric": "rfm_segment", "op": "in", "value": ["champions", "loyal", "potential_loyalist"]},
    "not lost": {"metric": "rfm_segment", "op": "ne", "value": "lost"},
    "high clv": {"metric": "clv", "op": "gte", "value": 5000},
    "three conditions": {
        "all": [
            TOKYO,
            {"event": "page_view", "within_days": 90},
            {"metric": "rfm_segment", "op": "in", "value": ["champions", "loyal", "potential_loyalist"]},
        ]
    },
}
# A segment over another one: entering or leaving "vip" is a change for it.
NESTED = "vip in tokyo"
Segments = dict[tuple[str, str], int]  # (rule name, "inc" | "full") -> segment id


def _segments(db: Engine) -> Segments:
    """Every rule twice ("inc" and "full"), refreshed fully once, as a segment is after its first refresh."""
    ids: Segments = {}
    with transaction(db) as s:
        for way in ("inc", "full"):
            for name, rule in RULES.items():
                ids[name, way] = _create(s, f"{name} ({way})", rule)
            ids[NESTED, way] = _create(s, f"{NESTED} ({way})", {"all": [{"segment": ids["vip", way]}, TOKYO]})
    for segment_id in ids.values():  # created in dependency order: "vip" before the segment over it
        with transaction(db) as s:
            service.refresh(s, segment_id, actor=MARKETER, full=True)
    return ids


def _create(session: Any, name: str, rule: Any) -> int:
    return service.create_segment(session, actor=MARKETER, data=SegmentCreate(name=name, rule=rule)).id


def _current(db: Engine, segment_id: int) -> set[int]:
    with transaction(db) as s:
        return set(
            s.scalars(
                select(SegmentMembership.customer_id).where(
                    SegmentMembership.segment_id == segment_id, SegmentMembership.exited_at.is_(None)
                )
            )
        )


def _stays(db: Engine, segment_id: int) -> list[tuple[int, bool]]:
    """The whole membership history, as (customer, still in) per stay, in a comparable order."""
    with transaction(db) as s:
        rows = s.execute(
            select(SegmentMembership.customer_id, SegmentMembership.exited_at.is_(None)).where(
                SegmentMembership.segment_id == segment_id
            )
        )
        return sorted((customer_id, bool(current)) for customer_id, current in rows)


# --- the changes ------------------------------------------------------------------------------------------


def new_events(db: Engine, w: dict[str, int], ids: Segments) -> None:
    with transaction(db) as s:
        for n in (0, 1):
            factories.event(
                s, customer_id=w["dan"], type="page_view", channel="web", occurred_at=days_ago(n),
                properties={"path": "/sale"},
            )  # fmt: skip


def new_order(db: Engine, w: dict[str, int], ids: Segments) -> None:
    from kizuna.catalog.models import Product

    with transaction(db) as s:
        tea = s.scalar(select(Product.id).where(Product.sku == "TEA-1"))
        factories.order(
            s, customer_id=w["dan"], ordered_at=days_ago(1), lines=[{"product_id": tea, "unit_price": 12000}]
        )


def order_cancelled(db: Engine, w: dict[str, int], ids: Segments) -> None:
    from kizuna.orders import service as orders
    from kizuna.orders.models import Order
    from kizuna.orders.schemas import OrderUpdate

    with transaction(db) as s:
        for order_id in s.scalars(select(Order.id).where(Order.customer_id == w["aki"])):
            orders.update_order(
                s, actor=factories.SYSTEM, order_id=order_id, data=OrderUpdate(status="cancelled"),
                expected_version=None,
            )  # fmt: skip


def order_deleted(db: Engine, w: dict[str, int], ids: Segments) -> None:
    from kizuna.orders import service as orders
    from kizuna.orders.models import Order

    with transaction(db) as s:
        # aki's order of 10,000 (of her 15,000): she leaves "spent 10k".
        order_id = s.scalar(select(Order.id).where(Order.customer_id == w["aki"], Order.total_amount == 10000))
        orders.delete_order(s, actor=factories.SYSTEM, order_id=order_id, expected_version=None)


def order_cancelled_by_import(db: Engine, w: dict[str, int], ids: Segments, tmp_path: Path) -> None:
    """An order file adds dan's order of 12,000 (he enters "spent 10k"), the segments are refreshed, then the
    next file cancels it (he leaves) and adds chie's order of 12,000 (she enters)."""
    from kizuna.imports.runner import run_import

    def load(name: str, *rows: str) -> None:
        path = tmp_path / name
        path.write_text("\n".join(["external_id,kizuna_customer_id,ordered_at,total_amount,status", *rows]) + "\n")
        report = run_import(db, "orders", path, actor=factories.SYSTEM)
        assert report.rejected == 0

    day = days_ago(1).date().isoformat()
    load("first.csv", f"O-1,{w['dan']},{day},12000,completed")
    _refresh_all(db, ids)
    load("second.csv", f"O-1,{w['dan']},{day},12000,cancelled", f"O-2,{w['chie']},{day},12000,completed")


def tagged_by_import(db: Engine, w: dict[str, int], ids: Segments, tmp_path: Path) -> None:
    """A customer file that only adds a tag to dan (found by e-mail): he enters "vip"."""
    from kizuna.imports.runner import run_import

    path = tmp_path / "customers.csv"
    path.write_text("email,tags\ndan@example.com,VIP\n")
    report = run_import(db, "customers", path, actor=factories.SYSTEM)
    assert report.rejected == 0


def product_recategorised(db: Engine, w: dict[str, int], ids: Segments) -> None:
    """Coffee becomes tea: chie, who bought it 200 days ago, enters "tea buyers"."""
    from kizuna.catalog import service as catalog
    from kizuna.catalog.models import Product
    from kizuna.catalog.schemas import ProductUpdate

    with transaction(db) as s:
        coffee = s.scalar(select(Product.id).where(Product.sku == "COF-1"))
        catalog.update_product(
            s, actor=factories.SYSTEM, product_id=coffee, data=ProductUpdate(category="tea"), expected_version=None
        )


def product_deleted(db: Engine, w: dict[str, int], ids: Segments) -> None:
    """The tea product goes: its lines keep no product, and aki leaves "tea buyers"."""
    from kizuna.catalog import service as catalog
    from kizuna.catalog.models import Product

    with transaction(db) as s:
        tea = s.scalar(select(Product.id).where(Product.sku == "TEA-1"))
        catalog.delete_product(s, actor=factories.SYSTEM, product_id=tea, expected_version=None)


def metrics_recomputed(db: Engine, w: dict[str, int], ids: Segments) -> None:
    """The real score refresh over the world's orders: aki and chie get computed rows, ben's hand-made row
    goes (his only order is cancelled), and the RFM segments change."""
    from kizuna.analytics.service import refresh_with

    refresh_with(db)


def metrics_recomputed_after_cancel(db: Engine, w: dict[str, int], ids: Segments) -> None:
    """Scores computed, every segment refreshed, then aki's orders cancelled and the segments refreshed again
    before the next score refresh removes her row: the removal itself must be seen."""
    from kizuna.analytics.service import refresh_with

    refresh_with(db)
    _refresh_all(db, ids)
    order_cancelled(db, w, ids)
    _refresh_all(db, ids)
    refresh_with(db)


def clv_saved(db: Engine, w: dict[str, int], ids: Segments) -> None:
    """A CLV run writes its predictions into the metrics rows (through the same writer as ``save_clv``)."""
    from kizuna.analytics import clv as clv_analysis
    from kizuna.analytics import metrics

    params = clv_analysis.CLVParams(
        bgnbd=clv_analysis.BGNBD(r=1, alpha=1, a=1, b=1), gamma_gamma=clv_analysis.GammaGamma(p=1, q=1, v=1),
        calibration_end=dt.date.today(), time_unit="week", horizon=52, discount_rate=0.01, currency="JPY",
        customers=2, repeat_customers=2, log_likelihood=-1.0,
    )  # fmt: skip
    rows = [
        clv_analysis.CLVRow(
            customer_id=customer_id,
            frequency=1,
            recency=1.0,
            T=10.0,
            monetary=Decimal(1000),
            expected_purchases=1.0,
            p_alive=p,
            churn_risk=1 - p,
            expected_spend=Decimal(1000),
            clv=Decimal(clv),
        )  # fmt: skip
        for customer_id, p, clv in ((w["aki"], 0.2, 100), (w["ben"], 0.95, 8000))
    ]
    metrics.save_clv(db, params, rows)


def consent_granted(db: Engine, w: dict[str, int], ids: Segments) -> None:
    with transaction(db) as s:
        factories.consent(s, customer_id=w["chie"], channel="email")


def consent_withdrawn(db: Engine, w: dict[str, int], ids: Segments) -> None:
    with transaction(db) as s:
        factories.consent(s, customer_id=w["aki"], channel="email", status="withdrawn")


def _update(db: Engine, customer_id: int, **fields: Any) -> None:
    from kizuna.customers import service as customers
    from kizuna.customers.schemas import CustomerUpdate

    with transaction(db) as s:
        customers.update_customer(
            s, actor=factories.SYSTEM, customer_id=customer_id, data=CustomerUpdate(**fields), expected_version=None
        )


def tags_changed(db: Engine, w: dict[str, int], ids: Segments) -> None:
    _update(db, w["aki"], tags=[])
    _update(db, w["chie"], tags=["VIP"])


def attribute_changed(db: Engine, w: dict[str, int], ids: Segments) -> None:
    _update(db, w["aki"], prefecture="大阪府")
    _update(db, w["dan"], prefecture="東京都")


def merged(db: Engine, w: dict[str, int], ids: Segments) -> None:
    """aki (Tokyo, VIP, a member of many segments) folds into dan: her orders, events and consents move to him;
    she leaves every segment, he enters those he now matches."""
    from kizuna.customers.merge import merge_customers

    with transaction(db) as s:
        merge_customers(s, actor=factories.SYSTEM, survivor_id=w["dan"], merged_id=w["aki"], reason="same person")


def merged_both_members(db: Engine, w: dict[str, int], ids: Segments) -> None:
    """chie folds into aki: both were Tokyo members; aki must stay in once, chie must leave."""
    from kizuna.customers.merge import merge_customers

    with transaction(db) as s:
        merge_customers(s, actor=factories.SYSTEM, survivor_id=w["aki"], merged_id=w["chie"], reason="same person")


def deleted(db: Engine, w: dict[str, int], ids: Segments) -> None:
    from kizuna.customers import service as customers

    with transaction(db) as s:
        customers.delete_customer(s, actor=factories.SYSTEM, customer_id=w["aki"], expected_version=None)


def new_customer(db: Engine, w: dict[str, int], ids: Segments) -> None:
    with transaction(db) as s:
        factories.customer(s, family_name="新", prefecture="東京都", tags=["VIP"])


CHANGES: list[Callable[..., None]] = [
    new_events,
    new_order,
    order_cancelled,
    order_deleted,
    order_cancelled_by_import,
    product_recategorised,
    product_deleted,
    metrics_recomputed,
    metrics_recomputed_after_cancel,
    clv_saved,
    consent_granted,
    consent_withdrawn,
    tags_changed,
    tagged_by_import,
    attribute_changed,
    merged,
    merged_both_members,
    deleted,
    new_customer,
]


def _refresh_all(db: Engine, ids: Segments) -> dict[tuple[str, str], service.RefreshResult]:
    results = {}
    for (name, way), segment_id in ids.items():  # dependency order, as created
        with transaction(db) as s:
            results[name, way] = service.refresh(s, segment_id, actor=MARKETER, full=way == "full")
    return results


@pytest.mark.parametrize("change", CHANGES, ids=lambda c: c.__name__)
def test_an_incremental_refresh_ends_where_a_full_one_does(db: Engine, world, change, tmp_path):
    ids = _segments(db)
    before = {key: _current(db, segment_id) for key, segment_id in ids.items()}
    if "tmp_path" in inspect.signature(change).parameters:
        change(db, world, ids, tmp_path)
    else:
        change(db, world, ids)
    results = _refresh_all(db, ids)
    names = [*RULES, NESTED]
    moved = [n for n in names if _current(db, ids[n, "full"]) != before[n, "full"]]
    assert moved, f"{change.__name__} changed no segment: the case proves nothing"
    for name in names:
        inc, full = ids[name, "inc"], ids[name, "full"]
        assert _current(db, inc) == _current(db, full), f"{name}: incremental and full differ"
        assert _stays(db, inc) == _stays(db, full), f"{name}: different entries and exits"
        assert results[name, "inc"].member_count == results[name, "full"].member_count == len(_current(db, full))
    modes = {results[name, "inc"].mode for name in names}
    assert modes <= {"incremental", "full"}


def test_an_incremental_refresh_reads_only_the_customers_named_since_the_last(db: Engine, world):
    ids = _segments(db)
    new_events(db, world, ids)
    with transaction(db) as s:
        result = service.refresh(s, ids["sale viewers", "inc"], actor=MARKETER, full=False)
    assert (result.mode, result.evaluated, result.entered) == ("incremental", 1, 1)


def test_a_clv_run_makes_the_next_refresh_of_a_clv_rule_full_and_leaves_other_rules_incremental(db, world):
    ids = _segments(db)
    clv_saved(db, world, ids)
    with transaction(db) as s:
        clv = service.refresh(s, ids["high clv", "inc"], actor=MARKETER, full=False)
        rfm = service.refresh(s, ids["good rfm", "inc"], actor=MARKETER, full=False)
    assert clv.mode == "full" and clv.evaluated is None
    assert (rfm.mode, rfm.evaluated) == ("incremental", 0)


def test_a_merge_keeps_one_stay_per_customer_and_segment(db: Engine, world):
    ids = _segments(db)
    merged_both_members(db, world, ids)
    _refresh_all(db, ids)
    for segment_id in ids.values():
        stays = [c for c, current in _stays(db, segment_id) if current]
        assert len(stays) == len(set(stays))
    assert world["chie"] not in _current(db, ids["tokyo", "inc"])
    assert world["aki"] in _current(db, ids["tokyo", "inc"])


def test_many_candidates_are_evaluated_as_a_full_refresh(db: Engine, world, monkeypatch):
    ids = _segments(db)
    monkeypatch.setattr(service, "FULL_ABOVE", 1)
    attribute_changed(db, world, ids)  # two customers named: more than the (lowered) bound
    with transaction(db) as s:
        result = service.refresh(s, ids["tokyo", "inc"], actor=MARKETER, full=False)
    assert (result.mode, result.evaluated, result.entered, result.exited) == ("full", None, 1, 1)
    assert _current(db, ids["tokyo", "inc"]) == {world["chie"], world["dan"]}
