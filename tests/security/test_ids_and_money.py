"""Ids are never handed out twice, and money keeps every cent in the same range on both databases."""

from __future__ import annotations

import io
from decimal import Decimal
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from sqlalchemy import text

import kizuna.models  # noqa: F401
from kizuna.db import Base, ids_are_public, make_engine


def _new(client, path: str, body: dict) -> int:
    r = client.post(path, json=body)
    assert r.status_code == 201, r.text
    return r.json()["id"]


def _delete(client, path: str) -> None:
    assert client.delete(path, headers={"If-Match": "*"}).status_code == 204


def test_ids_of_deleted_records_are_never_reused(client):
    cid = _new(client, "/api/v1/customers", {"family_name": "x"})
    _new(client, "/api/v1/products", {"sku": "KEEP", "name": "keep"})
    when = "2024-01-01T00:00:00Z"
    for path, body in (
        ("/api/v1/customers", {"family_name": "y"}),
        ("/api/v1/companies", {"name": "社"}),
        ("/api/v1/products", {"sku": "S", "name": "n"}),
        ("/api/v1/orders", {"customer_id": cid, "ordered_at": when, "lines": [{"sku": "KEEP", "unit_price": "1"}]}),
        ("/api/v1/events", {"customer_id": cid, "type": "t", "channel": "web", "occurred_at": when}),
    ):
        newest = _new(client, path, body)
        _delete(client, f"{path}/{newest}")
        again = _new(client, path, {**body, **({"sku": "S2"} if "sku" in body else {})})
        assert again > newest, path


def test_every_table_with_public_ids_autoincrements_on_sqlite(engine):
    if engine.dialect.name != "sqlite":
        pytest.skip("PostgreSQL sequences never go back")
    with engine.connect() as conn:
        ddl = dict(conn.execute(text("SELECT name, sql FROM sqlite_master WHERE type = 'table'")).all())
    public = [t.name for t in Base.metadata.sorted_tables if ids_are_public(t)]
    assert {"customers", "companies", "products", "orders", "events", "users", "api_tokens", "notes"} <= set(public)
    assert [name for name in public if "AUTOINCREMENT" not in ddl[name]] == []


def _order(client, cid: int, **line) -> object:
    body = {"customer_id": cid, "ordered_at": "2024-01-01T00:00:00Z", "lines": [{"sku": "P", **line}]}
    return client.post("/api/v1/orders", json=body)


def test_money_has_the_same_range_on_both_backends(client):
    cid = _new(client, "/api/v1/customers", {"family_name": "x"})
    _new(client, "/api/v1/products", {"sku": "P", "name": "p"})
    huge = _order(client, cid, quantity=1_000_000, unit_price="1000000000000000")
    assert huge.status_code == 422, huge.text
    assert "10^16" in huge.json()["error"]["message"]
    assert _order(client, cid, unit_price="10000000000000000").status_code == 422
    line = {"sku": "P", "unit_price": "9000000000000000"}
    two = {"customer_id": cid, "ordered_at": "2024-01-01T00:00:00Z", "lines": [line, line]}
    assert client.post("/api/v1/orders", json=two).status_code == 422
    assert client.post("/api/v1/products", json={"sku": "Q", "name": "q", "price": "1e17"}).status_code == 422


def test_money_is_exact_to_the_cent_on_both_backends(client):
    cid = _new(client, "/api/v1/customers", {"family_name": "x"})
    _new(client, "/api/v1/products", {"sku": "P", "name": "p", "price": "9999999999999999.99"})
    r = _order(client, cid, unit_price="1234567890123456.78")
    assert r.status_code == 201, r.text
    order = client.get(f"/api/v1/orders/{r.json()['id']}").json()
    assert order["total_amount"] == "1234567890123456.78"
    assert order["lines"][0]["unit_price"] == "1234567890123456.78"
    assert client.get("/api/v1/products", params={"sku": "P"}).json()["items"][0]["price"] == "9999999999999999.99"
    found = client.get("/api/v1/orders", params={"total_amount__gte": "1234567890123456.78"}).json()["items"]
    assert [o["id"] for o in found] == [order["id"]]
    assert client.get("/api/v1/orders", params={"total_amount__gt": "1234567890123456.78"}).json()["items"] == []
    parquet = client.get("/api/v1/exports/orders.parquet")
    assert parquet.status_code == 200
    table = pq.read_table(io.BytesIO(parquet.content))
    assert table.column("total_amount").to_pylist() == [Decimal("1234567890123456.78")]


