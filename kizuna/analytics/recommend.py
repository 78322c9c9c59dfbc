"""A few products to recommend to each customer, from what customers buy together (item-item co-occurrence).

- Purchases: which products each customer bought (yes/no) in the counted lines of the period (``ctb.ctb_lines``:
  counted orders, lines of a known product).
- Similarity of products ``i`` and ``j``: cosine of their buyer sets, ``n_ij / sqrt(n_i × n_j)`` (``n_ij``
  customers bought both). Cosine rather than lift: lift rewards pairs of rare products bought once together.
- A customer's score for a product ``j`` they have not bought = ``Σ`` over the products ``i`` they bought of
  ``similarity(i, j)``; ``because`` names the bought product most similar to ``j``. Products they already bought
  are never recommended, nor inactive products.
- When co-purchases give fewer than ``k`` products (a new customer, a rare basket), the list is filled with the
  products most customers bought (``reason`` "popular"), so an email always has something to show.
- Order: score (rounded to 12 digits) descending, then product id: the same lists on every run and backend.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

import ibis
import ibis.expr.types as ir
from pydantic import BaseModel, Field

from kizuna.analytics.ctb import DIGITS, CTBSpec, _rows, ctb_lines, first
from kizuna.analytics.engine import Store


class Recommendation(BaseModel):
    product_id: int
    sku: str
    name: str
    category: str | None
    taste: str | None
    brand: str | None
    score: float = Field(description="Sum of the product's similarity to the customer's products (0 if popular).")
    reason: Literal["co_purchase", "popular"]
    because_product_id: int | None = Field(description="The customer's product most like this one.")


class CustomerRecommendations(BaseModel):
    customer_id: int
    products: list[Recommendation]


def _active_products(store: Store) -> ir.Table:
    products = store.products()
    # Read beside the shared accessor: only recommending cares whether a product is still sold.
    raw = store.table("products")
    # A boolean on PostgreSQL, an integer 0/1 in SQLite as some engines read it.
    flag = raw.is_active if raw.is_active.type().is_boolean() else raw.is_active != 0
    active = raw.filter(flag).select(aid=raw.id)
    return products.join(active, products.id == active.aid).drop("aid")


def recommendations(
    store: Store,
    customer_ids: list[int],
    k: int = 5,
    *,
    start: dt.date | None = None,
    end: dt.date | None = None,
    currency: str | None = None,
) -> dict[int, list[Recommendation]]:
    """Up to ``k`` products for each of ``customer_ids`` (every id is a key; ranked best first)."""
    ids = sorted(set(customer_ids))
    if not ids or k < 1:
        return {cid: [] for cid in ids}
    lines, _, _ = ctb_lines(store, CTBSpec(start=start, end=end, currency=currency))
    bought = lines.filter(lines.product_id.notnull()).select("customer_id", "product_id").distinct()
    counts = bought.group_by("product_id").aggregate(n=bought.count())
    mine = bought.filter(bought.customer_id.isin(ids)).select(cid=bought.customer_id, i=bought.product_id)
    items = mine.select("i").distinct()
    a = bought.view()
    b = bought.view()
    buyers_of_mine = a.join(items, a.product_id == items.i).select(ac=a.customer_id, i=items.i)
    pairs = buyers_of_mine.join(b, buyers_of_mine.ac == b.customer_id).select(i=buyers_of_mine.i, j=b.product_id)
    pairs = pairs.filter(pairs.i != pairs.j)
    pairs = pairs.group_by(["i", "j"]).aggregate(nij=pairs.count())
    ni = counts.select(pi=counts.product_id, ni=counts.n)
    nj = counts.select(pj=counts.product_id, nj=counts.n)
    sim = pairs.join(ni, pairs.i == ni.pi).join(nj, pairs.j == nj.pj)
    sim = sim.select("i", "j", cosine=sim.nij.cast("float64") / (sim.ni * sim.nj).cast("float64").sqrt())
    scored = mine.join(sim, mine.i == sim.i).select(cid=mine.cid, i=mine.i, j=sim.j, cosine=sim.cosine)
    owned = mine.select(oc=mine.cid, oj=mine.i)
    scored = scored.anti_join(owned, (scored.cid == owned.oc) & (scored.j == owned.oj))
    active = _active_products(store)
    active_ids = active.select(act=active.id)
    scored = scored.join(active_ids, scored.j == active_ids.act).drop("act")
    best_reason = ibis.row_number().over(
        group_by=[scored.cid, scored.j], order_by=[scored.cosine.round(DIGITS).desc(), scored.i.asc()]
    )
    scored = scored.mutate(pick=best_reason)
    because = scored.filter(scored.pick == 0).select(bc=scored.cid, bj=scored.j, because=scored.i)
    per = scored.group_by(["cid", "j"]).aggregate(score=scored.cosine.sum().round(DIGITS))
    per = per.join(because, (per.cid == because.bc) & (per.j == because.bj)).drop("bc", "bj")
    per = per.mutate(rank=ibis.row_number().over(group_by=per.cid, order_by=[per.score.desc(), per.j.asc()]))
    per = per.filter(per["rank"] < k)
    per = per.join(active, per.j == active.id)
    result: dict[int, list[Recommendation]] = {cid: [] for cid in ids}
    for row in _rows(per.order_by(["cid", "rank"])):
        result[row["cid"]].append(_recommendation(row, row["score"], "co_purchase", row["because"]))
    owned_by = {cid: set() for cid in ids}
    for row in _rows(mine):
        owned_by[row["cid"]].add(row["i"])
    short = [cid for cid in ids if len(result[cid]) < k]
    if short:
        popular = active.join(counts, active.id == counts.product_id)
        cap = k + max(len(owned_by[cid]) for cid in short)
        popular = first(popular, [popular.n.desc(), popular.id.asc()], cap)
        ranked = _rows(popular)
        for cid in short:
            taken = owned_by[cid] | {r.product_id for r in result[cid]}
            for row in ranked:
                if len(result[cid]) >= k:
                    break
                if row["id"] not in taken:
                    result[cid].append(_recommendation(row, 0.0, "popular", None))
    return result


def _recommendation(row: dict, score: float, reason: str, because: int | None) -> Recommendation:
    return Recommendation(
        product_id=row["id"],
        sku=row["sku"],
        name=row["name"],
        category=row["category"],
        taste=row["taste"],
        brand=row["brand"],
        score=float(score),
        reason=reason,  # type: ignore[arg-type]
        because_product_id=because,
    )
