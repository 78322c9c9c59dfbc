"""The comparison every analysis's results pass across engines (tests/analytics/spark_support.py)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from pydantic import BaseModel

from tests.analytics.spark_support import same_results


class Row(BaseModel):
    customer_id: int
    segment: str
    revenue: Decimal
    share: float


class Result(BaseModel):
    rows: list[Row]


def _result(**changes) -> Result:  # noqa: ANN003
    row = {"customer_id": 1, "segment": "champions", "revenue": Decimal("12345.67"), "share": 0.25} | changes
    return Result(rows=[Row(**row)])


def test_money_and_shares_may_differ_by_less_than_1e_9_relative():
    same_results(_result(), _result(revenue=Decimal("12345.6700001"), share=0.25 * (1 + 1e-12)))
    with pytest.raises(AssertionError, match=r"result\.rows\[0\]\.revenue"):
        same_results(_result(), _result(revenue=Decimal("12345.68")))
    with pytest.raises(AssertionError, match=r"result\.rows\[0\]\.share"):
        same_results(_result(), _result(share=0.2500001))


def test_counts_ids_segments_and_lengths_must_be_equal():
    with pytest.raises(AssertionError, match="customer_id"):
        same_results(_result(), _result(customer_id=2))
    with pytest.raises(AssertionError, match="segment"):
        same_results(_result(), _result(segment="loyal"))
    with pytest.raises(AssertionError, match="1 items != 2"):
        same_results(_result(), Result(rows=_result().rows * 2))
    with pytest.raises(AssertionError, match=r"\[0\]\['decile'\]"):
        same_results([{"decile": 1}], [{"decile": 2}])
