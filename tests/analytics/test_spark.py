"""The analytics on Spark give the same results as on DuckDB reading the store (exact for counts, ranks, segments
and deciles; money within 1e-9 relative). Spark is slow to start, so these tests are few and marked ``spark``."""

from __future__ import annotations

import datetime as dt
import random
from zoneinfo import ZoneInfo

import ibis.expr.types as ir
import pytest
from sqlalchemy.engine import Engine

from kizuna.analytics.deciles import DecileSpec, customer_deciles, deciles
from kizuna.analytics.engine import Store, open_store
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
