"""The daily refresh of product similarities (``recommend.neighbors_table``) into ``product_neighbors`` and
``product_popularity``, and which refresh the recommendations may read.

Computed over every customer's basket in the analytics' engine (for a SQLite store, in its child process) and
written by our own connection in one transaction that replaces the previous refresh's rows, so a reader sees the
old similarities or the new ones, never a mix. Recorded as a ``metric_runs`` row of kind ``neighbors``.
"""

from __future__ import annotations

import datetime as dt
import math
import time
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from kizuna.analytics import periods
from kizuna.analytics.bulk import insert_arrow
from kizuna.analytics.ctb import DIGITS, CTBSpec
from kizuna.analytics.engine import run_on_store
from kizuna.analytics.models import MetricRun, ProductNeighbor, ProductPopularity
from kizuna.analytics.recommend import (
    BASKET,
    NEIGHBORS,
    Recommendation,
    Similarity,
    neighbors_table,
    rank,
    recent_baskets,
)
from kizuna.analytics.spend import default_currency
from kizuna.catalog.models import Product
from kizuna.customers.models import Customer
from kizuna.db import transaction, utcnow
from kizuna.orders.models import Order, OrderLine
from kizuna.orders.spend import SPEND_STATUSES

KIND = "neighbors"


def refresh_neighbors(engine: Engine) -> MetricRun:
    """Recompute every product's similar products from the default period and currency, and store them."""
    started, started_at = time.perf_counter(), utcnow()
    currency = default_currency(None)
    url = engine.url.render_as_string(hide_password=False)
    neighbors, buyers, customers = run_on_store(neighbors_table, CTBSpec(), database_url=url)
    with transaction(engine) as session:
        conn = session.connection()
        conn.exec_driver_sql("DELETE FROM product_neighbors")
        conn.exec_driver_sql("DELETE FROM product_popularity")
        cursor = conn.connection.driver_connection.cursor()
        for table, rows in (("product_neighbors", neighbors), ("product_popularity", buyers)):
            insert_arrow(cursor, conn.dialect.name, table, rows)
        run = MetricRun(
            kind=KIND,
            started_at=started_at,
            finished_at=utcnow(),
            customers=customers,
            changed=neighbors.num_rows,
            seconds=time.perf_counter() - started,
            details={
                "as_of": periods.today().isoformat(),
                "currency": currency,
                "products": buyers.num_rows,
                "basket": BASKET,
                "kept": NEIGHBORS,
            },
        )
        session.add(run)
    return run


def current(session: Session) -> MetricRun | None:
    """The latest neighbours refresh, if it was made in today's default currency (what recommendations use)."""
    run = session.scalars(
        select(MetricRun).where(MetricRun.kind == KIND, MetricRun.finished_at.is_not(None))
        .order_by(MetricRun.id.desc()).limit(1)
    ).first()  # fmt: skip
    if run is None or run.details.get("currency") != default_currency(None):
        return None
    return run


_CHUNK = 500


def recommendations_from_store(session: Session, customer_ids: list[int], k: int) -> dict[int, list[Recommendation]]:
    """``recommend.recommendations`` for the default period and currency from the daily refresh's similarities,
    read by index from the store: the customers' counted products (orders by customer, their lines by order),
    their products' neighbours, the best sellers and the products still sold. Milliseconds where the analytics
    engine reads every order line (through the SQLite scanner, which cannot use an index).

    The counted products are ``ctb.ctb_lines``' rule written for the store (``spend.counted_orders``: counted
    statuses, the currency, before the end of today, not a refund, an active customer; then lines of a known
    product and not negative); ``tests/analytics/test_neighbors.py`` compares the two on the cases each rule
    leaves out."""
    ids = sorted(set(customer_ids))
    if not ids or k < 1:
        return {cid: [] for cid in ids}
    end = dt.datetime.fromtimestamp(periods.day_end(periods.today()), dt.UTC)
    o, line, c = Order.__table__, OrderLine.__table__, Customer.__table__
    owned_by: dict[int, list[tuple[int, int]]] = {cid: [] for cid in ids}
    for chunk in _chunks(ids):
        counted = (
            select(o.c.customer_id, line.c.product_id, func.max(o.c.ordered_at))
            .select_from(o.join(line, line.c.order_id == o.c.id).join(c, c.c.id == o.c.customer_id))
            .where(
                o.c.customer_id.in_(chunk),
                o.c.status.in_(sorted(SPEND_STATUSES)),
                o.c.currency == default_currency(None),
                o.c.ordered_at < end,
                o.c.total_amount >= 0,
                c.c.status == "active",
                line.c.product_id.is_not(None),
                line.c.amount >= 0,
            )
            .group_by(o.c.customer_id, line.c.product_id)
        )
        for customer_id, product_id, last in session.execute(counted):
            # Whole seconds, as the analytics' epoch_seconds: the same ties, broken by product id.
            owned_by[customer_id].append((math.floor(_utc(last).timestamp()), product_id))
    found = Similarity()
    near = ProductNeighbor.__table__
    for chunk in _chunks(sorted({i for recent in recent_baskets(owned_by).values() for i in recent})):
        rows = session.execute(
            select(near.c.product_id, near.c.neighbor_id, near.c.cosine).where(near.c.product_id.in_(chunk))
        )
        for i, j, cosine in rows:
            found.neighbors.setdefault(i, []).append((j, cosine, round(cosine, DIGITS)))
    # The best sellers still sold, as many as a customer could need to fill a list.
    wanted = k + max(len(owned) for owned in owned_by.values())
    p = Product.__table__
    popular = session.execute(
        select(ProductPopularity.product_id, ProductPopularity.buyers)
        .join(p, p.c.id == ProductPopularity.product_id)
        .where(p.c.is_active.is_(True))
        .order_by(ProductPopularity.buyers.desc(), ProductPopularity.product_id)
        .limit(wanted)
    )
    found.buyers = dict(popular.all())
    shown = set(found.buyers) | {j for near_list in found.neighbors.values() for j, _, _ in near_list}
    active: dict[int, dict[str, Any]] = {}
    columns = (p.c.id, p.c.sku, p.c.name, p.c.category, p.c.taste, p.c.brand)
    for chunk in _chunks(sorted(shown)):
        for row in session.execute(select(*columns).where(p.c.id.in_(chunk), p.c.is_active.is_(True))):
            active[row.id] = dict(row._mapping)
    return rank(ids, k, owned_by, found, active)


def _utc(at: dt.datetime) -> dt.datetime:
    return at if at.tzinfo is not None else at.replace(tzinfo=dt.UTC)


def _chunks(values: list[int]) -> list[list[int]]:
    return [values[n : n + _CHUNK] for n in range(0, len(values), _CHUNK)]
