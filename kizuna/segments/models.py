"""Segments (dynamic: a rule; static: a list) and their membership history.

A membership row is one stay of one customer in one segment: ``entered_at`` when a refresh (or a list build)
found them in, ``exited_at`` when a later refresh found them out. A customer who comes back gets a new row, so
the table is the whole history; the current members are the rows with ``exited_at IS NULL``.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from kizuna.db import Base, BigId, JSONType, Timestamped, UTCDateTime

KINDS = ("dynamic", "static")


class Segment(Timestamped, Base):
    __tablename__ = "segments"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    kind: Mapped[str] = mapped_column(String(16), default="dynamic")
    # The rule of a dynamic segment, as validated JSON (see rules.py); NULL for a static list.
    rule: Mapped[dict | None] = mapped_column(JSONType)
    # How a static list was built: {"from": "csv"|"segment"|"filter", ...} (for the page and the audit).
    source: Mapped[dict] = mapped_column(JSONType, default=dict)
    member_count: Mapped[int] = mapped_column(Integer, default=0)
    refreshed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    full_refreshed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    # The last outbox message id the segment has seen: an incremental refresh re-evaluates only the customers
    # named by messages after it (see changes.py).
    watermark: Mapped[int] = mapped_column(BigInteger, default=0)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))


class SegmentMembership(Base):
    __tablename__ = "segment_memberships"
    __table_args__ = (
        # Current members of a segment (exited_at IS NULL) in id order: the members page, the count, and the
        # anti-joins of a refresh read this index alone.
        Index("ix_segment_memberships_current", "segment_id", "exited_at", "customer_id"),
        # The entries of one refresh (for their outbox messages) and the history page, newest first.
        Index("ix_segment_memberships_entered", "segment_id", "entered_at"),
        Index("ix_segment_memberships_customer", "customer_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    segment_id: Mapped[int] = mapped_column(ForeignKey("segments.id", ondelete="CASCADE"))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    entered_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    exited_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
