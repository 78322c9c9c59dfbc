"""What the import-jobs API and the job page's progress poll read and send."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, Field

from kizuna.imports import jobs
from kizuna.imports.models import ImportJob


class ImportJobRead(BaseModel):
    id: int
    kind: str
    file_name: str
    size_bytes: int
    encoding: str
    # CSV header -> field, "-" (ignored) or "+attributes" (kept in customer attributes / event properties).
    mapping: dict[str, str]
    status: str
    # Running, but its process stopped saying so: a worker will take it over (or nobody runs a worker).
    stalled: bool
    rows_total: int
    rows_done: int
    percent: int
    inserted: int
    updated: int
    unchanged: int
    rejected: int
    counts: dict[str, int]
    error: str | None
    has_rejects: bool
    uploaded_by: str | None = None
    created_at: dt.datetime
    started_at: dt.datetime | None
    finished_at: dt.datetime | None

    @classmethod
    def of(cls, job: ImportJob, uploaded_by: str | None = None) -> ImportJobRead:
        return cls(
            id=job.id,
            kind=job.kind,
            file_name=job.file_name,
            size_bytes=job.size_bytes,
            encoding=job.encoding,
            mapping=jobs.ordered_mapping(job),
            status=job.status,
            stalled=jobs.is_stalled(job),
            rows_total=job.rows_total,
            rows_done=job.rows_done,
            percent=percent(job),
            inserted=job.inserted,
            updated=job.updated,
            unchanged=job.unchanged,
            rejected=job.rejected,
            counts=dict(job.counts or {}),
            error=job.error,
            has_rejects=bool(job.report_name) and bool(job.rejected or (job.counts or {}).get("warnings")),
            uploaded_by=uploaded_by,
            created_at=job.created_at,
            started_at=job.started_at,
            finished_at=job.finished_at,
        )


def percent(job: ImportJob) -> int:
    """How far the import is, 0-100 (100 only once it is done)."""
    if job.status == "done":
        return 100
    if job.status != "running" or not job.rows_total:
        return 0
    return min(99, job.rows_done * 100 // job.rows_total)


class MappingChange(BaseModel):
    """A new mapping (some or all headers) and/or encoding for a job that has not run yet."""

    mapping: dict[str, str] | None = Field(default=None, description='{"CSV header": "field" | "-" | "+attributes"}')
    encoding: str | None = Field(default=None, max_length=32)


class PreviewRowRead(BaseModel):
    line: int
    values: dict[str, str]
    errors: list[str]
    warnings: list[str]


class PreviewRead(BaseModel):
    job: ImportJobRead
    fields: list[str]
    rows: list[PreviewRowRead]
    problem: str | None
