"""Exports: the list's filters apply, formula cells are neutralised, Parquet keeps types."""

from __future__ import annotations

import csv
import io
from decimal import Decimal

import pyarrow.parquet as pq


def test_csv_export_neutralises_formulas_and_keeps_japanese(client):
    client.post(
        "/api/v1/customers",
        json={"family_name": '=HYPERLINK("http://x")', "given_name": "@evil", "prefecture": "東京都"},
    )
    client.post("/api/v1/customers", json={"family_name": "佐藤", "prefecture": "大阪府", "phone": "090-1234-5678"})
    r = client.get("/api/v1/exports/customers.csv")
    assert r.status_code == 200
    assert r.content.startswith(b"\xef\xbb\xbf")  # BOM so spreadsheet apps read UTF-8 Japanese
    rows = list(csv.DictReader(io.StringIO(r.content.decode("utf-8-sig"))))
    by_pref = {row["prefecture"]: row for row in rows}
    assert by_pref["東京都"]["family_name"].startswith("'=")
    assert by_pref["東京都"]["given_name"] == "'@evil"
    assert by_pref["大阪府"]["phone"] == "'+819012345678"
    only_osaka = client.get("/api/v1/exports/customers.csv", params={"prefecture": "大阪府"})
    assert len(list(csv.DictReader(io.StringIO(only_osaka.content.decode("utf-8-sig"))))) == 1


def test_parquet_export_is_typed(client):
    client.post("/api/v1/products", json={"sku": "P1", "name": "珈琲", "price": "1234.50"})
    r = client.get("/api/v1/exports/products.parquet")
    assert r.status_code == 200
    table = pq.read_table(io.BytesIO(r.content))
    assert table.num_rows == 1
    assert table.column("price").to_pylist() == [Decimal("1234.50")]
    assert table.column("name").to_pylist() == ["珈琲"]
    assert str(table.schema.field("created_at").type).startswith("timestamp")


def test_unknown_export_kind_or_filter_is_4xx(client):
    assert client.get("/api/v1/exports/secrets.csv").status_code == 422
    assert client.get("/api/v1/exports/customers.csv?nope=1").status_code == 422
