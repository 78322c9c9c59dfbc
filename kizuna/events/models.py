from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from kizuna.db import Base, BigId, JSONType, UTCDateTime, utcnow


class Event(Base):
    """A touchpoint (web, email, store, call, SNS...). Append-only: events are recorded, never edited."""

    __tablename__ = "events"
    __table_args__ = (
        Index("ix_events_customer_occurred", "customer_id", "occurred_at"),
        # Segment rules over everyone read one type's recent events (migration 0014).
        Index("ix_events_type_occurred", "type", "occurred_at", "customer_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    external_id: Mapped[str | None] = mapped_column(String(128), unique=True)
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    anonymous_id: Mapped[str | None] = mapped_column(String(200), index=True)
    # Kept as sent (Segment SDKs send "Order Completed": spaces, capitals, up to 200 characters).
    type: Mapped[str] = mapped_column(String(200), index=True)
    channel: Mapped[str] = mapped_column(String(32))
    occurred_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    received_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    source: Mapped[str | None] = mapped_column(String(64))
    properties: Mapped[dict] = mapped_column(JSONType, default=dict)
