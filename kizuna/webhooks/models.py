"""Subscriptions (an endpoint's choice of events) and the delivery log (one row per event and subscription)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from kizuna.db import Base, BigId, JSONType, UTCDateTime, utcnow


class WebhookSubscription(Base):
    """An endpoint's subscription to public event types (``customer.created`` ...; see ``webhooks/events.py``).

    ``include_backfill``: also send history that arrived in bulk (imports, a new segment's first members).
    """

    __tablename__ = "webhook_subscriptions"

    id: Mapped[int] = mapped_column(primary_key=True)
    endpoint_id: Mapped[int] = mapped_column(ForeignKey("webhook_endpoints.id", ondelete="CASCADE"), index=True)
    events: Mapped[list] = mapped_column(JSONType, default=list)
    include_backfill: Mapped[bool] = mapped_column(default=False)
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[str] = mapped_column(String(320))
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class WebhookDelivery(Base):
    """One event for one subscription: the body sent on every attempt (fixed when the event fanned out), its
    ``Idempotency-Key``, and what the receiver last answered.

    Attempts, back-off, the last error and the dead state are the outbox delivery's (subscriber ``webhooks``,
    target the subscription id), which this row sits beside; the body holds personal data, so ``customer_id``
    is set: a merge moves it and a deletion deletes the row.
    """

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        UniqueConstraint("message_id", "subscription_id"),
        # The delivery log of an endpoint, newest first.
        Index("ix_webhook_deliveries_endpoint", "endpoint_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("outbox.id", ondelete="CASCADE"))
    subscription_id: Mapped[int] = mapped_column(index=True)
    endpoint_id: Mapped[int] = mapped_column()
    event: Mapped[str] = mapped_column(String(64))
    # A deleted customer's log rows (their bodies hold personal data) go with them.
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"), index=True)
    idempotency_key: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    response_status: Mapped[int | None] = mapped_column()
    latency_ms: Mapped[int | None] = mapped_column()
    last_attempt_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    delivered_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    # Why nothing was sent (the subscription or endpoint was paused or deleted meanwhile), or the last failure.
    note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
