"""How many rows a list has: exact when that is cheap, "more than 10,000" otherwise, exact on demand."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from sqlalchemy import Select, func, select, union_all

from kizuna.listing import FilterSet, capped_search_ids


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
    if cap is not None and q and filterset.search_clauses is not None:
        # Candidates from each search index, at most cap + 1 from each: read from indexes, never the table.
        rest = {k: v for k, v in params.items() if k != "q"}
        candidates = capped_search_ids(filterset, str(q), cap + 1)
        total = _count(session, filterset, query.where(filterset.model.id.in_(candidates)), rest, cap)
        if total > cap:
            return Count(cap, exact=False)  # cap + 1 rows among a part of the matches: there are more than cap
        whole = session.scalar(select(func.count()).select_from(candidates.subquery()))
        if whole <= cap:
            return Count(total, exact=True)  # no index was cut short: these were all the matches
        # A broad search narrowed by other filters to a few: counted row by row (rare, and slower).
    elif q and filterset.search_clauses is not None:
        # Every match, from the search's indexes (the exact count asked for).
        rest = {k: v for k, v in params.items() if k != "q"}
        matches = union_all(*(select(filterset.model.id).where(c) for c in filterset.search_clauses(str(q))))
        return Count(_count(session, filterset, query.where(filterset.model.id.in_(matches)), rest, None), True)
    total = _count(session, filterset, query, params, cap)
    if cap is not None and total > cap:
        return Count(cap, exact=False)
    return Count(total, exact=True)


def _count(session: Any, filterset: FilterSet, query: Select[Any], params: Mapping[str, Any], cap: int | None) -> int:
    ids = filterset.apply(query, params, by_ids=True).with_only_columns(filterset.model.id)
    if cap is not None:
        ids = ids.limit(cap + 1)
    return int(session.scalar(select(func.count()).select_from(ids.subquery())))
