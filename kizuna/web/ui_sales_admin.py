"""Sales set-up pages for managers and admins: pipelines (create one, add, rename and reorder its stages, choose
the default) and teams (create one, set its members). Each form calls the service the API calls
(kizuna/sales/pipelines.py, teams.py), which checks the permission and writes the audit entry."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy.orm import Session
from starlette.datastructures import FormData
from starlette.responses import RedirectResponse, Response

from kizuna.auth.permissions import require
from kizuna.customers import edits
from kizuna.sales import pipelines, teams
from kizuna.sales.schemas import PipelineCreate, StageIn, StageUpdate
from kizuna.web.deps import DB
from kizuna.web.forms import FormState, read_form, submit
from kizuna.web.i18n import translator
from kizuna.web.session import CurrentViewer, PostingViewer, Viewer
from kizuna.web.ui_base import render, ui_router

router = ui_router()

STAGE_FIELDS = ("name", "name_en", "probability", "kind")


async def _posted(request: Request) -> FormData:
    return await request.form()


Posted = Annotated[FormData, Depends(_posted)]


def _stage_values(state: FormState) -> dict[str, Any]:
    values: dict[str, Any] = {k: v.strip() for k, v in state.values.items()}
    values["name_en"] = values["name_en"] or None
    if values["probability"] == "":
        values.pop("probability")
    return values


# --- Pipelines --------------------------------------------------------------------------------------------


def _pipelines_page(request: Request, session: Session, viewer: Viewer, form: FormState, status: int = 200) -> Response:
    require(viewer.actor, "pipelines:manage")
    found = pipelines.list_pipelines(session)
    session.commit()  # the default pipeline, made on first use
    counts = {p.id: len(pipelines.stages_of(session, p.id)) for p in found}
    return render(request, "sales/pipelines.html", viewer, status=status, pipelines=found, counts=counts, form=form)


@router.get("/deals/pipelines")
def pipelines_page(request: Request, session: DB, viewer: CurrentViewer) -> Response:
    return _pipelines_page(request, session, viewer, FormState(values={"name": "", "name_en": ""}))


@router.post("/deals/pipelines")
def create_pipeline(request: Request, session: DB, viewer: PostingViewer, posted: Posted) -> Response:
    """A new pipeline with the default stages, which the manager then renames and reorders on its page."""
    state = read_form(posted, ("name", "name_en"))
    t = translator(viewer.lang)

    def action() -> Any:
        data = PipelineCreate(
            name=state.values["name"], name_en=state.values["name_en"].strip() or None, stages=pipelines.DEFAULT_STAGES
        )
        return pipelines.create_pipeline(session, actor=viewer.actor, data=data)

    pipeline = submit(state, t, viewer.lang, action)
    if pipeline is None:
        session.rollback()
        return _pipelines_page(request, session, viewer, state, status=422)
    session.commit()
    return RedirectResponse(f"/deals/pipelines/{pipeline.id}?saved=1", status_code=303)


def _pipeline_page(
    request: Request,
    session: Session,
    viewer: Viewer,
    pipeline_id: int,
    *,
    new_stage: FormState | None = None,
    stage_forms: dict[int, FormState] | None = None,
    status: int = 200,
) -> Response:
    require(viewer.actor, "pipelines:manage")
    pipeline = pipelines.get_pipeline(session, pipeline_id)
    stages = pipelines.stages_of(session, pipeline.id)
    forms = {
        s.id: FormState(
            values={"name": s.name, "name_en": s.name_en or "", "probability": str(s.probability), "kind": s.kind}
        )
        for s in stages
    }
    forms.update(stage_forms or {})
    return render(
        request,
        "sales/pipeline.html",
        viewer,
        status=status,
        pipeline=pipeline,
        stages=stages,
        stage_forms=forms,
        new_stage=new_stage or FormState(values={"name": "", "name_en": "", "probability": "0", "kind": "open"}),
    )


@router.get("/deals/pipelines/{pipeline_id:int}")
def pipeline_page(request: Request, session: DB, viewer: CurrentViewer, pipeline_id: int) -> Response:
    return _pipeline_page(request, session, viewer, pipeline_id)


@router.post("/deals/pipelines/{pipeline_id:int}/stages")
def add_stage(request: Request, session: DB, viewer: PostingViewer, posted: Posted, pipeline_id: int) -> Response:
    state = read_form(posted, STAGE_FIELDS)
    t = translator(viewer.lang)

    def action() -> Any:
        data = StageIn(**_stage_values(state))
        return pipelines.add_stage(session, actor=viewer.actor, pipeline_id=pipeline_id, data=data)

    if submit(state, t, viewer.lang, action) is None:
        session.rollback()
        return _pipeline_page(request, session, viewer, pipeline_id, new_stage=state, status=422)
    session.commit()
    return RedirectResponse(f"/deals/pipelines/{pipeline_id}?saved=1", status_code=303)


@router.post("/deals/pipelines/{pipeline_id:int}/stages/{stage_id:int}")
def update_stage(
    request: Request, session: DB, viewer: PostingViewer, posted: Posted, pipeline_id: int, stage_id: int
) -> Response:
    state = read_form(posted, STAGE_FIELDS)
    t = translator(viewer.lang)

    def action() -> Any:
        data = StageUpdate(**_stage_values(state))
        return pipelines.update_stage(
            session, actor=viewer.actor, pipeline_id=pipeline_id, stage_id=stage_id, data=data
        )

    if submit(state, t, viewer.lang, action) is None:
        session.rollback()
        return _pipeline_page(request, session, viewer, pipeline_id, stage_forms={stage_id: state}, status=422)
    session.commit()
    return RedirectResponse(f"/deals/pipelines/{pipeline_id}?saved=1#stage-{stage_id}", status_code=303)


@router.post("/deals/pipelines/{pipeline_id:int}/stages/{stage_id:int}/move")
def move_stage(
    request: Request, session: DB, viewer: PostingViewer, posted: Posted, pipeline_id: int, stage_id: int
) -> Response:
    """The up and down buttons: each posts the position the stage goes to."""
    try:
        position = int(str(posted.get("position") or ""))
    except ValueError:
        position = -1
    if position >= 0:
        pipelines.move_stage(session, actor=viewer.actor, pipeline_id=pipeline_id, stage_id=stage_id, position=position)
        session.commit()
    return RedirectResponse(f"/deals/pipelines/{pipeline_id}#stage-{stage_id}", status_code=303)


@router.post("/deals/pipelines/{pipeline_id:int}/default")
def set_default(request: Request, session: DB, viewer: PostingViewer, pipeline_id: int) -> Response:
    pipelines.set_default(session, actor=viewer.actor, pipeline_id=pipeline_id)
    session.commit()
    return RedirectResponse(f"/deals/pipelines/{pipeline_id}?saved=1", status_code=303)


# --- Teams ------------------------------------------------------------------------------------------------


def _teams_page(
    request: Request,
    session: Session,
    viewer: Viewer,
    *,
    form: FormState | None = None,
    chosen: set[int] | None = None,
    member_errors: dict[int, str] | None = None,
    status: int = 200,
) -> Response:
    require(viewer.actor, "teams:manage")
    return render(
        request,
        "sales/teams.html",
        viewer,
        status=status,
        teams=teams.list_teams(session),
        users=edits.assignable_users(session),
        form=form or FormState(values={"name": ""}),
        chosen=chosen or set(),
        member_errors=member_errors or {},
    )


def _member_ids(posted: FormData) -> list[int]:
    return [int(v) for v in posted.getlist("member_ids") if isinstance(v, str) and v.isdigit()]


@router.get("/deals/teams")
def teams_page(request: Request, session: DB, viewer: CurrentViewer) -> Response:
    return _teams_page(request, session, viewer)


@router.post("/deals/teams")
def create_team(request: Request, session: DB, viewer: PostingViewer, posted: Posted) -> Response:
    state = read_form(posted, ("name",))
    member_ids = _member_ids(posted)
    t = translator(viewer.lang)

    def action() -> Any:
        return teams.create_team(session, actor=viewer.actor, name=state.values["name"], member_ids=member_ids)

    if submit(state, t, viewer.lang, action) is None:
        session.rollback()
        return _teams_page(request, session, viewer, form=state, chosen=set(member_ids), status=422)
    session.commit()
    return RedirectResponse("/deals/teams?saved=1", status_code=303)


@router.post("/deals/teams/{team_id:int}/members")
def set_members(request: Request, session: DB, viewer: PostingViewer, posted: Posted, team_id: int) -> Response:
    state = FormState(values={"member_ids": ""})
    t = translator(viewer.lang)

    def action() -> Any:
        return teams.set_members(session, actor=viewer.actor, team_id=team_id, member_ids=_member_ids(posted))

    if submit(state, t, viewer.lang, action) is None:
        session.rollback()
        message = state.error("member_ids") or " ".join(state.general)
        return _teams_page(request, session, viewer, member_errors={team_id: message}, status=422)
    session.commit()
    return RedirectResponse(f"/deals/teams?saved=1#team-{team_id}", status_code=303)
