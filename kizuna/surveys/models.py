"""Surveys and their responses.

A response is unique per link: (survey, customer, send key). The send key is the idempotency key of the message
that carried the link (or a key the caller of the link API chose), so a second answer through the same link
updates the first and a resent message, carrying the same links, never counts an answer twice.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from kizuna.db import Base, BigId, Timestamped, UTCDateTime, Versioned

# Where an answer's link came from: a campaign's or a journey's message, or a link made for another tool.
SOURCES = ("campaign", "journey", "link")
CATEGORIES = ("detractor", "passive", "promoter")


class Survey(Versioned, Timestamped, Base):
    __tablename__ = "surveys"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    question_ja: Mapped[str] = mapped_column(Text)
    question_en: Mapped[str] = mapped_column(Text)
    # The moment of the relationship the survey asks about (after purchase, after support ...): its answers
    # are reported per touchpoint.
    touchpoint: Mapped[str] = mapped_column(String(64), default="")
    active: Mapped[bool] = mapped_column(default=True)
    # How long a link stays valid after the message that carried it was made.
    link_days: Mapped[int] = mapped_column(default=60)
    created_by: Mapped[str] = mapped_column(String(320), default="")


class SurveyResponse(Base):
    __tablename__ = "survey_responses"
    __table_args__ = (
        UniqueConstraint("survey_id", "customer_id", "send_key", name="uq_survey_responses_link"),
        CheckConstraint("score >= 0 AND score <= 10", name="score_range"),
        # A survey's report walks its answers by time; the latest comments come from the same index.
        Index("ix_survey_responses_survey_answered", "survey_id", "answered_at"),
        Index("ix_survey_responses_customer", "customer_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    survey_id: Mapped[int] = mapped_column(ForeignKey("surveys.id", ondelete="CASCADE"))
    # Erasing a customer erases their answers with them.
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    score: Mapped[int] = mapped_column()
    comment: Mapped[str] = mapped_column(Text, default="")
    touchpoint: Mapped[str] = mapped_column(String(64), default="")
    source: Mapped[str] = mapped_column(String(16), default="link")
    source_id: Mapped[int | None] = mapped_column(BigId)
    send_key: Mapped[str] = mapped_column(String(200))
    answered_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    # How many times the link was answered (1 = once; more = the answer was changed through the same link).
    answers: Mapped[int] = mapped_column(default=1)