def _upgrade(engine, target: str) -> None:
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(Path(kizuna.models.__file__).parent / "migrations"))
    cfg.attributes["engine"] = engine
    command.upgrade(cfg, target)


def test_the_migration_keeps_sqlite_data_and_its_references(tmp_path):
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    cfg = Config()
    cfg.set_main_option("script_location", str(Path(kizuna.models.__file__).parent / "migrations"))
    before = ScriptDirectory.from_config(cfg).get_revision("0004").down_revision
    engine = make_engine(f"sqlite:///{tmp_path / 'old.db'}")
    _upgrade(engine, str(before))
    stamps = "'2024-01-01', '2024-01-01'"
    rows = (
        "INSERT INTO customers (id, full_name, lifecycle_stage, timezone, locale, attributes, status, version,"
        f" created_at, updated_at) VALUES (7, 'x', 'customer', 'UTC', 'ja', '{{}}', 'active', 1, {stamps})",
        "INSERT INTO orders (id, customer_id, ordered_at, status, currency, total_amount, attributes, version,"
        f" created_at, updated_at) VALUES (3, 7, '2024-01-01', 'completed', 'JPY', 1234.5, '{{}}', 1, {stamps})",
        "INSERT INTO order_lines (id, order_id, customer_id, line_no, quantity, unit_price, amount)"
        " VALUES (4, 3, 7, 1, 1, 1234.5, 1234.5)",
        "INSERT INTO customer_identities (customer_id, kind, value, created_at)"
        " VALUES (7, 'email', 'a@b.jp', '2024-01-01')",
    )
    with engine.begin() as conn:
        for row in rows:
            conn.execute(text(row))
    _upgrade(engine, "head")
    with engine.connect() as conn:
        assert conn.execute(text("SELECT total_amount FROM orders")).scalar() == 123450
        assert conn.execute(text("SELECT count(*) FROM order_lines")).scalar() == 1
        assert conn.execute(text("SELECT count(*) FROM customer_identities")).scalar() == 1
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
        assert conn.execute(text("PRAGMA foreign_key_check")).all() == []
        assert "AUTOINCREMENT" in conn.execute(text("SELECT sql FROM sqlite_master WHERE name = 'customers'")).scalar()
    from alembic import command

    from kizuna.db import new_session
    from kizuna.orders.models import Order

    with new_session(engine) as s:
        assert s.get(Order, 3).total_amount == Decimal("1234.50")
    # A crash after the migration committed but before Alembic noted it: running it again changes nothing.
    cfg.attributes["engine"] = engine
    command.stamp(cfg, str(before))
    _upgrade(engine, "0004")
    command.stamp(cfg, "head")
    with new_session(engine) as s:
        assert s.get(Order, 3).total_amount == Decimal("1234.50")
    engine.dispose()


def test_an_import_never_takes_the_id_of_a_deleted_customer(client, db, tmp_path):
    from kizuna.auth.permissions import Actor
    from kizuna.imports.runner import run_import

    _new(client, "/api/v1/customers", {"family_name": "x"})
    newest = _new(client, "/api/v1/customers", {"family_name": "y"})
    _delete(client, f"/api/v1/customers/{newest}")
    path = tmp_path / "people.csv"
    path.write_text("email,family_name\nnew@example.jp,新\n", encoding="utf-8")
    report = run_import(db, "customers", path, actor=Actor.system("test"))
    assert report.inserted == 1
    imported = client.get("/api/v1/customers", params={"email": "new@example.jp"}).json()["items"][0]
    assert imported["id"] > newest
