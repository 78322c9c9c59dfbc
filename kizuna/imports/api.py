"""Import jobs over HTTP: upload a file, set its mapping, preview, run, follow it, download its rejects."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, File, Form, Query, Request, UploadFile
from fastapi.responses import StreamingResponse

from kizuna.imports import job_run, jobs, preview
from kizuna.imports.schemas import ImportJobRead, MappingChange, PreviewRead, PreviewRowRead
from kizuna.web.deps import DB, APIActor

router = APIRouter(prefix="/imports", tags=["imports"])


@router.post("", status_code=201, response_model=ImportJobRead)
def upload(
    session: DB,
    actor: APIActor,
    kind: Annotated[str, Form(max_length=16)],
    file: Annotated[UploadFile, File()],
) -> ImportJobRead:
    """Upload a CSV (events also JSON Lines) as ``multipart/form-data``; answers the job with the detected
    encoding and the proposed mapping. Nothing is imported until ``/run``."""
    job = jobs.upload(session, actor=actor, kind=kind, file_name=file.filename or "", stream=file.file)
    session.commit()
    return ImportJobRead.of(job)


@router.get("", response_model=list[ImportJobRead])
def list_jobs(session: DB, actor: APIActor, limit: Annotated[int, Query(ge=1, le=500)] = 50) -> list[ImportJobRead]:
    found = jobs.list_jobs(session, actor=actor, limit=limit)
    who = jobs.uploaders(session, found)
    return [ImportJobRead.of(j, who.get(j.user_id or 0)) for j in found]


@router.get("/{job_id}", response_model=ImportJobRead)
def get_job(job_id: int, session: DB, actor: APIActor) -> ImportJobRead:
    """The job's status and progress (``rows_done`` of ``rows_total``, ``percent``) and, once done, its counts."""
    job = jobs.get_job(session, actor=actor, job_id=job_id)
    return ImportJobRead.of(job, jobs.uploaders(session, [job]).get(job.user_id or 0))


@router.post("/{job_id}/preview", response_model=PreviewRead)
def preview_job(job_id: int, data: MappingChange, session: DB, actor: APIActor) -> PreviewRead:
    """Change the mapping or encoding (optional) and answer the first rows as they would be stored, with the
    errors each would get. Nothing is imported."""
    job = jobs.update_mapping(session, actor=actor, job_id=job_id, mapping=data.mapping, encoding=data.encoding)
    session.commit()
    shown = preview.preview(session, actor=actor, job_id=job.id)
    rows = [
        PreviewRowRead(
            line=r.line,
            values=r.values,
            errors=[e.reason for e in r.errors],
            warnings=[w.reason for w in r.warnings],
        )
        for r in shown.rows
    ]
    return PreviewRead(job=ImportJobRead.of(job), fields=shown.fields, rows=rows, problem=shown.problem)


@router.post("/{job_id}/run", status_code=202, response_model=ImportJobRead)
def run(
    job_id: int, request: Request, session: DB, actor: APIActor, data: MappingChange | None = None
) -> ImportJobRead:
    """Start the import (optionally with a last mapping change). A small file is imported before the answer;
    a big one runs in ``kizuna worker``: follow it with ``GET /imports/{id}``."""
    if data is not None and (data.mapping is not None or data.encoding):
        jobs.update_mapping(session, actor=actor, job_id=job_id, mapping=data.mapping, encoding=data.encoding)
    job = jobs.start(session, actor=actor, job_id=job_id)
    session.commit()
    if jobs.runs_inline(job):
        job_run.execute(request.app.state.engine, job.id)
        session.expire_all()
        job = jobs.get_job(session, actor=actor, job_id=job_id)
    return ImportJobRead.of(job)


@router.get("/{job_id}/rejects", response_class=StreamingResponse, responses={200: {"content": {"text/csv": {}}}})
def rejects(job_id: int, session: DB, actor: APIActor) -> StreamingResponse:
    """The rejected rows and warnings as CSV: ``line,field,reason,reason_code,severity`` and the row's own cells
    (see ``jobs.rejects_csv``); formula-like cells are neutralised."""
    chunks = jobs.rejects_csv(session, actor=actor, job_id=job_id)
    job = jobs.get_job(session, actor=actor, job_id=job_id)
    return StreamingResponse(chunks, media_type="text/csv; charset=utf-8", headers=download_headers(job))


def download_headers(job: jobs.ImportJob) -> dict[str, str]:
    name = jobs.report_file_name(job)
    ascii_name = name.encode("ascii", "replace").decode().replace("?", "_").replace('"', "_")
    return {"Content-Disposition": f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name)}"}
