"""``kizuna export table NAME``: any table, as stored, to Parquet or CSV; secrets never leave."""

from __future__ import annotations

import csv
import io
import re
from decimal import Decimal

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sqlalchemy import select

import kizuna.models  # noqa: F401
from kizuna.auth.models import AuditEntry
from kizuna.auth.permissions import Actor
from kizuna.db import Base
from kizuna.errors import PermissionDenied, ValidationError
from kizuna.exports import cli as export_cli
from kizuna.exports.service import KINDS
from kizuna.exports.tables import EXCLUDED_TABLES, NOT_SECRET, SECRET_COLUMNS, exportable_tables, write_table
from tests import factories
from tests.audiences.conftest import kizuna_cli

ADMIN = Actor.system("test")
_LOOKS_SECRET = re.compile(r"secret|password|token")


def test_every_column_that_looks_like_a_secret_is_left_out_or_its_table_excluded():
    for table in Base.metadata.sorted_tables:
        if table.name in EXCLUDED_TABLES:
            continue
        for column in table.columns:
            if _LOOKS_SECRET.search(column.name) and column.name not in NOT_SECRET.get(table.name, ()):
                assert column.name in SECRET_COLUMNS.get(table.name, ()), f"{table.name}.{column.name}"


def test_the_cli_names_every_list_kind():
    assert set(export_cli.LIST_KINDS) == set(KINDS)


def _world(session):
    one = factories.customer(session, email="one@example.jp", tags=["=HYPERLINK(1)"], attributes={"会員": "gold"})
    factories.product(session, sku="SKU-1", name="緑茶", price=1200)
    factories.order(
        session,
        customer_id=one.id,
        ordered_at=factories.at("2024-01-05T04:00:00"),
        external_id="O-1",
        lines=[{"sku": "SKU-1", "quantity": 2, "unit_price": "1200.50"}],
    )
    factories.user(session, email="u@example.com", role="viewer")
    session.commit()
    return one


def test_parquet_keeps_types_money_exact_and_times_in_utc(session):
    one = _world(session)
    out = io.BytesIO()
    assert write_table(session, actor=ADMIN, name="order_lines", fmt="parquet", out=out) == 1
    table = pq.read_table(io.BytesIO(out.getvalue()))
    assert table.schema.field("amount").type == pa.decimal128(38, 2)
    assert table.column("amount").to_pylist() == [Decimal("2401.00")]
    out = io.BytesIO()
    write_table(session, actor=ADMIN, name="customers", fmt="parquet", out=out)
    customers = pq.read_table(io.BytesIO(out.getvalue()))
    assert customers.schema.field("created_at").type == pa.timestamp("us", tz="UTC")
    row = customers.to_pylist()[0]
    assert row["id"] == one.id and row["email"] == "one@example.jp"
    assert row["attributes"] == '{"会員": "gold"}'
    session.commit()
    entry = session.scalar(select(AuditEntry).where(AuditEntry.action == "export.table").order_by(AuditEntry.id.desc()))
    assert entry.details["table"] == "customers" and entry.details["personal_data"] is True


def test_csv_neutralises_formulas_and_leaves_out_secret_columns(session):
    _world(session)
    out = io.BytesIO()
    write_table(session, actor=ADMIN, name="tags", fmt="csv", out=out)
    rows = list(csv.DictReader(io.StringIO(out.getvalue().decode("utf-8-sig"))))
    assert rows[0]["name"] == "'=HYPERLINK(1)"
    out = io.BytesIO()
    write_table(session, actor=ADMIN, name="users", fmt="csv", out=out)
    text = out.getvalue().decode("utf-8-sig")
    assert "password_hash" not in text.splitlines()[0] and "u@example.com" in text


def test_refusals_name_the_problem(session):
    with pytest.raises(ValidationError, match="cannot export table 'api_tokens' \\(hashes of API tokens\\)"):
        write_table(session, actor=ADMIN, name="api_tokens", fmt="csv", out=io.BytesIO())
    with pytest.raises(ValidationError, match="cannot export table 'nope'; choose one of .*customers"):
        write_table(session, actor=ADMIN, name="nope", fmt="csv", out=io.BytesIO())
    with pytest.raises(ValidationError, match="unknown export format 'xlsx'"):
        write_table(session, actor=ADMIN, name="customers", fmt="xlsx", out=io.BytesIO())
    with pytest.raises(PermissionDenied):
        write_table(session, actor=Actor("m", "manager"), name="customers", fmt="csv", out=io.BytesIO())
    assert "ui_sessions" not in exportable_tables() and "order_lines" in exportable_tables()


def test_cli_exports_a_table_and_keeps_the_list_exports(db, session, tmp_path):
    _world(session)
    home = tmp_path / "home"
    out = tmp_path / "lines.parquet"
    r = kizuna_cli(db, home, "export", "table", "order_lines", "--format", "parquet", "-o", str(out))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "wrote 1 rows of order_lines" in r.stdout
    assert pq.read_table(out).num_rows == 1
    r = kizuna_cli(db, home, "export", "table", "events", "-o", str(tmp_path / "events.csv"))
    assert r.returncode == 0 and (tmp_path / "events.csv").read_text(encoding="utf-8-sig").startswith("id,")
    r = kizuna_cli(db, home, "export", "table", "api_tokens", "-o", str(tmp_path / "t.csv"))
    assert r.returncode == 2 and "cannot export table" in r.stdout and not (tmp_path / "t.csv").exists()
    # The list exports are unchanged.
    r = kizuna_cli(db, home, "export", "customers", "-o", str(tmp_path / "c.csv"), "-f", "email=one@example.jp")
    assert r.returncode == 0 and "wrote 1 customers" in r.stdout
