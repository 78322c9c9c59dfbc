"""Import jobs: a file uploaded through the UI or the API, its mapping, and how its import went."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from kizuna.db import Base, BigId, JSONType, UTCDateTime, utcnow

# uploaded -> previewed -> queued -> running -> done | failed (a failed or done job may be queued again).
JOB_STATUSES = ("uploaded", "previewed", "queued", "running", "done", "failed")


class ImportJob(Base):
    """One uploaded file and its import. The file lives under ``KIZUNA_HOME/imports/`` (``stored_name``), never at a
    path a user chose; ``rows_done``/``rows_total`` follow the import batch by batch."""

    __tablename__ = "import_jobs"
    __table_args__ = (Index("ix_import_jobs_status", "status", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    file_name: Mapped[str] = mapped_column(String(255))
    # A name Kizuna made up, inside the imports folder.
    stored_name: Mapped[str] = mapped_column(String(100))
    size_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    encoding: Mapped[str] = mapped_column(String(32), default="")
    # The file's column names in file order (JSONB keeps no key order, so ``mapping`` cannot say it).
    headers: Mapped[list] = mapped_column(JSONType, default=list)
    # CSV header -> field, "-" (ignore) or "+attributes" (keep in the customer's attributes).
    mapping: Mapped[dict] = mapped_column(JSONType, default=dict)
    status: Mapped[str] = mapped_column(String(12), default="uploaded")
    rows_total: Mapped[int] = mapped_column(default=0)
    rows_done: Mapped[int] = mapped_column(default=0)
    inserted: Mapped[int] = mapped_column(default=0)
    updated: Mapped[int] = mapped_column(default=0)
    unchanged: Mapped[int] = mapped_column(default=0)
    rejected: Mapped[int] = mapped_column(default=0)
    # Every count of the import's report (merged, duplicates, warnings, consents recorded ...).
    counts: Mapped[dict] = mapped_column(JSONType, default=dict)
    report_name: Mapped[str | None] = mapped_column(String(100))
    error: Mapped[str | None] = mapped_column(Text)
    # Who runs it now (a worker or a web process) and when it last said so: a run whose heartbeat stopped
    # (its process was killed) may be taken over.
    runner: Mapped[str | None] = mapped_column(String(100))
    heartbeat_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    started_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
