"""Scoring's tables: the trained models, the editable rules of the fallback score, and the stored scores.

A model is kept as plain numbers in JSON (the encoding of each feature, the scaler, the coefficients and the
calibration's two parameters), never as a pickle: loading it runs no code, so a database copied from elsewhere
cannot execute anything when Kizuna reads its model.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from sqlalchemy import CheckConstraint, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from kizuna.db import Base, JSONType, Money, Timestamped, UTCDateTime, Versioned, utcnow

SUBJECTS = ("deal", "lead")
METHODS = ("model", "rules")
RULE_OPS = (">=", ">", "<=", "<", "=", "per")


class ScoringModel(Base):
    """One fitted model: ``subject`` says whether it scores deals or leads; ``version`` grows with each training
    (a deal model and a lead model trained together share it)."""

    __tablename__ = "scoring_models"
    __table_args__ = (CheckConstraint("subject IN ('deal', 'lead')", name="subject"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    version: Mapped[int] = mapped_column(Integer, index=True)
    subject: Mapped[str] = mapped_column(String(8))
    trained_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    trained_by: Mapped[str] = mapped_column(String(320))
    # cv_auc, rows, positives, calibration (bucket, predicted, observed, count), seconds.
    metrics: Mapped[dict] = mapped_column(JSONType, default=dict)
    features: Mapped[list] = mapped_column(JSONType, default=list)
    # The model as numbers: columns, mean, scale, coef, intercept, calibration a and b (see model.py).
    params: Mapped[dict] = mapped_column(JSONType, default=dict)


class ScoringRule(Timestamped, Versioned, Base):
    """One line of the transparent fallback score: ``points`` when ``feature op value`` holds (or, for
    ``per``, points for each unit of the feature)."""

    __tablename__ = "scoring_rules"
    __table_args__ = (
        CheckConstraint("subject IN ('deal', 'lead')", name="subject"),
        CheckConstraint("op IN ('>=', '>', '<=', '<', '=', 'per')", name="op"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    subject: Mapped[str] = mapped_column(String(8))
    feature: Mapped[str] = mapped_column(String(64))
    op: Mapped[str] = mapped_column(String(4))
    value: Mapped[str] = mapped_column(String(200), default="")
    points: Mapped[int] = mapped_column(Integer)
    position: Mapped[int] = mapped_column(Integer, default=0)


class Score(Base):
    """The latest score of an open deal or an open lead, with the factors behind it (best first)."""

    __tablename__ = "scoring_scores"
    __table_args__ = (
        CheckConstraint("subject IN ('deal', 'lead')", name="subject"),
        CheckConstraint("method IN ('model', 'rules')", name="method"),
        Index("ix_scoring_scores_subject_rank", "subject", "rank_value"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    subject: Mapped[str] = mapped_column(String(8))
    deal_id: Mapped[int | None] = mapped_column(ForeignKey("deals.id", ondelete="CASCADE"), unique=True)
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"), index=True)
    # The probability of winning (deal) or of converting (lead), 0..1.
    probability: Mapped[float] = mapped_column()
    method: Mapped[str] = mapped_column(String(8))
    model_version: Mapped[int | None] = mapped_column(Integer)
    value: Mapped[Decimal] = mapped_column(Money, default=Decimal(0))
    currency: Mapped[str] = mapped_column(String(3), default="JPY")
    # probability × value: the call-first order.
    rank_value: Mapped[float] = mapped_column()
    factors: Mapped[list] = mapped_column(JSONType, default=list)
    scored_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
