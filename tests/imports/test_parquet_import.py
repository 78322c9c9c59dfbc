"""Parquet files import through the same path as CSV files: same rows stored, same rejects, same side effects."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sqlalchemy import func, select

from kizuna.auth.permissions import Actor
from kizuna.db import transaction
from kizuna.events.models import Event
from kizuna.exports.service import write_export
from kizuna.imports.reader import ImportFileError
from kizuna.imports.runner import run_import
from kizuna.orders.models import Order
from kizuna.outbox.models import OutboxMessage
from tests import factories
from tests.audiences.conftest import kizuna_cli
from tests.conftest import clean

SYSTEM = Actor.system("test")
TOKYO = dt.timezone(dt.timedelta(hours=9))
ORDER_ROWS = [
    # order_id, customer, ordered_at, sku, quantity, unit_price
    ("O-1", "C-1", dt.datetime(2024, 1, 5, 13, 0, tzinfo=TOKYO), "SKU-1", 2, Decimal("1200")),
    ("O-1", "C-1", dt.datetime(2024, 1, 5, 13, 0, tzinfo=TOKYO), "SKU-2", 1, Decimal("800.50")),
    ("O-2", "C-404", dt.datetime(2024, 1, 6, 9, 0, tzinfo=TOKYO), "SKU-1", 1, Decimal("1200")),
    ("O-3", "C-1", dt.datetime(2024, 1, 7, 9, 0, tzinfo=TOKYO), "NOPE", 1, Decimal("100")),
    ("O-4", "C-2", dt.datetime(2024, 1, 8, 9, 0, tzinfo=TOKYO), "SKU-2", 3, Decimal("800.50")),
]
HEADER = ["注文番号", "顧客ID", "注文日時", "商品コード", "数量", "単価"]


def _world(session) -> None:
    factories.customer(session, external_id="C-1", email="one@example.jp")
    factories.customer(session, external_id="C-2", email="two@example.jp")
    factories.product(session, sku="SKU-1", name="緑茶", price=1200)
    factories.product(session, sku="SKU-2", name="ほうじ茶", price=800)
    session.commit()


def _parquet(path, rows=ORDER_ROWS):
    columns = list(zip(*rows, strict=True))
    table = pa.table(
        {
            HEADER[0]: pa.array(columns[0], pa.string()),
            HEADER[1]: pa.array(columns[1], pa.string()),
            HEADER[2]: pa.array(columns[2], pa.timestamp("us", tz="Asia/Tokyo")),
            HEADER[3]: pa.array(columns[3], pa.string()),
            HEADER[4]: pa.array(columns[4], pa.int32()),
            HEADER[5]: pa.array(columns[5], pa.decimal128(18, 2)),
        }
    )
    pq.write_table(table, path)
    return path


def _csv(path, rows=ORDER_ROWS):
    lines = [",".join(HEADER)] + [",".join([o, c, t.isoformat(), s, str(q), str(p)]) for o, c, t, s, q, p in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _stored(session) -> tuple:
    orders = session.scalars(select(Order).order_by(Order.external_id)).all()
    return (
        [
            (
                o.external_id,
                o.customer_id,
                o.ordered_at,
                o.total_amount,
                [(x.sku, x.quantity, x.amount) for x in o.lines],
            )
            for o in orders
        ],
        sorted(
            (m.topic, m.origin, m.occurred_at, m.customer_id)
            for m in session.scalars(select(OutboxMessage).where(OutboxMessage.topic.like("order.%")))
        ),
    )


def test_parquet_orders_store_and_reject_exactly_what_the_same_csv_does(db, session, tmp_path):
    _world(session)
    from_parquet = run_import(db, "orders", _parquet(tmp_path / "orders.parquet"), actor=SYSTEM)
    assert from_parquet.encoding == "parquet"
    stored_parquet = _stored(session)
    rejects_parquet = sorted((r.line, r.field, r.reason) for r in from_parquet.rejects)

    session.rollback()  # end the read transaction: PostgreSQL's TRUNCATE waits for it
    clean(db)
    _world(session)
    from_csv = run_import(db, "orders", _csv(tmp_path / "orders.csv"), actor=SYSTEM)
    stored_csv = _stored(session)

    assert (from_parquet.inserted, from_parquet.rejected) == (from_csv.inserted, from_csv.rejected) == (2, 2)
    assert rejects_parquet == sorted((r.line, r.field, r.reason) for r in from_csv.rejects)
    assert [line for line, _, _ in rejects_parquet] == [4, 5]  # rows 3 and 4 of the file, as in the CSV
    assert stored_parquet[0] == stored_csv[0]
    assert stored_parquet[0][0][3] == Decimal("3200.50")  # 2 × 1200 + 800.50, exact
    # The same outbox messages, marked as coming from an import with the order's own date (backfill).
    assert stored_parquet[1] == stored_csv[1]
    assert {origin for _, origin, _, _ in stored_parquet[1]} == {"import"}
    assert min(at for _, _, at, _ in stored_parquet[1]).year == 2024


def test_an_orders_and_events_parquet_export_imports_back_unchanged(db, session, admin, tmp_path):
    _world(session)
    customer = session.scalar(select(Order.customer_id)) or 1
    factories.order(
        session,
        customer_id=customer,
        ordered_at=factories.at("2024-01-05T04:00:00"),
        external_id="O-9",
        lines=[{"sku": "SKU-1", "quantity": 2, "unit_price": 1200}],
    )
    factories.event(
        session,
        customer_id=customer,
        type="page_view",
        channel="web",
        occurred_at=factories.at("2024-03-01"),
        properties={"path": "/sale", "n": 2},
    )
    session.commit()
    for kind in ("orders", "events"):
        path = tmp_path / f"{kind}.parquet"
        with transaction(db) as s, path.open("wb") as out:
            write_export(s, actor=admin, kind=kind, params={}, fmt="parquet", out=out)
        report = run_import(db, kind, path, actor=SYSTEM)
        assert (report.read, report.unchanged, report.rejected, report.inserted, report.updated) == (1, 1, 0, 0, 0), (
            kind,
            report.rejects,
        )
    session.expire_all()
    assert session.scalar(select(func.count()).select_from(Event)) == 1


def test_parquet_events_import_with_properties_and_cli(db, session, tmp_path):
    _world(session)
    table = pa.table(
        {
            "customer_external_id": ["C-1", "C-2", None],
            "type": ["page_view", "page_view", "page_view"],
            "channel": ["web", "web", "web"],
            "occurred_at": pa.array([dt.datetime(2024, 5, 1, 1, 0, tzinfo=dt.UTC)] * 3, pa.timestamp("ms", tz="UTC")),
            "path": ["/sale", "/top", "/x"],
        }
    )
    path = tmp_path / "events.parquet"
    pq.write_table(table, path)
    r = kizuna_cli(db, tmp_path / "home", "import", "events", str(path))
    assert r.returncode == 1, r.stdout + r.stderr  # one row names no customer
    # The rejected row is reported at line 4 (row 3 of the file; the header would be line 1 of a CSV).
    assert re.search(r"│\s+4 │ customer_external_id │ customer_external_id: the row names no", r.stderr), r.stderr
    events = session.scalars(select(Event).order_by(Event.id)).all()
    assert [(e.type, e.properties.get("path")) for e in events] == [("page_view", "/sale"), ("page_view", "/top")]
    assert all(e.occurred_at == dt.datetime(2024, 5, 1, 1, 0, tzinfo=dt.UTC) for e in events)


def test_a_file_that_is_not_parquet_is_refused_before_anything_is_written(db, tmp_path):
    bad = tmp_path / "orders.parquet"
    bad.write_bytes(b"PAR1 not really")
    with pytest.raises(ImportFileError, match="not a readable Parquet file"):
        run_import(db, "orders", bad, actor=SYSTEM)
    empty_columns = tmp_path / "wrong.parquet"
    pq.write_table(pa.table({"colour": ["red"]}), empty_columns)
    with pytest.raises(ImportFileError, match="missing required column"):
        run_import(db, "orders", empty_columns, actor=SYSTEM)


def test_a_parquet_file_uploaded_like_a_csv_file_imports_the_same_orders(db, session, client, tmp_path):
    """The browser's and the API's upload take a warehouse's Parquet export as the CLI does: headers from its
    schema, no encoding to guess, the same rows stored and rejected."""
    _world(session)
    data = _parquet(tmp_path / "orders.parquet").read_bytes()
    made = client.post("/api/v1/imports", data={"kind": "orders"}, files={"file": ("注文.parquet", data)})
    assert made.status_code == 201, made.text
    job = made.json()
    assert (job["encoding"], job["status"]) == ("parquet", "uploaded")
    assert list(job["mapping"]) == HEADER and job["rows_total"] == len(ORDER_ROWS)
    shown = client.post(f"/api/v1/imports/{job['id']}/preview", json={"mapping": job["mapping"]})
    assert shown.status_code == 200, shown.text
    # The preview's dry run reads a Parquet sample too: the unknown customer and product show before the run.
    assert [r["line"] for r in shown.json()["rows"] if r["errors"]] == [4, 5]
    ran = client.post(f"/api/v1/imports/{job['id']}/run")
    assert ran.status_code == 202, ran.text
    # O-2 names an unknown customer and O-3 an unknown product: the same two rejects as the CSV import.
    assert (ran.json()["status"], ran.json()["rejected"]) == ("done", 2)
    assert session.scalar(select(func.count()).select_from(Order)) == 2
    broken = client.post("/api/v1/imports", data={"kind": "orders"}, files={"file": ("x.parquet", b"PAR1 broken")})
    assert broken.status_code == 422 and broken.json()["error"]["field"] == "file"
