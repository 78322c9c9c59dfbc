"""The analytics on Spark give the same results as on DuckDB reading the store (exact for counts, ranks, segments
and deciles; money within 1e-9 relative). Spark is slow to start, so these tests are few and marked ``spark``."""

from __future__ import annotations

import datetime as dt
import random
from zoneinfo import ZoneInfo

import ibis.expr.types as ir
import pytest
from sqlalchemy.engine import Engine

from kizuna.analytics.clv import CLVSpec, calibration_summary, customer_clv
from kizuna.analytics.cohorts import CohortSpec, cohorts
from kizuna.analytics.ctb import CTBSpec, affinities, ctb, customer_tops
from kizuna.analytics.ctb_likely import LikelySpec, likely
from kizuna.analytics.deciles import DecileSpec, customer_deciles, deciles
from kizuna.analytics.engine import Store, open_store
from kizuna.analytics.recommend import recommendations
from kizuna.analytics.rfm import RFMSpec, customer_scores, rfm
from kizuna.analytics.spark import SparkUnavailable
from kizuna.auth.permissions import Actor
from kizuna.customers.merge import merge_customers
from kizuna.db import transaction
from tests import factories
from tests.analytics.spark_support import duckdb_and_spark, same_results, spark_store, spark_url

pytestmark = [pytest.mark.spark, pytest.mark.xdist_group("spark")]

JST = ZoneInfo("Asia/Tokyo")
AS_OF = dt.date(2024, 12, 31)


def _shop(db: Engine) -> None:
    """Sixty customers with a year of orders: ties in spend and in dates, cancelled and returned orders, refunds,
    another currency, a merged customer, free orders, an order after the as-of day and orders a fraction of a
    second either side of midnight in Tokyo."""
    rng = random.Random(13)
    with transaction(db) as s:
        ids = [factories.customer(s, family_name=f"客{i}").id for i in range(60)]
        for cid in ids[:55]:
            for _ in range(rng.randint(1, 8)):
                day = dt.datetime(2024, 1, 1, tzinfo=JST) + dt.timedelta(days=rng.randint(0, 365))
                at = day + dt.timedelta(seconds=rng.randint(0, 86399), microseconds=rng.choice([0, 500000]))
                amount = rng.choice([500, 1000, 1000, 2500, 3000, 12345])
                status = rng.choices(["completed", "cancelled", "returned"], weights=[8, 1, 1])[0]
                factories.order(s, customer_id=cid, ordered_at=at, total_amount=amount, status=status, lines=[])
        edge = dt.datetime.combine(AS_OF, dt.time(), tzinfo=JST)
        for cid, at, amount, fields in (
            (ids[55], edge + dt.timedelta(microseconds=500000), 800, {}),
            (ids[56], edge - dt.timedelta(microseconds=500000), 800, {}),
            (ids[56], edge - dt.timedelta(days=3), -300, {}),
            (ids[57], edge - dt.timedelta(days=40), 0, {}),
            (ids[57], edge - dt.timedelta(days=41), 70, {"currency": "USD"}),
            (ids[58], edge + dt.timedelta(days=5), 9999, {}),
            (ids[59], edge - dt.timedelta(days=90), 4200, {}),
        ):
            factories.order(s, customer_id=cid, ordered_at=at, total_amount=amount, lines=[], **fields)
        merge_customers(s, actor=Actor.system("test"), survivor_id=ids[0], merged_id=ids[59], reason="test")


# One store is enough: what Spark reads is a copy either way, and DuckDB's two scanners are compared with the
# stores' own engines in test_rfm_deciles.py. Spark starts once per test process (the ``spark`` fixture).
@pytest.mark.parametrize("engine", ["sqlite"], indirect=True)
def test_rfm_and_deciles_are_the_same_on_spark_as_on_duckdb(db: Engine, spark: Store):
    _shop(db)
    with duckdb_and_spark(db, spark) as (duck, on_spark):
        spec = RFMSpec(as_of=AS_OF)
        expected = customer_scores(duck, spec)
        assert len(expected) > 50  # the data reached both engines
        same_results(expected, customer_scores(on_spark, spec))
        same_results(rfm(duck, spec), rfm(on_spark, spec))
        three = RFMSpec(as_of=AS_OF, bins=3, include_refunds=True)
        same_results(customer_scores(duck, three), customer_scores(on_spark, three))
        period = DecileSpec(start=dt.date(2024, 7, 1), end=AS_OF, include_refunds=True)
        same_results(deciles(duck, period), deciles(on_spark, period))
        rows = [_rows(customer_deciles(store, period)[0].order_by("customer_id")) for store in (duck, on_spark)]
        same_results(*rows)


