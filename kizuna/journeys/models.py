"""Journeys, their published versions, the customers enrolled in them, and the log of the steps they passed.

A journey's ``draft`` is what the builder edits; publishing freezes it into a ``JourneyVersion`` (never changed
afterwards) and makes it the live one. An enrollment keeps the version it entered with, so editing a live journey
never moves customers already inside it.

An enrollment's ``step`` and ``status`` say where it stands: ``active`` at a step means the step is due to run at
``next_at``; ``waiting`` at a wait step means the wait ends at ``next_at``, and then the customer moves on. The
engine claims due enrollments with a lease (``locked_by`` / ``locked_until``); ``attempts`` counts failed runs
and ends a customer that keeps failing as ``failed`` with ``last_error``.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Boolean, ForeignKey, Index, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from kizuna.db import Base, BigId, JSONType, UTCDateTime, utcnow

JOURNEY_STATUSES = ("draft", "live", "paused", "archived")
ENROLLMENT_STATUSES = ("active", "waiting", "completed", "exited", "converted", "failed")
OPEN_STATUSES = ("active", "waiting")


class Journey(Base):
    __tablename__ = "journeys"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(16), default="draft")
    # The definition being edited (JSON, see definition.py); published copies live in journey_versions.
    draft: Mapped[dict] = mapped_column(JSONType, default=dict)
    # The published version new customers enter (journey_versions.id; no foreign key: the two tables would
    # refer to each other, and a version is only ever deleted with its journey).
    live_version_id: Mapped[int | None] = mapped_column()
    # The live version's trigger and goal, kept here so that a subscriber finds the journeys an outbox message
    # concerns with one indexed query: trigger_key is the event name or the segment id.
    trigger_type: Mapped[str | None] = mapped_column(String(32))
    trigger_key: Mapped[str | None] = mapped_column(String(200))
    goal_event: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_by: Mapped[str] = mapped_column(String(320), default="")

    __table_args__ = (Index("ix_journeys_trigger", "status", "trigger_type", "trigger_key"),)


class JourneyVersion(Base):
    """A published definition: immutable, numbered per journey."""

    __tablename__ = "journey_versions"
    __table_args__ = (UniqueConstraint("journey_id", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    journey_id: Mapped[int] = mapped_column(ForeignKey("journeys.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column()
    definition: Mapped[dict] = mapped_column(JSONType)
    published_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    published_by: Mapped[str] = mapped_column(String(320), default="")


class JourneyEnrollment(Base):
    """One customer's pass through one journey, from one entry (a message, a scan, a manual enrolment)."""

    __tablename__ = "journey_enrollments"
    __table_args__ = (
        # The same entry (one outbox message, one date occurrence, one dormancy spell) enrols a customer once.
        UniqueConstraint("journey_id", "customer_id", "entry_key"),
        # At most one open enrollment per customer and journey, whatever the entry (two workers racing).
        Index(
            "uq_journey_enrollments_open",
            "journey_id",
            "customer_id",
            unique=True,
            sqlite_where=text("finished_at IS NULL"),
            postgresql_where=text("finished_at IS NULL"),
        ),
        # The engine's claim walks the due enrollments in order (a finished enrollment has no next_at).
        Index("ix_journey_enrollments_due", "next_at", "id"),
        # Counts per step for the diagram and the stats.
        Index("ix_journey_enrollments_step", "journey_id", "step", "status"),
        Index("ix_journey_enrollments_customer", "customer_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    journey_id: Mapped[int] = mapped_column(ForeignKey("journeys.id", ondelete="CASCADE"))
    version_id: Mapped[int] = mapped_column(ForeignKey("journey_versions.id", ondelete="CASCADE"))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    entry_key: Mapped[str] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(12), default="active")
    step: Mapped[str] = mapped_column(String(64))
    next_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    locked_by: Mapped[str | None] = mapped_column(String(100))
    locked_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    # The A/B/n variant a split gave it, and whether it fell in the split's holdout group (sent nothing).
    variant: Mapped[str | None] = mapped_column(String(32))
    holdout: Mapped[bool] = mapped_column(Boolean, default=False)
    entered_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    # When the goal happened within its window: set on finished enrollments too, so that a customer who went
    # through every step and ordered a week later counts as converted, as a holdout customer would.
    converted_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class JourneyStep(Base):
    """One arrival of one enrollment at one step (``from_step`` is where it came from; NULL at the start).

    Per-step counts, the funnel, drop-off and the Sankey of paths are read from here and from where the
    enrollments stand now.
    """

    __tablename__ = "journey_steps"
    __table_args__ = (
        Index("ix_journey_steps_journey", "journey_id", "step"),
        Index("ix_journey_steps_enrollment", "enrollment_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    enrollment_id: Mapped[int] = mapped_column(ForeignKey("journey_enrollments.id", ondelete="CASCADE"))
    journey_id: Mapped[int] = mapped_column(ForeignKey("journeys.id", ondelete="CASCADE"))
    step: Mapped[str] = mapped_column(String(64))
    from_step: Mapped[str | None] = mapped_column(String(64))
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
