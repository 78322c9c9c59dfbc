"""Groups of customers with similar CTB profiles.

Each customer's profile is three blocks of recency-weighted spend shares, one per dimension (category, taste,
brand), over the dimension's ``group_values`` values with most revenue in the period plus one "(other)" column
for the rest (uncategorised lines included), so every block sums to 1 and weighs the same. A customer whose lines
are all free is profiled by weighted line counts instead.

The profiles are grouped by k-means (scikit-learn, ``random_state=0``, rows in customer id order, shares rounded
to 9 digits so that backends summing floats in another order give the same input): unlike a grouping by
(top category, top brand) it sees a customer who splits spend 50/50 as a profile of its own, and a group is
still explained by its centroid, i.e. the mean shares of its customers, of which the largest are reported.
Groups are numbered by size, largest first (ties by their smallest customer id), so the numbers are stable.
There are at most ``groups`` groups, fewer when there are fewer distinct profiles.
"""

from __future__ import annotations

from decimal import Decimal

import ibis
import ibis.expr.types as ir
import numpy as np

from kizuna.analytics.ctb import CENT, DIMENSIONS, CTBGroup, CTBSpec, GroupValue, _rows, first

OTHER = "(other)"
DESCRIBED = 3  # values named per dimension in a group's description
MIN_SHARE = 0.05  # a value below this mean share says nothing about the group


def _top_values(lines: ir.Table, dimension: str, n: int) -> list[str]:
    named = lines.filter(lines[dimension].notnull())
    per = named.group_by(named[dimension].name("value")).aggregate(revenue=named.amount.sum(), lines=named.count())
    per = first(per, [per.revenue.desc(), per.lines.desc(), per.value.asc()], n)
    return [row["value"] for row in _rows(per)]


def customer_groups(lines: ir.Table, spec: CTBSpec) -> list[CTBGroup]:
    """The customers of ``lines`` (from ``ctb.ctb_lines``) in at most ``spec.groups`` groups, largest first."""
    columns: list[tuple[str, str]] = []
    blocks: dict[str, dict[int, dict[str, tuple[float, float]]]] = {}
    for dimension in DIMENSIONS:
        top = _top_values(lines, dimension, spec.group_values)
        columns += [(dimension, value) for value in top] + [(dimension, OTHER)]
        bucket = ibis.ifelse(lines[dimension].isin(top), lines[dimension], OTHER) if top else ibis.literal(OTHER)
        per = lines.group_by(["customer_id", bucket.name("bucket")]).aggregate(
            w_spend=(lines.amount.cast("float64") * lines.weight).sum(), w_lines=lines.weight.sum()
        )
        block: dict[int, dict[str, tuple[float, float]]] = {}
        for row in _rows(per):
            block.setdefault(row["customer_id"], {})[row["bucket"]] = (row["w_spend"] or 0.0, row["w_lines"] or 0.0)
        blocks[dimension] = block
    spend_rows = _rows(lines.group_by("customer_id").aggregate(spend=lines.amount.sum()))
    spend = {row["customer_id"]: Decimal(row["spend"] or 0) for row in spend_rows}
    customers = sorted(spend)
    if not customers:
        return []
    index = {column: i for i, column in enumerate(columns)}
    matrix = np.zeros((len(customers), len(columns)))
    for r, customer in enumerate(customers):
        for dimension in DIMENSIONS:
            cells = blocks[dimension].get(customer, {})
            total_spend = sum(s for s, _ in cells.values())
            total_lines = sum(n for _, n in cells.values())
            for value, (s, n) in cells.items():
                share = s / total_spend if total_spend > 0 else (n / total_lines if total_lines > 0 else 0.0)
                matrix[r, index[(dimension, value)]] = share
    matrix = matrix.round(9)
    labels = _kmeans(matrix, spec.groups)
    members: dict[int, list[int]] = {}
    for r, label in enumerate(labels):
        members.setdefault(int(label), []).append(r)
    ordered = sorted(members.values(), key=lambda rows: (-len(rows), customers[rows[0]]))
    groups = []
    for number, rows in enumerate(ordered, start=1):
        centre = matrix[rows].mean(axis=0)
        described: dict[str, list[GroupValue]] = {}
        for dimension in DIMENSIONS:
            cells = [(float(centre[index[c]]), c[1]) for c in columns if c[0] == dimension]
            cells.sort(key=lambda cell: (-round(cell[0], 9), cell[1]))
            described[dimension] = [
                GroupValue(value=value, share=round(share, 9))
                for share, value in cells[:DESCRIBED]
                if share >= MIN_SHARE
            ]
        groups.append(
            CTBGroup(
                group=number,
                customers=len(rows),
                revenue=sum((spend[customers[r]] for r in rows), Decimal("0")).quantize(CENT),
                **described,
            )
        )
    return groups


def _kmeans(matrix: np.ndarray, groups: int) -> np.ndarray:
    distinct = len(np.unique(matrix, axis=0))
    k = min(groups, distinct)
    if k <= 1:
        return np.zeros(len(matrix), dtype=int)
    from sklearn.cluster import KMeans

    return KMeans(n_clusters=k, n_init=4, random_state=0).fit_predict(matrix)
