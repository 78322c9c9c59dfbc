"""Fixtures for the analytics tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy.engine import Engine

from kizuna.analytics.engine import Store
from tests.analytics.spark_support import start_spark
from tests.conftest import clean


@pytest.fixture(scope="session")
def _own_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    from kizuna.db import make_engine, migrate

    eng = make_engine(f"sqlite:///{tmp_path_factory.mktemp('analytics-db') / 'kizuna.db'}")
    migrate(eng)
    yield eng
    eng.dispose()


@pytest.fixture(autouse=True)
def _duckdb_in_this_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests build Ibis expressions on a store opened here, so the service calls in them run here too
    (not in the child process the application uses): every DuckDB reading their file lives in this process."""
    from kizuna.analytics import engine

    monkeypatch.setattr(engine, "CHILD_FOR_SQLITE", False)


@pytest.fixture
def db(engine: Engine, request: pytest.FixtureRequest) -> Engine:
    """On SQLite, the analytics tests' own file. These tests open DuckDB on the store in this process, and
    DuckDB's copy of the SQLite library drops the locks our connections hold on a file it closes (``engine.
    run_on_store`` says why the application never does that): on a file of their own, no later test meets it."""
    if engine.dialect.name == "sqlite":
        engine = request.getfixturevalue("_own_sqlite")
        # Fresh connections each test: a CLI run in a subprocess may have checkpointed the WAL away under
        # connections whose locks DuckDB dropped in an earlier test.
        engine.dispose()
    clean(engine)
    return engine


@pytest.fixture(scope="session")
def spark(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    """A local Spark session for the whole test process (it takes seconds to start), as the analytics' store;
    ``spark_support.spark_store`` fills it with a copy of the test's database."""
    store = start_spark(str(tmp_path_factory.mktemp("spark-warehouse")))
    yield store
    store.con.disconnect()
