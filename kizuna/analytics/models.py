"""Per-customer metrics, persisted: the one place lists, exports, segments and the 360 page read RFM scores,
decile, CLV, churn risk and order aggregates from, so every screen shows the same numbers with the time they were
computed. ``metric_runs`` records each computation (what, as of when, how long, how many rows changed)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from sqlalchemy import Float, ForeignKey, Index, Integer, SmallInteger, String
from sqlalchemy.orm import Mapped, mapped_column

from kizuna.db import Base, BigId, JSONType, Money, UTCDateTime, utcnow


class CustomerMetrics(Base):
    """One row per active customer with at least one counted order in the metrics currency.

    Recency is kept as ``last_order_at`` (not days) so the row stays true from one day to the next; readers
    compute days from it. CLV columns are filled by the CLV run and stay empty until one has run.
    """

    __tablename__ = "customer_metrics"
    __table_args__ = (
        Index("ix_customer_metrics_segment", "rfm_segment"),
        Index("ix_customer_metrics_decile", "decile"),
        Index("ix_customer_metrics_computed_at", "computed_at"),
    )

    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"), primary_key=True)
    currency: Mapped[str] = mapped_column(String(3))
    order_count: Mapped[int] = mapped_column(Integer)
    total_spend: Mapped[Decimal] = mapped_column(Money)
    first_order_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    last_order_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    r: Mapped[int] = mapped_column(SmallInteger)
    f: Mapped[int] = mapped_column(SmallInteger)
    m: Mapped[int] = mapped_column(SmallInteger)
    rfm_segment: Mapped[str] = mapped_column(String(32))
    decile: Mapped[int] = mapped_column(SmallInteger)
    top_category: Mapped[str | None] = mapped_column(String(100))
    expected_purchases: Mapped[float | None] = mapped_column(Float)
    p_alive: Mapped[float | None] = mapped_column(Float)
    churn_risk: Mapped[float | None] = mapped_column(Float)
    clv: Mapped[Decimal | None] = mapped_column(Money)
    computed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    clv_computed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class MetricRun(Base):
    """A computation of the persisted metrics: ``kind`` is ``scores`` (RFM, decile, aggregates) or ``clv``."""

    __tablename__ = "metric_runs"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), index=True)
    started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    customers: Mapped[int] = mapped_column(Integer, default=0)
    changed: Mapped[int] = mapped_column(Integer, default=0)
    seconds: Mapped[float] = mapped_column(Float, default=0.0)
    # The spec the run used (currency, bins, as-of...) and, for CLV, the fitted parameters.
    details: Mapped[dict] = mapped_column(JSONType, default=dict)


class ProductNeighbor(Base):
    """One of a product's most similar products by co-purchase (``analytics.recommend``), kept by the daily
    refresh so that recommendations for an email read a few rows instead of every order line."""

    __tablename__ = "product_neighbors"

    product_id: Mapped[int] = mapped_column(ForeignKey("products.id", ondelete="CASCADE"), primary_key=True)
    neighbor_id: Mapped[int] = mapped_column(ForeignKey("products.id", ondelete="CASCADE"), primary_key=True)
    cosine: Mapped[float] = mapped_column(Float)


class ProductPopularity(Base):
    """How many customers bought a product, as the same refresh counted them (the "popular" fill)."""

    __tablename__ = "product_popularity"

    product_id: Mapped[int] = mapped_column(ForeignKey("products.id", ondelete="CASCADE"), primary_key=True)
    buyers: Mapped[int] = mapped_column(Integer)
