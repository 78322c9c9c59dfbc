"""Every condition kind selects the customers it says, on SQLite and PostgreSQL, in both compiled shapes (one
set per leaf for a full refresh, correlated EXISTS for an incremental one)."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.engine import Engine

from kizuna.customers.models import Customer
from kizuna.db import transaction
from kizuna.segments import compile as compiler
from kizuna.segments.rules import parse_rule

CASES = [
    ({"attribute": "prefecture", "op": "eq", "value": "東京都"}, {"aki", "chie"}),
    ({"attribute": "prefecture", "op": "ne", "value": "東京都"}, {"ben", "dan"}),
    ({"attribute": "prefecture", "op": "in", "value": ["大阪府", "京都府"]}, {"ben", "dan"}),
    ({"attribute": "prefecture", "op": "not_in", "value": ["大阪府", "京都府"]}, {"aki", "chie"}),
    ({"attribute": "prefecture", "op": "contains", "value": "阪"}, {"ben"}),
    ({"attribute": "prefecture", "op": "starts_with", "value": "京"}, {"dan"}),
    ({"attribute": "email", "op": "is_empty"}, {"ben", "chie"}),
    ({"attribute": "email", "op": "is_not_empty"}, {"aki", "dan"}),
    ({"attribute": "email", "op": "eq", "value": "DAN@example.com"}, {"dan"}),
    ({"attribute": "created_at", "op": "gte", "value": {"days_ago": 1}}, {"aki", "ben", "chie", "dan"}),
    ({"attribute": "created_at", "op": "lt", "value": {"relative": "-1d"}}, set()),
    (
        {"attribute": "created_at", "op": "between", "value": [{"relative": "-1d"}, {"relative": "today"}]},
        {"aki", "ben", "chie", "dan"},
    ),
    ({"attribute": "birth_date", "op": "is_empty"}, {"aki", "ben", "chie", "dan"}),
    ({"tag": "VIP"}, {"aki"}),
    ({"tag": "nobody"}, set()),
    ({"consent": {"channel": "email", "purpose": "marketing"}}, {"aki"}),
    ({"not": {"consent": {"channel": "email"}}}, {"ben", "chie", "dan"}),
    ({"event": "page_view"}, {"aki", "ben", "chie"}),
    ({"event": "page_view", "min_count": 3}, {"aki", "chie"}),
    ({"event": "page_view", "min_count": 3, "within_days": 30}, {"aki"}),
    ({"event": "page_view", "within_days": 30, "properties": {"path": "/sale"}}, {"aki", "ben"}),
    ({"event": "page_view", "min_count": 2, "properties": {"path": "/sale"}}, {"aki"}),
    ({"event": "page_view", "within_days": 30, "negate": True}, {"chie", "dan"}),
    ({"orders": {"metric": "order_count", "op": "gte", "value": 2}}, {"aki"}),
    ({"orders": {"metric": "order_count", "op": "eq", "value": 0}}, {"ben", "dan"}),
    ({"orders": {"metric": "order_count", "op": "lt", "value": 2}}, {"ben", "chie", "dan"}),
    ({"orders": {"metric": "total_spend", "op": "gte", "value": 15000}}, {"aki"}),
    ({"orders": {"metric": "total_spend", "op": "between", "value": [0, 3000]}}, {"ben", "chie", "dan"}),
    ({"orders": {"metric": "last_order_date", "op": "gte", "value": {"days_ago": 30}}}, {"aki"}),
    ({"orders": {"metric": "last_order_date", "op": "is_empty"}}, {"ben", "dan"}),
    ({"orders": {"metric": "last_order_date", "op": "lt", "value": {"days_ago": 100}}}, {"chie"}),
    ({"bought": {"category": "tea"}}, {"aki"}),
    ({"bought": {"category": "coffee", "within_days": 90}}, set()),
    ({"bought": {"category": "coffee"}}, {"chie"}),
    ({"bought": {"brand": "Kizuna", "within_days": 30}}, {"aki"}),
    ({"bought": {"taste": "bitter"}}, {"chie"}),
    ({"bought": {"product_sku": "TEA-1"}}, {"aki"}),
    ({"metric": "rfm_segment", "op": "eq", "value": "champions"}, {"aki"}),
    ({"metric": "rfm_segment", "op": "ne", "value": "champions"}, {"ben", "chie", "dan"}),
    ({"metric": "decile", "op": "lte", "value": 3}, {"aki"}),
    ({"metric": "clv", "op": "gte", "value": 1000}, {"aki"}),
    ({"metric": "churn_risk", "op": "gt", "value": 0.5}, {"ben"}),
    ({"metric": "p_alive", "op": "is_empty"}, {"chie", "dan"}),
    (
        {
            "all": [
                {"attribute": "prefecture", "op": "eq", "value": "東京都"},
                {"event": "page_view", "within_days": 30},
            ]
        },
        {"aki"},
    ),
    ({"any": [{"tag": "VIP"}, {"attribute": "prefecture", "op": "eq", "value": "京都府"}]}, {"aki", "dan"}),
    ({"not": {"any": [{"tag": "VIP"}, {"event": "page_view"}]}}, {"dan"}),
]


def _names(world: dict[str, int], ids: set[int]) -> set[str]:
    by_id = {v: k for k, v in world.items()}
    return {by_id[i] for i in ids}


@pytest.mark.parametrize(("rule", "expected"), CASES, ids=[str(i) for i in range(len(CASES))])
def test_every_condition_selects_what_it_says(db: Engine, world, rule, expected):
    with transaction(db) as s:
        as_sets = set(s.scalars(compiler.matching(parse_rule(rule))))
        as_exists = set(s.scalars(compiler.matching(parse_rule(rule), correlate=True)))
    assert _names(world, as_sets) == expected
    assert _names(world, as_exists) == expected


def test_values_are_bound_parameters_never_sql_text(db: Engine, world):
    hostile = "東京都' OR '1'='1"
    rule = parse_rule({"all": [{"attribute": "prefecture", "op": "eq", "value": hostile}, {"tag": "x'); DROP"}]})
    query = compiler.matching(rule)
    assert hostile not in str(query.compile(dialect=db.dialect))
    with transaction(db) as s:
        assert list(s.scalars(query)) == []
        assert s.scalar(select(Customer.id).limit(1)) is not None


@pytest.mark.parametrize(
    ("rule", "path", "problem"),
    [
        ({"attribute": "prefecture", "op": "gt", "value": "x"}, "attribute.op", "'gt' does not apply to prefecture"),
        ({"all": [{"attribute": "id", "op": "eq", "value": "abc"}]}, "all[0].attribute.value", "id takes an integer"),
        ({"attribute": "prefecture", "op": "eq", "value": {"days_ago": 3}}, "attribute.value", "relative date"),
        ({"orders": {"metric": "total_spend", "op": "gte", "value": "lots"}}, "orders.value", "is not a number"),
        ({"metric": "decile", "op": "contains", "value": 1}, "metric.op", "does not apply"),
    ],
)
def test_type_errors_found_while_compiling_name_their_path(rule, path, problem):
    from kizuna.segments.rules import SegmentRuleError

    with pytest.raises(SegmentRuleError) as caught:
        compiler.condition(parse_rule(rule))
    assert caught.value.path == path
    assert problem in caught.value.problem
