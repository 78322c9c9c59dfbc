"""Import from the browser: upload a file, check the encoding and column mapping on a preview, run, follow."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, File, Form, Request, UploadFile
from starlette.datastructures import FormData
from starlette.responses import JSONResponse, RedirectResponse, Response, StreamingResponse

from kizuna.config import get_settings
from kizuna.imports import job_run, jobs, preview
from kizuna.imports.api import download_headers
from kizuna.imports.report import Reject
from kizuna.imports.runner import KINDS
from kizuna.imports.schemas import ImportJobRead
from kizuna.web.deps import DB
from kizuna.web.forms import FormState, submit, translate
from kizuna.web.i18n import catalog, translator
from kizuna.web.session import CurrentViewer, PostingViewer, Viewer
from kizuna.web.ui_base import render, ui_router

router = ui_router()
# Rejects and warnings listed on a finished job's page (the report holds them all).
REJECTS_SHOWN = 100


async def form_data(request: Request) -> FormData:
    """The posted form (Starlette keeps it, so the CSRF check and the handler read it once)."""
    return await request.form()


Posted = Annotated[FormData, Depends(form_data)]


def _index(request: Request, session: DB, viewer: Viewer, form: FormState, status: int = 200) -> Response:
    recent = jobs.list_jobs(session, actor=viewer.actor)
    who = jobs.uploaders(session, recent)
    return render(
        request,
        "imports/index.html",
        viewer,
        status=status,
        form=form,
        kinds=list(KINDS),
        jobs=[ImportJobRead.of(j, who.get(j.user_id or 0)) for j in recent],
        max_mb=get_settings().import_upload_max_bytes // 1_000_000,
    )


@router.get("/imports")
def imports_page(request: Request, session: DB, viewer: CurrentViewer) -> Response:
    return _index(request, session, viewer, FormState(values={"kind": "customers"}))


@router.post("/imports")
def upload(
    request: Request,
    session: DB,
    viewer: PostingViewer,
    kind: Annotated[str, Form(max_length=16)] = "customers",
    file: Annotated[UploadFile | None, File()] = None,
) -> Response:
    t = translator(viewer.lang)
    state = FormState(values={"kind": kind, "file": ""})
    job = submit(
        state,
        t,
        viewer.lang,
        lambda: jobs.upload(
            session,
            actor=viewer.actor,
            kind=kind,
            file_name=(file.filename or "") if file else "",
            stream=file.file if file else _Empty(),
        ),
    )
    if job is None:
        session.rollback()
        return _index(request, session, viewer, state, status=422)
    session.commit()
    return RedirectResponse(f"/imports/{job.id}", status_code=303)


class _Empty:
    """The stream of a form sent without a file."""

    def read(self, _size: int = -1) -> bytes:
        return b""


def _mapping_page(
    request: Request, session: DB, viewer: Viewer, job_id: int, form: FormState, status: int = 200
) -> Response:
    job = jobs.get_job(session, actor=viewer.actor, job_id=job_id)
    shown = preview.preview(session, actor=viewer.actor, job_id=job_id)
    encodings = list(dict.fromkeys([job.encoding, *jobs.ENCODINGS]))
    return render(
        request,
        "imports/mapping.html",
        viewer,
        status=status,
        job=job,
        form=form,
        headers=list(jobs.ordered_mapping(job)),
        fields=jobs.field_choices(job.kind, session),
        attributes=jobs.keeps_attributes(job.kind),
        encodings=encodings,
        preview=shown,
        inline=jobs.runs_inline(job),
        reasons=Reasons(viewer.lang),
    )


@router.get("/imports/{job_id:int}")
def job_page(request: Request, session: DB, viewer: CurrentViewer, job_id: int, edit: bool = False) -> Response:
    """The mapping page until the job runs (and for a failed one, on request), then its progress and result."""
    job = jobs.get_job(session, actor=viewer.actor, job_id=job_id)
    if job.status in jobs.EDITABLE and (job.status != "failed" or edit):
        return _mapping_page(request, session, viewer, job_id, FormState())
    who = jobs.uploaders(session, [job]).get(job.user_id or 0)
    shown = jobs.report_entries(session, actor=viewer.actor, job_id=job_id, limit=REJECTS_SHOWN)
    return render(
        request,
        "imports/job.html",
        viewer,
        job=ImportJobRead.of(job, who),
        rejects=shown,
        more_rejects=len(shown) >= REJECTS_SHOWN,
        reasons=Reasons(viewer.lang),
    )


@router.post("/imports/{job_id:int}/mapping")
def save_mapping(
    request: Request,
    session: DB,
    viewer: PostingViewer,
    posted: Posted,
    job_id: int,
    action: Annotated[str, Form(max_length=16)] = "preview",
    encoding: Annotated[str, Form(max_length=32)] = "",
) -> Response:
    """Save the mapping and encoding; ``action=run`` then starts the import."""
    t = translator(viewer.lang)
    job = jobs.get_job(session, actor=viewer.actor, job_id=job_id)
    headers = list(jobs.ordered_mapping(job))
    chosen = {}
    for index, header in enumerate(headers):
        value = posted.get(f"map-{index}")
        if isinstance(value, str) and value:
            chosen[header] = value
    state = FormState(values={"encoding": encoding})
    saved = submit(
        state,
        t,
        viewer.lang,
        lambda: jobs.update_mapping(session, actor=viewer.actor, job_id=job_id, mapping=chosen, encoding=encoding),
    )
    if saved is None:
        session.rollback()
        return _mapping_page(request, session, viewer, job_id, state, status=422)
    # The mapping is kept even when the run is then refused: the page shows the user's choices and why.
    session.commit()
    if action != "run":
        return RedirectResponse(f"/imports/{job_id}", status_code=303)
    done = submit(state, t, viewer.lang, lambda: jobs.start(session, actor=viewer.actor, job_id=job_id))
    if done is None:
        session.rollback()
        return _mapping_page(request, session, viewer, job_id, state, status=422)
    session.commit()
    if action == "run" and jobs.runs_inline(done):
        # A small file is imported before the answer; the worker finds the job taken and leaves it.
        job_run.execute(request.app.state.engine, job_id)
    return RedirectResponse(f"/imports/{job_id}", status_code=303)


@router.get("/imports/{job_id:int}/progress")
def progress(session: DB, viewer: CurrentViewer, job_id: int) -> Response:
    """The job's status for the page's progress bar (polled by static/imports.js)."""
    job = jobs.get_job(session, actor=viewer.actor, job_id=job_id)
    return JSONResponse(ImportJobRead.of(job).model_dump(mode="json"))


@router.get("/imports/{job_id:int}/rejects.csv")
def rejects(session: DB, viewer: CurrentViewer, job_id: int) -> Response:
    # In the viewer's language; the codes and the rows' own cells are the same in every language.
    chunks = jobs.rejects_csv(session, actor=viewer.actor, job_id=job_id, describe=Reasons(viewer.lang).for_report)
    job = jobs.get_job(session, actor=viewer.actor, job_id=job_id)
    return StreamingResponse(chunks, media_type="text/csv; charset=utf-8", headers=download_headers(job))


class Reasons:
    """Import rejects and warnings in the viewer's language, read from their catalog keys when shown (the report
    keeps English text, key and params); a reason without a translation shows its English text."""

    def __init__(self, lang: str) -> None:
        self.lang = lang
        self.t = translator(lang)

    def field(self, reject: Reject) -> str:
        """The column at fault by its label (``lines.0.quantity`` by the label of ``lines``)."""
        if reject.field == "row":
            return self.t("imports.reasons.row")
        name = reject.field.split(".")[0]
        key = f"imports.field.{name}"
        return self.t(key) if key in catalog(self.lang) else reject.field

    def message(self, reject: Reject) -> str:
        """Why, without the column's name; the English text (which names it) when there is no translation."""
        return translate(self.t, self.lang, reject.key, reject.params, reject.reason)

    def line(self, reject: Reject) -> str:
        """Column and reason in one text (the preview's rows)."""
        message = self.message(reject)
        if message == reject.reason or reject.field == "row":
            return message
        return f"{self.field(reject)}: {message}"

    def for_report(self, reject: Reject, warning: bool) -> tuple[str, str]:
        """(column, reason) for the downloaded report; a warning's reason says it is one."""
        message = self.message(reject)
        return self.field(reject), f"{self.t('imports.reasons.warning_prefix')}{message}" if warning else message
