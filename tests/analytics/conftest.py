"""Fixtures for the analytics tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from kizuna.analytics.engine import Store
from tests.analytics.spark_support import start_spark


@pytest.fixture(scope="session")
def spark(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    """A local Spark session for the whole test process (it takes seconds to start), as the analytics' store;
    ``spark_support.spark_store`` fills it with a copy of the test's database."""
    store = start_spark(str(tmp_path_factory.mktemp("spark-warehouse")))
    yield store
    store.con.disconnect()
