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
    wide: dict[str, ir.Table] = {}
    for dimension in DIMENSIONS:
        top = _top_values(lines, dimension, spec.group_values)
        block = [*top, OTHER]
        offset = len(columns)
        columns += [(dimension, value) for value in block]
        bucket = ibis.ifelse(lines[dimension].isin(top), lines[dimension], OTHER) if top else ibis.literal(OTHER)
        per = lines.group_by(["customer_id", bucket.name("bucket")]).aggregate(
            w_spend=(lines.amount.cast("float64") * lines.weight).sum(), w_lines=lines.weight.sum()
        )
        whole = ibis.window(group_by=per.customer_id)
        total_spend, total_lines = per.w_spend.sum().over(whole), per.w_lines.sum().over(whole)
        share = ibis.ifelse(
            total_spend > 0,
            per.w_spend / total_spend,
            ibis.ifelse(total_lines > 0, per.w_lines / total_lines, 0.0),
        )
        per = per.mutate(share=share)
        # One column per value, one row per customer: the matrix leaves the engine as arrays, not as a Python
        # object per customer and value (18 million of them at a million customers).
        pivot = per.group_by("customer_id").aggregate(
            **{
                f"c{offset + n}": ibis.ifelse(per.bucket == value, per.share, 0.0).sum()
                for n, value in enumerate(block)
            }
        )
        wide[dimension] = pivot
    spend = lines.group_by("customer_id").aggregate(spend=lines.amount.sum())
    joined = spend
    for dimension in DIMENSIONS:
        block_table = wide[dimension]
        joined = joined.left_join(block_table, joined.customer_id == block_table.customer_id).drop("customer_id_right")
    result = joined.order_by("customer_id").to_pyarrow()
    if result.num_rows == 0:
        return []
    customers = result.column("customer_id").to_pylist()
    spend_of = result.column("spend").to_pylist()
    names = [name for name in result.column_names if name.startswith("c") and name[1:].isdigit()]
    names.sort(key=lambda name: int(name[1:]))
    matrix = np.column_stack([result.column(name).fill_null(0.0).to_numpy() for name in names])
    index = {column: i for i, column in enumerate(columns)}
    spend = {customer: Decimal(spent or 0) for customer, spent in zip(customers, spend_of, strict=True)}
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
