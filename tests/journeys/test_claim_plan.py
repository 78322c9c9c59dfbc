"""The engine's claim reads only the due enrollments, in order, through their index.

On a SQLite database without statistics (every new one: nothing runs ANALYZE) the planner preferred to walk
every enrollment of the live journey by ``ix_journey_enrollments_step`` and sort them, so each claim cost
O(enrollments): at 100,000 customers in one journey, 6 ms a batch and growing. A test with a handful of rows
never notices the difference in time, so it reads the plan.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import event

from kizuna.db import make_engine, migrate, new_session
from kizuna.journeys import engine as journey_engine
from kizuna.journeys import service
from tests import factories
from tests.journeys.conftest import MARKETER, definition, publish

STEPS = [{"id": "w", "type": "wait", "duration": "P1D", "next": "x"}, {"id": "x", "type": "exit"}]


def test_the_engine_claims_due_enrollments_through_the_due_index_without_sorting(tmp_path: Path) -> None:
    db = make_engine(f"sqlite:///{tmp_path / 'plan.db'}")
    migrate(db)
    with new_session(db) as session:
        journey_id = publish(session, definition(STEPS))
        customers = [factories.customer(session, email=f"c{i}@example.jp").id for i in range(3)]
        session.commit()
        service.enroll_customers(session, journey_id, actor=MARKETER, customer_ids=customers)
        session.commit()
    plans: dict[str, list[str]] = {}

    def explain(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        if not many and "journey_enrollments" in statement and "ORDER BY" in statement:
            rows = cursor.connection.execute(f"EXPLAIN QUERY PLAN {statement}", parameters).fetchall()
            plans[statement] = [row[-1] for row in rows]

    event.listen(db, "before_cursor_execute", explain)
    try:
        claimed = journey_engine.claim(db, "w1")
    finally:
        event.remove(db, "before_cursor_execute", explain)
    assert len(claimed) == 3
    assert len(plans) == 2, list(plans)  # the look, then the claiming UPDATE
    for statement, plan in plans.items():
        assert any("USING INDEX ix_journey_enrollments_due" in step for step in plan), (statement, plan)
        assert not any("TEMP B-TREE" in step for step in plan), (statement, plan)
        assert not any("ix_journey_enrollments_step" in step for step in plan), (statement, plan)
