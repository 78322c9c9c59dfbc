"""Pipelines, stages, deals and their stage history, activities, tasks, and the teams reps belong to.

Later parts of the sales issue read these without new columns: a forecast or a win rate reads
``deal_stage_changes`` (every move with its time), a calendar feed reads ``tasks.due_at`` and
``deals.expected_close_date``, custom fields live as typed keys of ``deals.attributes``.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from sqlalchemy import CheckConstraint, Column, Date, ForeignKey, Index, Integer, String, Table, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from kizuna.db import Base, JSONType, Money, Timestamped, UTCDateTime, Versioned, utcnow

STAGE_KINDS = ("open", "won", "lost")
ACTIVITY_KINDS = ("call", "meeting", "visit", "email")
TASK_STATUSES = ("open", "done", "cancelled")


class Team(Timestamped, Base):
    """A group of users; a rep edits the deals of everyone in their teams."""

    __tablename__ = "teams"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)


team_members = Table(
    "team_members",
    Base.metadata,
    Column("team_id", ForeignKey("teams.id", ondelete="CASCADE"), primary_key=True),
    Column("user_id", ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True),
)


class Pipeline(Timestamped, Versioned, Base):
    __tablename__ = "pipelines"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    name_en: Mapped[str | None] = mapped_column(String(200))
    position: Mapped[int] = mapped_column(Integer, default=0)
    is_default: Mapped[bool] = mapped_column(default=False)


class Stage(Base):
    """One column of a pipeline. Names are data (Japanese and English); ``kind`` says open, won or lost."""

    __tablename__ = "pipeline_stages"
    __table_args__ = (
        UniqueConstraint("pipeline_id", "position"),
        CheckConstraint("kind IN ('open', 'won', 'lost')", name="kind"),
        CheckConstraint("probability >= 0 AND probability <= 100", name="probability"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    pipeline_id: Mapped[int] = mapped_column(ForeignKey("pipelines.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    name_en: Mapped[str | None] = mapped_column(String(200))
    position: Mapped[int] = mapped_column(Integer)
    probability: Mapped[int] = mapped_column(Integer, default=0)
    kind: Mapped[str] = mapped_column(String(8), default="open")


class Deal(Timestamped, Versioned, Base):
    __tablename__ = "deals"
    __table_args__ = (
        # The kanban's columns: a stage's top cards by close date, and its count and total, from one index.
        Index("ix_deals_stage_close", "stage_id", "expected_close_date", "id"),
        Index("ix_deals_pipeline_stage", "pipeline_id", "stage_id"),
        CheckConstraint("amount >= 0", name="amount"),
        CheckConstraint("probability >= 0 AND probability <= 100", name="probability"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(300))
    pipeline_id: Mapped[int] = mapped_column(ForeignKey("pipelines.id", ondelete="RESTRICT"))
    stage_id: Mapped[int] = mapped_column(ForeignKey("pipeline_stages.id", ondelete="RESTRICT"))
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id", ondelete="SET NULL"), index=True)
    company_id: Mapped[int | None] = mapped_column(ForeignKey("companies.id", ondelete="SET NULL"), index=True)
    amount: Mapped[Decimal] = mapped_column(Money, default=Decimal(0))
    currency: Mapped[str] = mapped_column(String(3), default="JPY")
    probability: Mapped[int] = mapped_column(Integer, default=0)
    expected_close_date: Mapped[dt.date | None] = mapped_column(Date)
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), index=True)
    lost_reason: Mapped[str | None] = mapped_column(Text)
    # When the deal entered a won or lost stage (cleared when it is reopened): the end of its sales cycle.
    closed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    attributes: Mapped[dict] = mapped_column(JSONType, default=dict)


class DealStageChange(Base):
    """One move of a deal between stages (the first row has no ``from_stage_id``: the deal was created there)."""

    __tablename__ = "deal_stage_changes"

    id: Mapped[int] = mapped_column(primary_key=True)
    deal_id: Mapped[int] = mapped_column(ForeignKey("deals.id", ondelete="CASCADE"), index=True)
    from_stage_id: Mapped[int | None] = mapped_column(ForeignKey("pipeline_stages.id", ondelete="SET NULL"))
    to_stage_id: Mapped[int | None] = mapped_column(ForeignKey("pipeline_stages.id", ondelete="SET NULL"))
    changed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    actor_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    actor: Mapped[str] = mapped_column(String(320))


class Activity(Timestamped, Versioned, Base):
    """A call, meeting, visit or e-mail logged on a customer, a company or a deal."""

    __tablename__ = "activities"
    __table_args__ = (
        Index("ix_activities_customer_at", "customer_id", "occurred_at"),
        CheckConstraint("kind IN ('call', 'meeting', 'visit', 'email')", name="kind"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    subject: Mapped[str] = mapped_column(String(300))
    notes: Mapped[str] = mapped_column(Text, default="")
    occurred_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    duration_minutes: Mapped[int | None] = mapped_column(Integer)
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    company_id: Mapped[int | None] = mapped_column(ForeignKey("companies.id", ondelete="CASCADE"), index=True)
    deal_id: Mapped[int | None] = mapped_column(ForeignKey("deals.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))


class Task(Timestamped, Versioned, Base):
    __tablename__ = "tasks"
    __table_args__ = (
        # "My tasks: today / overdue": one owner's open tasks by due time.
        Index("ix_tasks_owner_status_due", "owner_id", "status", "due_at"),
        Index("ix_tasks_customer_created", "customer_id", "created_at"),
        CheckConstraint("status IN ('open', 'done', 'cancelled')", name="status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(300))
    notes: Mapped[str] = mapped_column(Text, default="")
    due_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    remind_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    # When the worker sent the reminder of ``remind_at`` (cleared when ``remind_at`` changes): the home page's
    # "reminders" notice lists the owner's open tasks that have one (sales/reminders.py).
    reminded_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    status: Mapped[str] = mapped_column(String(16), default="open")
    completed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    company_id: Mapped[int | None] = mapped_column(ForeignKey("companies.id", ondelete="CASCADE"), index=True)
    deal_id: Mapped[int | None] = mapped_column(ForeignKey("deals.id", ondelete="CASCADE"), index=True)


class CalendarFeed(Base):
    """A user's secret iCalendar feed URL (``/calendar/{token}.ics``); only the token's SHA-256 is kept, as for
    API tokens. Revoking sets ``revoked_at``; a new URL is a new row, so an old one never comes back."""

    __tablename__ = "calendar_feeds"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    prefix: Mapped[str] = mapped_column(String(12))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
