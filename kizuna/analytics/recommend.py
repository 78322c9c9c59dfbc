"""A few products to recommend to each customer, from what customers buy together (item-item co-occurrence).

- Purchases: which products each customer bought (yes/no) in the counted lines of the period (``ctb.ctb_lines``:
  counted orders, lines of a known product).
- Similarity of products ``i`` and ``j``: cosine of their buyer sets, ``n_ij / sqrt(n_i × n_j)`` (``n_ij``
  customers bought both). Cosine rather than lift: lift rewards pairs of rare products bought once together.
  Only a customer's ``BASKET`` most recently bought products count towards similarity: a customer who bought
  thousands of products bought everything together, which says nothing, and their pairs alone (millions) made a
  store with a few such customers take minutes (``benchmarks/analytics_at_size.py``).
- A customer's score for a product ``j`` they have not bought = ``Σ`` over the products ``i`` they bought of
  ``similarity(i, j)``; ``because`` names the bought product most similar to ``j``. Products they already bought
  are never recommended, nor inactive products.
- When co-purchases give fewer than ``k`` products (a new customer, a rare basket), the list is filled with the
  products most customers bought (``reason`` "popular"), so an email always has something to show.
- Order: score (rounded to 12 digits) descending, then product id: the same lists on every run and backend.

Similarities over the whole store are one sparse matrix product (customers × products, transposed by itself)
with scipy, computed in blocks of products so memory stays bounded for large catalogues. The daily refresh keeps
each product's ``NEIGHBORS`` most similar products in ``product_neighbors`` (``neighbors.refresh_neighbors``);
email templates and the API read them with the customers' own purchases by index
(``neighbors.recommendations_from_store``), and compute them on the fly only until a first refresh.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Literal

import ibis
import ibis.expr.types as ir
import numpy as np
import pyarrow as pa
from pydantic import BaseModel, Field

from kizuna.analytics.ctb import DIGITS, CTBSpec, _rows, ctb_lines
from kizuna.analytics.engine import Store

# Products per customer (the most recently bought) that count towards similarity.
BASKET = 50
# Neighbours kept per product by the daily refresh: recommendations sum the similarities of a customer's
# products, and a product's hundredth neighbour adds little to any list of ten.
NEIGHBORS = 100
# Cells of one block of the co-occurrence product (block of products × all products): about 200 MB of int64.
_BLOCK_CELLS = 25_000_000


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


@dataclass
class Similarity:
    """Each product's similar products (``neighbors[i]``: ``(j, cosine, cosine rounded to DIGITS)``, the rounded
    value being what ranks) and its buyers (the popularity)."""

    neighbors: dict[int, list[tuple[int, float, float]]] = field(default_factory=dict)
    buyers: dict[int, int] = field(default_factory=dict)
    customers: int = 0


def _bought(store: Store, spec: CTBSpec) -> ir.Table:
    """``customer_id, product_id, last``: each product a customer bought in the period, and when last."""
    lines, _, _ = ctb_lines(store, spec)
    known = lines.filter(lines.product_id.notnull())
    return known.group_by(["customer_id", "product_id"]).aggregate(last=known.at.max())


def baskets(store: Store, spec: CTBSpec) -> ir.Table:
    """``customer_id, product_id``: each customer's ``BASKET`` most recently bought products (ties by id)."""
    bought = _bought(store, spec)
    recent = ibis.row_number().over(group_by=bought.customer_id, order_by=[bought["last"].desc(), bought.product_id])
    ranked = bought.mutate(pos=recent)
    return ranked.filter(ranked.pos < BASKET).select("customer_id", "product_id")


