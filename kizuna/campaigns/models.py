"""Campaigns: a one-off or scheduled send of one message to a segment, optionally with an A/B test first.

A campaign's audience is fixed when it launches: every recipient gets a message row then (``messages`` with
source ``campaign``), so what was sent to whom is never recomputed from a segment that has since changed. With
an A/B test the sample's messages are queued with their variant and the remainder is ``held`` until the winner
is picked; pausing holds whatever has not gone out yet.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from kizuna.db import Base, JSONType, Timestamped, UTCDateTime

# draft → scheduled → (testing →) sending → sent; paused from testing/sending; cancelled from draft/scheduled/paused.
STATUSES = ("draft", "scheduled", "testing", "sending", "sent", "paused", "cancelled")
METRICS = ("opened", "clicked")


class Campaign(Timestamped, Base):
    __tablename__ = "campaigns"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    channel: Mapped[str] = mapped_column(String(16), default="email")
    kind: Mapped[str] = mapped_column(String(16), default="marketing")
    segment_id: Mapped[int | None] = mapped_column(ForeignKey("segments.id", ondelete="SET NULL"))
    template_id: Mapped[int | None] = mapped_column(ForeignKey("message_templates.id", ondelete="SET NULL"))
    # Overrides of the template's content for every recipient (e.g. {"subject": "..."}).
    content: Mapped[dict] = mapped_column(JSONType, default=dict)
    # {"variants": [{"name": "A", "subject": "...", "template_id": 3}, ...], "sample_percent": 20,
    #  "metric": "opened"|"clicked", "test_hours": 4}; empty: no test.
    ab_test: Mapped[dict] = mapped_column(JSONType, default=dict)
    status: Mapped[str] = mapped_column(String(16), default="draft")
    scheduled_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    launched_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    test_ends_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    winner: Mapped[str | None] = mapped_column(String(32))
    # The test's outcome as decided: rates per variant, the p-value, why this winner.
    decision: Mapped[dict] = mapped_column(JSONType, default=dict)
    audience: Mapped[int] = mapped_column(default=0)
    paused_reason: Mapped[str | None] = mapped_column(Text)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    created_by: Mapped[str] = mapped_column(String(320), default="")
