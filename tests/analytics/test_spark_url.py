"""How ``KIZUNA_ANALYTICS_URL`` names a Spark session (no Spark started here)."""

from __future__ import annotations

import pytest

from kizuna.analytics.spark import SparkTarget, SparkUnavailable, is_spark_url, parse


def test_a_pyspark_url_names_the_master_the_database_and_spark_options():
    assert parse("pyspark://local[4]?database=crm&spark.executor.memory=8g") == SparkTarget(
        master="local[4]", database="crm", conf={"spark.executor.memory": "8g"}
    )
    # A master that is itself a URL, and no master at all (spark-submit's).
    assert parse("pyspark://spark://10.0.0.5:7077?database=crm").master == "spark://10.0.0.5:7077"
    assert parse("pyspark://") == SparkTarget()


def test_a_spark_connect_url_is_handed_to_spark_without_the_database():
    assert parse("sc://spark.example:15002/;token=abc?database=crm") == SparkTarget(
        remote="sc://spark.example:15002/;token=abc", database="crm"
    )


def test_other_urls_are_not_spark_and_unknown_options_are_refused():
    assert not is_spark_url("postgres://u@h/db") and not is_spark_url("duckdb:///x.duckdb")
    assert is_spark_url("pyspark://local[2]") and is_spark_url("sc://h:15002")
    with pytest.raises(SparkUnavailable, match="unknown option 'databse'"):
        parse("pyspark://local[2]?databse=crm")
    with pytest.raises(SparkUnavailable, match="takes no spark"):
        parse("sc://h:15002?spark.executor.memory=8g")
