"""The tracking API's driver-level event insert (``events.rows``) stores exactly what the ORM's insert stores."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import insert, select, text

from kizuna.db import sqlite_time
from kizuna.events import rows
from kizuna.events.models import Event
from tests import factories

JST = dt.timezone(dt.timedelta(hours=9))


def _rows(customer_id: int, tag: str) -> list[tuple]:
    received = dt.datetime(2026, 11, 28, 6, 30, 1, 250000, tzinfo=dt.UTC)
    return [
        (f"{tag}:1", customer_id, "anon-1", "Order Completed", "web",
         dt.datetime(2026, 11, 28, 15, 0, tzinfo=JST), received, "shop", {"total": 1980, "商品": "抹茶", "ok": True}),
        (None, customer_id, None, "page_view", "web",
         dt.datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=dt.UTC), received, "shop", {"nested": {"a": [1, 2.5, None]}}),
        (f"{tag}:3", None, "anon-2", "x" * 200, "other",
         dt.datetime(1999, 12, 31, 23, 59, 59, tzinfo=dt.UTC), received, None, {}),
    ]  # fmt: skip


def _stored(session, ids: list[int]) -> list[tuple]:  # noqa: ANN001
    """Every column as the ORM reads it, and the raw values the database holds, without id and external_id."""
    cols = [c for c in rows.COLUMNS if c != "external_id"]
    table = Event.__table__
    read = session.execute(select(*(table.c[c] for c in cols)).where(table.c.id.in_(ids)).order_by(table.c.id))
    raw_cols = ", ".join(f"CAST({c} AS TEXT)" if c == "properties" else c for c in cols)
    raw = session.execute(text(f"SELECT {raw_cols} FROM events WHERE id IN ({', '.join(map(str, ids))}) ORDER BY id"))
    return [tuple(r) for r in read] + [tuple(r) for r in raw]


def test_rows_written_by_the_driver_read_back_as_the_orm_wrote_them(session) -> None:  # noqa: ANN001
    customer_id = factories.customer(session, email="rows@example.jp").id
    table = Event.__table__
    by_orm = [
        session.execute(insert(table).returning(table.c.id), dict(zip(rows.COLUMNS, row, strict=True))).scalar_one()
        for row in _rows(customer_id, "orm")
    ]
    fast = rows.insert_events(session, _rows(customer_id, "fast"))
    session.commit()
    assert len(fast) == 3 and not set(fast) & set(by_orm)
    assert _stored(session, sorted(fast)) == _stored(session, by_orm)
    # Through the ORM object too: aware UTC times, the same properties.
    event = session.get(Event, min(fast))
    assert event.occurred_at == dt.datetime(2026, 11, 28, 6, 0, tzinfo=dt.UTC)
    assert event.occurred_at.tzinfo is not None and event.properties["商品"] == "抹茶"


def test_many_rows_go_in_statements_of_at_most_a_hundred(session) -> None:  # noqa: ANN001
    now = dt.datetime.now(dt.UTC)
    many = [(f"m:{i}", None, f"a{i}", "page_view", "web", now, now, "s", {"i": i}) for i in range(250)]
    ids = rows.insert_events(session, many)
    session.commit()
    assert len(set(ids)) == 250
    stored = dict(session.execute(select(Event.external_id, Event.id).where(Event.id.in_(ids))).all())
    assert sorted(stored) == sorted(r[0] for r in many)


def test_sqlite_time_is_the_text_sqlalchemy_stores() -> None:
    from sqlalchemy.dialects import sqlite

    process = Event.__table__.c.occurred_at.type.dialect_impl(sqlite.dialect()).bind_processor(sqlite.dialect())
    for value in (
        dt.datetime(2026, 11, 28, 15, 0, tzinfo=JST),
        dt.datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=dt.UTC),
        dt.datetime(999, 1, 1, tzinfo=dt.UTC),
    ):
        assert sqlite_time(value) == process(value)
    with pytest.raises(ValueError, match="naive"):
        sqlite_time(dt.datetime(2026, 1, 1))
