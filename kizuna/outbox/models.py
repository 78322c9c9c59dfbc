"""Outbox tables: messages (what happened, written with the change) and deliveries (one per subscriber)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from kizuna.db import Base, BigId, JSONType, UTCDateTime, utcnow

ORIGINS = ("api", "ui", "import", "tracking", "cli", "worker", "system", "chat")


class OutboxMessage(Base):
    """A domain event written in the transaction that caused it; never changed afterwards.

    ``occurred_at`` is when the thing happened in the world (an imported order's date), ``created_at`` when
    Kizuna learnt of it, and ``origin`` where the change came from, so that a subscriber can tell live
    activity from backfilled history.
    """

    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    topic: Mapped[str] = mapped_column(String(64), index=True)
    payload: Mapped[dict] = mapped_column(JSONType, default=dict)
    customer_id: Mapped[int | None] = mapped_column(index=True)
    origin: Mapped[str] = mapped_column(String(16), default="system")
    occurred_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    available_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class OutboxDelivery(Base):
    """One subscriber's (or one of its targets') handling of one message, with its own retries and lease."""

    __tablename__ = "outbox_deliveries"
    __table_args__ = (
        UniqueConstraint("message_id", "subscriber", "target"),
        # The claim query walks pending rows in due order.
        Index("ix_outbox_deliveries_due", "status", "available_at", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("outbox.id", ondelete="CASCADE"))
    subscriber: Mapped[str] = mapped_column(String(100))
    # '' for the subscriber itself; a webhook id, a journey id ... for the targets it fans out to.
    target: Mapped[str] = mapped_column(String(200), default="")
    status: Mapped[str] = mapped_column(String(12), default="pending")  # pending | done | dead
    attempts: Mapped[int] = mapped_column(default=0)
    available_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    locked_by: Mapped[str | None] = mapped_column(String(100))
    locked_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
