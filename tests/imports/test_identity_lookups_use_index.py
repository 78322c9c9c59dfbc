"""Every look-up an import makes in customer_identities searches an index; none scans the table.

Both identity indexes are partial, and SQLite uses one only when the query states its condition. A look-up
that forgot it still gives the right answer, only by scanning every identity per batch, which a small test
never notices and a 1M-row import pays for quadratically.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.engine import Engine

from kizuna.auth.permissions import Actor
from kizuna.imports.runner import run_import

HEADER = "会員ID,姓,名,メールアドレス,電話番号"


def test_customer_and_order_imports_search_identities_by_index(
    db: Engine, csv_file: Callable[..., Path], tmp_path: Path
) -> None:
    if db.dialect.name != "sqlite":
        pytest.skip("query plans are read from SQLite; PostgreSQL plans depend on its statistics")
    plans: dict[str, list[str]] = {}

    def explain(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        if not many and statement.lstrip().upper().startswith("SELECT") and "customer_identities" in statement:
            rows = cursor.connection.execute(f"EXPLAIN QUERY PLAN {statement}", parameters).fetchall()
            plans[statement] = [row[-1] for row in rows]

    customers = [HEADER, "M1,山田,太郎,taro@example.jp,090-1111-2222", "M2,佐藤,花子,hanako@example.jp,"]
    again = [HEADER, "M3,山田,太郎,TARO@example.jp,090-1111-2222", "M4,鈴木,一郎,ichiro@example.jp,090-1111-2222"]
    orders = [
        "order_id,customer_id,email,ordered_at,total",
        "O1,M1,,2026-01-02,1000",
        "O2,,hanako@example.jp,2026-01-03,500",
    ]
    event.listen(db, "before_cursor_execute", explain)
    try:
        for lines, kind in ((customers, "customers"), (again, "customers"), (orders, "orders")):
            report = run_import(
                db,
                kind,
                csv_file(lines, name=f"{kind}.csv"),
                actor=Actor.system("test"),
                report_path=tmp_path / "r.csv",
            )
            assert not report.rejects, report.rejects
    finally:
        event.remove(db, "before_cursor_execute", explain)
    assert plans, "no identity look-up was seen"
    scans = {sql: plan for sql, plan in plans.items() if any(p.startswith("SCAN customer_identities") for p in plan)}
    assert not scans, scans
