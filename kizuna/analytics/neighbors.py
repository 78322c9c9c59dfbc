"""The daily refresh of product similarities (``recommend.neighbors_table``) into ``product_neighbors`` and
``product_popularity``, and which refresh the recommendations may read.

Computed over every customer's basket in the analytics' engine (for a SQLite store, in its child process) and
written by our own connection in one transaction that replaces the previous refresh's rows, so a reader sees the
old similarities or the new ones, never a mix. Recorded as a ``metric_runs`` row of kind ``neighbors``.
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from kizuna.analytics import periods
from kizuna.analytics.ctb import CTBSpec
from kizuna.analytics.engine import run_on_store
from kizuna.analytics.models import MetricRun
from kizuna.analytics.recommend import BASKET, NEIGHBORS, neighbors_table
from kizuna.analytics.spend import default_currency
from kizuna.db import transaction, utcnow

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
        _copy(cursor, conn.dialect.name, "product_neighbors", ("product_id", "neighbor_id", "cosine"), neighbors)
        _copy(cursor, conn.dialect.name, "product_popularity", ("product_id", "buyers"), buyers)
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


def _copy(cursor: Any, dialect: str, table: str, columns: tuple[str, ...], rows: Any) -> None:
    values = list(zip(*(rows.column(c).to_pylist() for c in columns), strict=True))
    if not values:
        return
    if dialect == "postgresql":
        with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
            for row in values:
                copy.write_row(row)
    else:
        cursor.executemany(
            f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})", values
        )


def current(session: Session) -> MetricRun | None:
    """The latest neighbours refresh, if it was made in today's default currency (what recommendations use)."""
    run = session.scalars(
        select(MetricRun).where(MetricRun.kind == KIND, MetricRun.finished_at.is_not(None))
        .order_by(MetricRun.id.desc()).limit(1)
    ).first()  # fmt: skip
    if run is None or run.details.get("currency") != default_currency(None):
        return None
    return run
