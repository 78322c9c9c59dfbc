"""Which customers are likely to buy a value (a brand, a category, a taste) next.

Scoring, for a target value ``v`` of a dimension, over the lines of the period (``ctb.ctb_lines``):

- Co-purchase: for every named value ``u``, ``p(v | u)`` = customers who bought both ``u`` and ``v`` / customers
  who bought ``u`` (``p(v | v) = 1``). The uncategorised bucket has no co-purchase (it is not one thing).
- A customer's score = ``Σ_u affinity(u) × p(v | u)``, with ``affinity`` the recency-weighted spend share (the
  count share for customers whose lines are all free). It reads as "the share of this customer's recent buying
  that goes to values whose buyers also buy v", between 0 and 1; a customer's own past purchases of ``v`` count
  fully, so a lapsed buyer ranks high. ``because`` names the value contributing most (other than ``v``).
- Customers who bought ``v`` within ``exclude_within_days`` days of the as-of day are left out (they just did;
  ``None`` keeps everyone); older buyers stay, flagged with ``days_since_bought``.
- Ranked by score (rounded to 12 digits), ties by customer id; customers with a zero score are not listed.
"""

from __future__ import annotations

import datetime as dt

import ibis
import ibis.expr.types as ir
from pydantic import BaseModel, Field

from kizuna.analytics import periods
from kizuna.analytics.ctb import DIGITS, CTBSpec, _affinity_expr, _rows, check_value, ctb_lines, first
from kizuna.analytics.engine import Store

CO_PURCHASES = 10  # co-purchased values listed to explain the scores


class LikelySpec(CTBSpec):
    value: str = Field(min_length=1, max_length=100, description="The value customers may buy next.")
    exclude_within_days: int | None = Field(
        default=90, ge=0, le=36500, description="Leave out customers who bought the value this recently."
    )
    limit: int = Field(default=100, ge=1, le=10000, description="Customers listed at most.")


class LikelyCustomer(BaseModel):
    customer_id: int
    score: float
    affinity: float = Field(description="The customer's own weighted share of the value (0 if never bought).")
    days_since_bought: int | None
    because: str | None = Field(description="The value (other than the target) contributing most to the score.")


class CoPurchase(BaseModel):
    value: str
    buyers: int
    probability: float = Field(description="Share of this value's buyers who also bought the target value.")


class LikelyResult(BaseModel):
    spec: LikelySpec
    as_of: dt.date
    currency: str
    buyers: int = Field(description="Customers who bought the value in the period.")
    co_purchases: list[CoPurchase]
    customers: list[LikelyCustomer]


def likely(store: Store, spec: LikelySpec) -> LikelyResult:
    """Customers ranked by how likely they are to buy ``spec.value`` next (see the module's scoring)."""
    lines, as_of, currency = ctb_lines(store, spec)
    # Read once (the check, the co-purchase counts, the scores and the reasons each read the lines again).
    with lines.cache() as lines:
        dimension = spec.dimension
        check_value(lines, dimension, spec.value)
        bought = lines.select("customer_id", value=lines[dimension]).filter(lambda t: t.value.notnull()).distinct()
        target = bought.filter(bought.value == spec.value).select(tid=bought.customer_id)
        both = bought.join(target, bought.customer_id == target.tid)
        with_target = {r["value"]: int(r["n"]) for r in _rows(both.group_by("value").aggregate(n=both.count()))}
        buyers = {r["value"]: int(r["n"]) for r in _rows(bought.group_by("value").aggregate(n=bought.count()))}
        # Few values (brands, categories): their probabilities are computed here and go back as one flat CASE,
        # which keeps the query shallow enough for SQLite's parser.
        probability = {v: round(with_target[v] / buyers[v], DIGITS) for v in sorted(with_target)}
        affinity = _affinity_expr(lines, dimension)
        share = ibis.coalesce(affinity.spend_share, affinity.count_share)
        p = ibis.cases(*[(affinity.value == v, prob) for v, prob in probability.items()], else_=0.0)
        scored = affinity.mutate(part=share * p, own=ibis.ifelse(affinity.value == spec.value, share, 0.0))
        per = scored.group_by("customer_id").aggregate(score=scored.part.sum().round(DIGITS), affinity=scored.own.sum())
        last = lines.filter(lines[dimension] == spec.value)
        last = last.group_by("customer_id").aggregate(last_at=last.at.max())
        end_of_day = periods.day_end(as_of)
        last = last.select(lid=last.customer_id, days_since_bought=((end_of_day - last.last_at) // 86400).cast("int64"))
        per = per.left_join(last, per.customer_id == last.lid).drop("lid")
        per = per.filter(per.score > 0)
        if spec.exclude_within_days is not None:
            per = per.filter(per.days_since_bought.isnull() | (per.days_since_bought > spec.exclude_within_days))
        ranked = _rows(first(per, [per.score.desc(), per.customer_id.asc()], spec.limit))
        because = _because(scored, spec.value, [row["customer_id"] for row in ranked])
        customers = [
            LikelyCustomer(
                customer_id=row["customer_id"],
                score=float(row["score"]),
                affinity=round(float(row["affinity"] or 0.0), DIGITS),
                days_since_bought=row["days_since_bought"],
                because=because.get(row["customer_id"]),
            )
            for row in ranked
        ]
        co = [(v, prob) for v, prob in probability.items() if v != spec.value and prob > 0]
        co.sort(key=lambda item: (-item[1], -buyers[item[0]], item[0]))
        return LikelyResult(
            spec=spec,
            as_of=as_of,
            currency=currency,
            buyers=buyers.get(spec.value, 0),
            co_purchases=[CoPurchase(value=v, buyers=buyers[v], probability=prob) for v, prob in co[:CO_PURCHASES]],
            customers=customers,
        )


def _because(scored: ir.Table, value: str, customer_ids: list[int]) -> dict[int, str]:
    """For each customer, the value other than ``value`` contributing most to the score (ties by name)."""
    if not customer_ids:
        return {}
    others = scored.filter(scored.customer_id.isin(customer_ids) & (scored.value != value) & (scored.part > 0))
    order = [others.part.round(DIGITS).desc(), others.value.asc()]
    others = others.mutate(pick=ibis.row_number().over(group_by=others.customer_id, order_by=order))
    return {r["customer_id"]: r["value"] for r in _rows(others.filter(others.pick == 0))}
