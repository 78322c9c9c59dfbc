"""A first customer import into an empty table drops its random-key indexes and always builds them again, on
SQLite and on PostgreSQL (where the indexes of 1M customers took 13 of the 31 s of its INSERTs)."""

from __future__ import annotations

import pytest
from sqlalchemy import event, inspect, text

from kizuna.auth.permissions import Actor
from kizuna.customers.models import Customer
from kizuna.imports.runner import ImportAborted, run_import
from tests.imports.conftest import refusing_boom

SYSTEM = Actor.system("test")
ROWS = ["email,phone", "a@example.jp,090-1111-2222", "b@example.jp,090-3333-4444", "c@example.jp,"]
EXPECTED = {index.name for index in Customer.__table__.indexes}


def _indexes(engine) -> set[str]:
    with engine.connect() as conn:
        return {index["name"] for index in inspect(conn).get_indexes("customers")}


def _ddl(engine, run):
    seen: list[str] = []

    def record(conn, cursor, statement, *args):
        if statement.lstrip().upper().startswith(("DROP INDEX", "CREATE INDEX")):
            seen.append(statement.split("(")[0].strip())

    event.listen(engine, "before_cursor_execute", record)
    try:
        result = run()
    finally:
        event.remove(engine, "before_cursor_execute", record)
    return result, seen


def test_first_import_drops_and_rebuilds_only_on_an_empty_table(db, csv_file):
    report, ddl = _ddl(db, lambda: run_import(db, "customers", csv_file(ROWS), actor=SYSTEM, batch_size=2))
    assert report.inserted == 3
    assert _indexes(db) >= EXPECTED
    assert sum(s.startswith("DROP INDEX") for s in ddl) == 4
    assert sum(s.startswith("CREATE INDEX") for s in ddl) == 4
    # The table has rows now: a second import leaves the indexes alone (and changes nothing).
    again, ddl = _ddl(db, lambda: run_import(db, "customers", csv_file(ROWS), actor=SYSTEM))
    assert (again.inserted, again.unchanged) == (0, 3)
    assert ddl == []


def test_indexes_are_rebuilt_when_a_batch_fails(db, session, csv_file):
    # A database trigger refuses one row in batch 2 (the same failure as the crash test in the import tests).
    with refusing_boom(db), pytest.raises(ImportAborted, match="batch 2 failed"):
        run_import(db, "customers", csv_file([*ROWS, "boom@example.jp,"]), actor=SYSTEM, batch_size=3)
    assert _indexes(db) >= EXPECTED


def test_next_import_restores_indexes_an_interrupted_load_left_dropped(db, csv_file):
    run_import(db, "customers", csv_file(ROWS), actor=SYSTEM)
    # As if the process had died between dropping and rebuilding.
    with db.begin() as conn:
        conn.execute(text("DROP INDEX ix_customers_email"))
        conn.execute(text("DROP INDEX ix_customers_full_name"))
    assert not _indexes(db) >= EXPECTED
    run_import(db, "customers", csv_file(ROWS), actor=SYSTEM, dry_run=True)
    assert _indexes(db) >= EXPECTED


def test_an_import_beside_an_open_reader_finishes_and_keeps_every_index(db, csv_file):
    # On PostgreSQL, DROP INDEX waits for this reader's transaction (and would queue every later reader behind
    # it): the import gives up the drop after a moment and loads with the indexes in place.
    with db.connect() as reader:
        assert reader.execute(text("SELECT count(*) FROM customers")).scalar() == 0
        report, ddl = _ddl(db, lambda: run_import(db, "customers", csv_file(ROWS), actor=SYSTEM, batch_size=2))
        reader.rollback()
    assert report.inserted == 3
    assert _indexes(db) >= EXPECTED
    if db.dialect.name == "postgresql":
        assert sum(s.startswith("CREATE INDEX") for s in ddl) == 0
