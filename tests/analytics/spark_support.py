"""Spark for the analytics tests: one local Spark session per test process, the store's tables copied into it,
and the comparison every analysis's results must pass across engines.

An analysis test proves Spark agrees with DuckDB like this (the ``spark`` fixture lives in this folder's
conftest and starts Spark once per process)::

    @pytest.mark.spark
    @pytest.mark.xdist_group("spark")  # scripts/test runs --dist loadgroup: every Spark test on one worker
    @pytest.mark.parametrize("engine", ["sqlite"], indirect=True)  # one store is enough: Spark reads a copy
    def test_cohorts_are_the_same_on_spark(db, spark):
        ...  # write the data through the factories
        with duckdb_and_spark(db, spark) as (duck, on_spark):
            same_results(cohorts(duck, spec), cohorts(on_spark, spec))

A model fitted by maximum likelihood (CLV) is fitted once and the same parameters are given to each engine's
per-customer expression: the optimiser is not what the engines are compared on.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

import pytest
from pydantic import BaseModel
from sqlalchemy import create_engine, select, types
from sqlalchemy.engine import Engine

from kizuna.analytics.engine import Store, open_store
from kizuna.db import Base, MoneyType, UTCDateTime

REL = 1e-9  # money and the shares computed from it; everything else must be equal


def require_spark() -> None:
    """Fail with what to do when Spark cannot run here, unless KIZUNA_TEST_SPARK=0 asks to skip it: CI must never
    pass with the Spark half quietly left out."""
    if os.environ.get("KIZUNA_TEST_SPARK", "1") == "0":
        pytest.skip("KIZUNA_TEST_SPARK=0: the Spark tests are switched off")
    java_home = os.environ.get("JAVA_HOME")
    if not shutil.which("java") and not (java_home and os.path.exists(os.path.join(java_home, "bin", "java"))):
        pytest.fail(
            "the Spark tests need Java 17 or 21 (apt-get install -y openjdk-17-jre-headless, as scripts/test does); "
            "set KIZUNA_TEST_SPARK=0 to skip them"
        )
    try:
        import pyspark  # noqa: F401
    except ImportError:
        pytest.fail("the Spark tests need pyspark: pip install -c constraints.txt -e '.[test]'")


def spark_url(warehouse: str) -> str:
    """``KIZUNA_ANALYTICS_URL`` for a small local Spark that cannot clash with another test process: listening on
    loopback only, on ports Spark picks, without its web UI, with its warehouse in the process's temp folder."""
    conf = {
        "spark.driver.host": "127.0.0.1",
        "spark.driver.bindAddress": "127.0.0.1",
        "spark.ui.enabled": "false",
        "spark.sql.warehouse.dir": warehouse,
        # Test data is small: Spark's default of 200 shuffle partitions makes every query seconds slower.
        "spark.sql.shuffle.partitions": "2",
        "spark.default.parallelism": "2",
        "spark.ui.showConsoleProgress": "false",
        # A short-lived JVM: the quick JIT alone halves the CPU Spark spends compiling itself (measured here).
        "spark.driver.extraJavaOptions": "-XX:TieredStopAtLevel=1",
    }
    return "pyspark://local[2]?" + urlencode(conf)


def _spark_type(column_type: types.TypeEngine) -> Any:
    from pyspark.sql import types as st

    if isinstance(column_type, MoneyType):
        return st.DecimalType(18, 2)
    if isinstance(column_type, UTCDateTime | types.DateTime):
        return st.TimestampType()
    if isinstance(column_type, types.Numeric) and not isinstance(column_type, types.Float):
        return st.DecimalType(column_type.precision or 18, column_type.scale or 0)
    for sa_type, spark_type in (
        (types.Boolean, st.BooleanType),
        (types.Integer, st.LongType),
        (types.Float, st.DoubleType),
        (types.Date, st.DateType),
        (types.JSON, st.StringType),
        (types.String, st.StringType),
        (types.LargeBinary, st.BinaryType),
    ):
        if isinstance(column_type, sa_type):
            return spark_type()
    raise TypeError(f"no Spark type for {column_type!r}: add it to tests/analytics/spark_support.py")


def copy_store(store: Store, database_url: str) -> None:
    """Every table of the store as a Spark temporary view of the same name, through SQLAlchemy's column types:
    money as ``decimal(18,2)`` (not SQLite's cents), times as instants (Spark's ``timestamp``)."""
    from pyspark.sql import types as st

    import kizuna.models  # noqa: F401  (registers every table on Base.metadata)

    session = store.con._session
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            for table in Base.metadata.sorted_tables:
                schema = st.StructType([st.StructField(c.name, _spark_type(c.type), True) for c in table.columns])
                json_columns = [isinstance(c.type, types.JSON) for c in table.columns]
                rows = [
                    tuple(
                        json.dumps(v) if is_json and v is not None else v
                        for v, is_json in zip(row, json_columns, strict=True)
                    )
                    for row in conn.execute(select(table))
                ]
                session.createDataFrame(rows, schema).createOrReplaceTempView(table.name)
    finally:
        engine.dispose()


def spark_store(spark: Store, database_url: str) -> Store:
    """The analytics' store on Spark holding a copy of the database at ``database_url`` as it is now."""
    copy_store(spark, database_url)
    return spark


@contextmanager
def duckdb_and_spark(db: Engine, spark: Store) -> Iterator[tuple[Store, Store]]:
    """The analytics' default store (DuckDB reading the database) and Spark holding a copy of it as it is now."""
    url = db.url.render_as_string(hide_password=False)
    duck = open_store(url, analytics_url="")
    try:
        yield duck, spark_store(spark, url)
    finally:
        duck.con.disconnect()


def start_spark(warehouse: str) -> Store:
    require_spark()
    # Spark looks its host name up before reading spark.driver.host; on a machine whose name is not loopback it
    # would warn and announce another address.
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    store = open_store(analytics_url=spark_url(warehouse))
    store.con._session.sparkContext.setLogLevel("ERROR")
    return store


def same_results(a: Any, b: Any, path: str = "result") -> None:
    """Assert two analysis results are the same: counts, ranks, segment names, dates and every other value exactly;
    money (``Decimal``) and floats (shares, averages) within 1e-9 relative. The message names the first difference."""
    if isinstance(a, BaseModel):
        assert type(a) is type(b), f"{path}: {type(a).__name__} != {type(b).__name__}"
        for name in type(a).model_fields:
            same_results(getattr(a, name), getattr(b, name), f"{path}.{name}")
    elif isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), f"{path}: keys {sorted(a)} != {sorted(b)}"
        for key in a:
            same_results(a[key], b[key], f"{path}[{key!r}]")
    elif isinstance(a, list | tuple):
        assert isinstance(b, list | tuple) and len(a) == len(b), f"{path}: {len(a)} items != {len(b)}"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            same_results(x, y, f"{path}[{i}]")
    elif isinstance(a, Decimal | float) and not isinstance(a, bool):
        assert isinstance(b, Decimal | float), f"{path}: {a!r} != {b!r}"
        x, y = float(a), float(b)
        assert math.isclose(x, y, rel_tol=REL, abs_tol=0.0) or x == y, f"{path}: {a!r} != {b!r} (beyond 1e-9)"
    else:
        assert type(a) is type(b) or (isinstance(a, dt.date) and isinstance(b, dt.date)), f"{path}: {a!r} != {b!r}"
        assert a == b, f"{path}: {a!r} != {b!r}"