def similarity(rows: pa.Table, items: set[int] | None = None, keep: int | None = None) -> Similarity:
    """Cosine similarities from ``rows`` (``customer_id, product_id``, one row per basket entry): for the
    products ``items`` (all when None), their ``keep`` most similar products (all with a co-buyer when None),
    best first, ties by product id."""
    from scipy import sparse

    found = Similarity()
    if rows.num_rows == 0:
        return found
    customer = rows.column("customer_id").to_numpy()
    product = rows.column("product_id").to_numpy()
    products, column = np.unique(product, return_inverse=True)
    _, row = np.unique(customer, return_inverse=True)
    found.customers = int(row.max()) + 1
    x = sparse.csr_matrix(
        (np.ones(len(row), dtype=np.int64), (row, column)), shape=(found.customers, len(products))
    ).tocsc()
    n = np.asarray(x.sum(axis=0)).ravel()
    found.buyers = dict(zip(products.tolist(), n.tolist(), strict=True))
    wanted = np.arange(len(products)) if items is None else np.flatnonzero(np.isin(products, list(items)))
    xt = x.T.tocsr()
    step = max(1, _BLOCK_CELLS // max(1, len(products)))
    for first in range(0, len(wanted), step):
        block = wanted[first : first + step]
        co = (xt[block] @ x).tocsr()  # co[b, j]: customers who bought both block[b] and j
        for b, i in enumerate(block.tolist()):
            cells = slice(co.indptr[b], co.indptr[b + 1])
            j, nij = co.indices[cells], co.data[cells]
            others = j != i
            j, nij = j[others], nij[others]
            if not len(j):
                continue
            # The same arithmetic as SQL's nij / sqrt(ni * nj), in doubles.
            cosine = nij.astype(np.float64) / np.sqrt((n[i] * n[j]).astype(np.float64))
            rounded = np.round(cosine, DIGITS)
            if keep is not None and len(j) > keep:
                # Only the best ``keep`` are sorted: those at or above the keep-th best value (ties included).
                bar = np.partition(rounded, len(rounded) - keep)[len(rounded) - keep]
                best = rounded >= bar
                j, cosine, rounded = j[best], cosine[best], rounded[best]
            order = np.lexsort((products[j], -rounded))
            if keep is not None:
                order = order[:keep]
            found.neighbors[int(products[i])] = list(
                zip(products[j][order].tolist(), cosine[order].tolist(), rounded[order].tolist(), strict=True)
            )
    return found


def neighbors_table(store: Store, spec: CTBSpec) -> tuple[pa.Table, pa.Table, int]:
    """What the daily refresh stores: ``(product_id, neighbor_id, cosine)`` for every product's ``NEIGHBORS``
    most similar, ``(product_id, buyers)``, and the number of customers counted."""
    found = similarity(baskets(store, spec).to_pyarrow(), keep=NEIGHBORS)
    pairs = [(i, j, c) for i, near in found.neighbors.items() for j, c, _ in near]
    neighbors = pa.table(
        {
            "product_id": pa.array([p[0] for p in pairs], pa.int64()),
            "neighbor_id": pa.array([p[1] for p in pairs], pa.int64()),
            "cosine": pa.array([p[2] for p in pairs], pa.float64()),
        }
    )
    buyers = pa.table(
        {"product_id": pa.array(list(found.buyers), pa.int64()), "buyers": pa.array(list(found.buyers.values()))}
    )
    return neighbors, buyers, found.customers


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
    """Up to ``k`` products for each of ``customer_ids`` (every id is a key; ranked best first), computing the
    similarities of their products now (``neighbors.recommendations_from_store`` reads the daily refresh's)."""
    ids = sorted(set(customer_ids))
    if not ids or k < 1:
        return {cid: [] for cid in ids}
    spec = CTBSpec(start=start, end=end, currency=currency)
    bought = _bought(store, spec)
    owned_by: dict[int, list[tuple[int, int]]] = {cid: [] for cid in ids}
    asked = ibis.memtable(pa.table({"asked": pa.array(ids, pa.int64())}))
    theirs = bought.join(asked, bought.customer_id == asked.asked)
    for row in _rows(theirs.select("customer_id", "product_id", "last")):
        owned_by[row["customer_id"]].append((row["last"], row["product_id"]))
    items = {i for recent in recent_baskets(owned_by).values() for i in recent}
    # Each product's NEIGHBORS best, as the daily refresh keeps them: the same lists either way.
    found = similarity(baskets(store, spec).to_pyarrow(), items=items, keep=NEIGHBORS)
    active = {row["id"]: row for row in _rows(_active_products(store))}
    return rank(ids, k, owned_by, found, active)


def recent_baskets(owned_by: dict[int, list[tuple[int, int]]]) -> dict[int, list[int]]:
    """Each customer's ``BASKET`` most recently bought products (``(last bought, epoch seconds; product id)``
    pairs), in product id order: what their score sums over, as similarity counts them (``baskets``)."""
    return {
        cid: sorted(pid for _, pid in sorted(bought, key=lambda b: (-b[0], b[1]))[:BASKET])
        for cid, bought in owned_by.items()
    }


def rank(
    ids: list[int],
    k: int,
    owned_by: dict[int, list[tuple[int, int]]],
    found: Similarity,
    active: dict[int, dict[str, Any]],
) -> dict[int, list[Recommendation]]:
    """Each customer's list from what they bought (``(last bought, product id)`` pairs), the similarities and the
    products still sold (``active``: id → ``id, sku, name, category, taste, brand``). A customer's score sums
    over their ``BASKET`` most recent products (a bounded cost per customer, and their current taste); nothing
    they ever bought is recommended."""
    result: dict[int, list[Recommendation]] = {cid: [] for cid in ids}
    recent_by = recent_baskets(owned_by)
    for cid in ids:
        owned = {pid for _, pid in owned_by.get(cid, [])}
        score: dict[int, float] = defaultdict(float)
        because: dict[int, tuple[float, int]] = {}
        for i in recent_by.get(cid, []):
            for j, cosine, rounded in found.neighbors.get(i, ()):
                if j in owned or j not in active:
                    continue
                score[j] += cosine
                # The bought product most like j: highest similarity, then lowest id (i runs in id order).
                if j not in because or rounded > because[j][0]:
                    because[j] = (rounded, i)
        ranked = sorted(((round(s, DIGITS), j) for j, s in score.items()), key=lambda p: (-p[0], p[1]))
        result[cid] = [_recommendation(active[j], total, "co_purchase", because[j][1]) for total, j in ranked[:k]]
    short = [cid for cid in ids if len(result[cid]) < k]
    if short:
        popular = sorted((p for p in active if found.buyers.get(p)), key=lambda p: (-found.buyers[p], p))
        for cid in short:
            taken = {pid for _, pid in owned_by.get(cid, [])} | {r.product_id for r in result[cid]}
            for product_id in popular:
                if len(result[cid]) >= k:
                    break
                if product_id not in taken:
                    result[cid].append(_recommendation(active[product_id], 0.0, "popular", None))
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