def _lines_shop(db: Engine) -> list[int]:
    """Forty customers buying products of three categories, tastes and brands (some left blank) over two years:
    repeat buyers for the CLV fit, several orders on one day, cancelled orders, another currency, a merged
    customer and an order after the as-of day."""
    rng = random.Random(17)
    with transaction(db) as s:
        catalog = [
            factories.product(s, sku=f"S{n}", name=f"商品{n}", category=category, taste=taste, brand=brand).sku
            for n, (category, taste, brand) in enumerate(
                [
                    ("tea", "green", "A"), ("tea", "roasted", "B"), ("coffee", "bitter", "B"),
                    ("coffee", None, "C"), ("sweets", "sweet", None), (None, None, "A"),
                ]
            )
        ]  # fmt: skip
        ids = [factories.customer(s, family_name=f"線{i}").id for i in range(40)]
        for cid in ids[:38]:
            favourite = rng.sample(catalog, 2)
            level = rng.choice([300, 700, 1500, 4000])  # each customer spends around their own level
            # Purchase days as BG/NBD has them (a rate of its own, a chance to drop out after each purchase), so
            # that the CLV models fit this data.
            days = [rng.randint(0, 500)]
            rate, drop = rng.gammavariate(0.8, 1 / 25), rng.betavariate(1, 3)
            while rng.random() > drop and days[-1] < 670:
                days.append(days[-1] + max(1, round(rng.expovariate(rate))))
            for offset in days:
                day = dt.datetime(2023, 3, 1, tzinfo=JST) + dt.timedelta(days=offset)
                at = day + dt.timedelta(seconds=rng.randint(0, 86399))
                skus = rng.sample(favourite, rng.randint(1, 2)) + rng.sample(catalog, rng.randint(0, 1))
                lines = [
                    {"sku": sku, "quantity": rng.randint(1, 3), "unit_price": round(level * rng.uniform(0.6, 1.6))}
                    for sku in dict.fromkeys(skus)
                ]
                status = rng.choices(["completed", "cancelled"], weights=[9, 1])[0]
                factories.order(s, customer_id=cid, ordered_at=at, lines=lines, status=status)
                if rng.random() < 0.15:  # a second order the same day: one purchase occasion
                    factories.order(s, customer_id=cid, ordered_at=at + dt.timedelta(minutes=5),
                                    lines=[{"sku": favourite[0], "quantity": 1, "unit_price": 480}])  # fmt: skip
        edge = dt.datetime.combine(AS_OF, dt.time(12), tzinfo=JST)
        factories.order(s, customer_id=ids[38], ordered_at=edge - dt.timedelta(days=30),
                        lines=[{"sku": "S0", "quantity": 1, "unit_price": 90}], currency="USD")  # fmt: skip
        factories.order(s, customer_id=ids[39], ordered_at=edge + dt.timedelta(days=3),
                        lines=[{"sku": "S1", "quantity": 1, "unit_price": 5000}])  # fmt: skip
        merge_customers(s, actor=Actor.system("test"), survivor_id=ids[1], merged_id=ids[2], reason="test")
    return ids


@pytest.mark.parametrize("engine", ["sqlite"], indirect=True)
def test_ctb_cohorts_and_clv_are_the_same_on_spark_as_on_duckdb(db: Engine, spark: Store):
    ids = _lines_shop(db)
    with duckdb_and_spark(db, spark) as (duck, on_spark):
        # One dimension's summary (the others differ only in the column read); every dimension's top values.
        spec = CTBSpec(end=AS_OF, dimension="taste", groups=3)
        expected = ctb(duck, spec)
        assert expected.customers > 30 and expected.groups  # the data reached both engines
        same_results(expected, ctb(on_spark, spec))
        spec = CTBSpec(end=AS_OF, start=dt.date(2024, 1, 1), half_life_days=90)
        same_results(affinities(duck, spec), affinities(on_spark, spec))
        same_results(customer_tops(duck, spec), customer_tops(on_spark, spec))
        wanted = LikelySpec(end=AS_OF, dimension="brand", value="B", exclude_within_days=30)
        same_results(likely(duck, wanted), likely(on_spark, wanted))
        same_results(recommendations(duck, ids, k=3, end=AS_OF), recommendations(on_spark, ids, k=3, end=AS_OF))
        spec = CohortSpec(start=dt.date(2023, 6, 1), end=dt.date(2024, 3, 31), months=6)
        same_results(cohorts(duck, spec), cohorts(on_spark, spec))
        # The fit is the optimiser's, not the engine's: the engines must hand it the same summary, after which
        # the fit and every customer's numbers follow (fitted on each, they agree as well).
        fit = CLVSpec(calibration_end=AS_OF, time_unit="week")
        (a, _, _), (b, _, _) = calibration_summary(duck, fit), calibration_summary(on_spark, fit)
        same_results({k: v.tolist() for k, v in a.items()}, {k: v.tolist() for k, v in b.items()})
        same_results(customer_clv(duck, fit), customer_clv(on_spark, fit))


@pytest.mark.parametrize("engine", ["sqlite"], indirect=True)
def test_a_spark_url_reads_the_crm_tables_from_the_database_it_names(db: Engine, spark: Store, tmp_path):
    """What a user's ETL leaves: the CRM's tables, under their own names, in a Spark database."""
    _shop(db)
    url = db.url.render_as_string(hide_password=False)
    session = spark_store(spark, url).con._session
    session.sql("CREATE DATABASE IF NOT EXISTS crm_copy")
    for name in ("customers", "orders"):
        session.table(name).write.mode("overwrite").saveAsTable(f"crm_copy.{name}")
    # The same process already runs a Spark driver: another URL gets that session with the URL's database.
    on_spark = open_store(analytics_url=spark_url(str(tmp_path)) + "&database=crm_copy")
    assert (on_spark.name, on_spark.database, on_spark.money_in_cents) == ("pyspark", "crm_copy", False)
    duck = open_store(url, analytics_url="")
    try:
        same_results(deciles(duck, DecileSpec(end=AS_OF)), deciles(on_spark, DecileSpec(end=AS_OF)))
    finally:
        duck.con.disconnect()
    with pytest.raises(SparkUnavailable, match="no database 'crm_missing'"):
        open_store(analytics_url=spark_url(str(tmp_path)) + "&database=crm_missing")


def _rows(table: ir.Table) -> list[dict]:
    return table.to_pyarrow().to_pylist()
