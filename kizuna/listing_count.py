"""How many rows a list has: exact when that is cheap, "more than 10,000" otherwise, exact on demand."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from sqlalchemy import Select, func, select, union

from kizuna.listing import FilterSet, search_branches


class Count(NamedTuple):
    """How many rows a list has: exact, or at least ``value`` when counting stopped there."""

    value: int
    exact: bool


# Counting stops here unless the exact count is asked for: a count reads every matching row, and the first
# 10,001 are cheap on 1M customers (the default list reads them from the (status, id) index) while all are not.
COUNT_CAP = 10_000


def count_rows(
    session: Any,
    filterset: FilterSet,
    query: Select[Any],
    params: Mapping[str, Any],
    *,
    cap: int | None = COUNT_CAP,
) -> Count:
    """The number of rows of the filtered list; above ``cap`` only "more than cap" unless ``cap`` is None."""
    q = params.get("q")
    if q and filterset.search_clauses is not None:
        return _count_search(session, filterset, query, params, str(q), cap)
    total = _count(session, filterset, query, params, cap)
    if cap is not None and total > cap:
        return Count(cap, exact=False)
    return Count(total, exact=True)


def _count_search(
    session: Any, filterset: FilterSet, query: Select[Any], params: Mapping[str, Any], q: str, cap: int | None
) -> Count:
    """A search's count, one branch per search clause (each from its own index, with the list's other filters),
    at most ``cap + 1`` rows per branch.

    A branch that reaches cap + 1 proves there are more than cap; otherwise no branch was cut short, so their
    distinct ids are all the matches. A search that matches few rows is counted from its indexes instead of
    by testing rows in the list's order (which reads every row when nothing matches); one that matches many
    reads cap + 1 of them from one index.
    """
    each = None if cap is None else cap + 1
    sizes = []
    branches = search_branches(filterset, query, params, each=each)
    for branch in branches:
        size = int(session.scalar(select(func.count()).select_from(branch.subquery())))
        if cap is not None and size > cap:
            return Count(cap, exact=False)
        sizes.append(size)
    filled = [branch for branch, size in zip(branches, sizes, strict=True) if size]
    if len(filled) <= 1:
        return Count(sum(sizes), exact=True)
    # Several clauses match (a name and an e-mail both starting so): a customer may be in more than one.
    parts = [branch.subquery() for branch in filled]
    matches = union(*(select(part.c.id) for part in parts)).subquery()
    return Count(int(session.scalar(select(func.count()).select_from(matches))), exact=True)


def _count(session: Any, filterset: FilterSet, query: Select[Any], params: Mapping[str, Any], cap: int | None) -> int:
    ids = filterset.apply(query, params, by_ids=True).with_only_columns(filterset.model.id)
    if cap is not None:
        ids = ids.limit(cap + 1)
    return int(session.scalar(select(func.count()).select_from(ids.subquery())))
