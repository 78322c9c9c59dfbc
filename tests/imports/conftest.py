"""Helpers for import tests: files written exactly as a spreadsheet or shop system would write them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine


@pytest.fixture
def csv_file(tmp_path: Path) -> Callable[..., Path]:
    """Write ``lines`` (already CSV text) to a file in the given encoding; returns its path."""

    def write(lines: list[str], *, name: str = "data.csv", encoding: str = "utf-8") -> Path:
        path = tmp_path / name
        path.write_bytes(("\r\n".join(lines) + "\r\n").encode(encoding))
        return path

    return write


@contextmanager
def refusing_boom(db: Engine) -> Iterator[None]:
    """A database trigger refuses the customer boom@example.jp: a failure only the database sees, mid-batch."""
    if db.dialect.name == "sqlite":
        ddl = [
            "CREATE TRIGGER refuse_boom BEFORE INSERT ON customers WHEN NEW.email = 'boom@example.jp' "
            "BEGIN SELECT RAISE(ABORT, 'refused by test trigger'); END"
        ]
        drop = ["DROP TRIGGER refuse_boom"]
    else:
        ddl = [
            "CREATE FUNCTION refuse_boom() RETURNS trigger AS $$ BEGIN IF NEW.email = 'boom@example.jp' THEN "
            "RAISE EXCEPTION 'refused by test trigger'; END IF; RETURN NEW; END $$ LANGUAGE plpgsql",
            "CREATE TRIGGER refuse_boom BEFORE INSERT ON customers FOR EACH ROW EXECUTE FUNCTION refuse_boom()",
        ]
        drop = ["DROP TRIGGER refuse_boom ON customers", "DROP FUNCTION refuse_boom()"]
    with db.begin() as conn:
        for statement in ddl:
            conn.execute(text(statement))
    try:
        yield
    finally:
        with db.begin() as conn:
            for statement in drop:
                conn.execute(text(statement))
