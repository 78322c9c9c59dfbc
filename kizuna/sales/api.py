"""/api/v1/pipelines, /deals, /activities and /tasks: thin handlers over the sales services."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query, Request, Response
from sqlalchemy import select

from kizuna.auth.permissions import require
from kizuna.config import get_settings
from kizuna.listing import list_page
from kizuna.sales import activities, deals, forecast, pipelines, teams
from kizuna.sales.filters import ACTIVITY_FILTERS, DEAL_FILTERS, TASK_FILTERS, scoped
from kizuna.sales.forecast import ForecastResult
from kizuna.sales.models import Activity, Deal, Stage, Task
from kizuna.sales.schemas import (
    ActivityCreate,
    ActivityRead,
    ActivityUpdate,
    DealCreate,
    DealMove,
    DealRead,
    DealUpdate,
    PipelineCreate,
    PipelineRead,
    StageChangeRead,
    StageIn,
    StageMove,
    StageRead,
    StageUpdate,
    TaskCreate,
    TaskRead,
    TaskUpdate,
    TeamCreate,
    TeamMembers,
    TeamRead,
)
from kizuna.schemas import Page
from kizuna.web.api import Cursor, Limit, Sort, filter_params, require_if_match, require_precondition, with_etag
from kizuna.web.deps import DB, APIActor

IfMatch = Annotated[str | None, Header()]

pipelines_router = APIRouter(prefix="/pipelines", tags=["pipelines"])
deals_router = APIRouter(prefix="/deals", tags=["deals"])
activities_router = APIRouter(prefix="/activities", tags=["activities"])
tasks_router = APIRouter(prefix="/tasks", tags=["tasks"])


@pipelines_router.get("", response_model=list[PipelineRead])
def list_pipelines(session: DB, actor: APIActor) -> list[dict]:
    """Every pipeline with its stages in board order (the default pipeline is made on first use)."""
    require(actor, "pipelines:read")
    found = pipelines.list_pipelines(session)
    session.commit()
    return [pipelines.pipeline_read(session, p) for p in found]


@pipelines_router.post("", response_model=PipelineRead, status_code=201)
def create_pipeline(data: PipelineCreate, response: Response, session: DB, actor: APIActor) -> dict:
    pipeline = pipelines.create_pipeline(session, actor=actor, data=data)
    session.commit()
    response.headers["Location"] = f"/api/v1/pipelines/{pipeline.id}"
    return pipelines.pipeline_read(session, pipeline)


@pipelines_router.get("/{pipeline_id}", response_model=PipelineRead)
def get_pipeline(pipeline_id: int, session: DB, actor: APIActor) -> dict:
    require(actor, "pipelines:read")
    return pipelines.pipeline_read(session, pipelines.get_pipeline(session, pipeline_id))


@pipelines_router.post("/{pipeline_id}/default", response_model=PipelineRead)
def set_default_pipeline(pipeline_id: int, session: DB, actor: APIActor) -> dict:
    """Make this the default pipeline (new deals without a pipeline go there; the board opens on it)."""
    pipeline = pipelines.set_default(session, actor=actor, pipeline_id=pipeline_id)
    session.commit()
    return pipelines.pipeline_read(session, pipeline)


@pipelines_router.post("/{pipeline_id}/stages", response_model=StageRead, status_code=201)
def add_stage(pipeline_id: int, data: StageIn, session: DB, actor: APIActor) -> Stage:
    """A new last stage of the pipeline."""
    stage = pipelines.add_stage(session, actor=actor, pipeline_id=pipeline_id, data=data)
    session.commit()
    return stage


@pipelines_router.patch("/{pipeline_id}/stages/{stage_id}", response_model=StageRead)
def update_stage(pipeline_id: int, stage_id: int, data: StageUpdate, session: DB, actor: APIActor) -> Stage:
    """Rename a stage or change its probability or kind (a kind only while no deal is in it)."""
    stage = pipelines.update_stage(session, actor=actor, pipeline_id=pipeline_id, stage_id=stage_id, data=data)
    session.commit()
    return stage


@pipelines_router.post("/{pipeline_id}/stages/{stage_id}/move", response_model=PipelineRead)
def move_stage(pipeline_id: int, stage_id: int, data: StageMove, session: DB, actor: APIActor) -> dict:
    """Put the stage at ``position`` in board order (0 = first); returns the pipeline in its new order."""
    pipelines.move_stage(session, actor=actor, pipeline_id=pipeline_id, stage_id=stage_id, position=data.position)
    session.commit()
    return pipelines.pipeline_read(session, pipelines.get_pipeline(session, pipeline_id))


def _page(session: DB, actor: APIActor, request: Request, filterset, model, schema, sort, cursor, limit) -> dict:  # noqa: ANN001
    limit = min(limit, get_settings().page_size_max)
    query, params = scoped(session, actor, select(model), filter_params(request))
    rows, next_cursor = list_page(session, filterset, query, params, sort=sort, cursor=cursor, limit=limit)
    return {"items": [schema.model_validate(r) for r in rows], "next_cursor": next_cursor}


@deals_router.get("", response_model=Page[DealRead])
def list_deals(
    request: Request, session: DB, actor: APIActor, sort: Sort = None, cursor: Cursor = None, limit: Limit = 50
) -> dict:
    """Deals, filtered by any field (``owner_id=``, ``stage_id__in=``, ``amount__gte=``,
    ``expected_close_date__lte=`` ...) and by ``editable=true`` (the deals you may change)."""
    require(actor, "deals:read")
    return _page(session, actor, request, DEAL_FILTERS, Deal, DealRead, sort, cursor, limit)


@deals_router.get("/forecast", response_model=ForecastResult)
def deal_forecast(
    session: DB,
    actor: APIActor,
    start: Annotated[str | None, Query(alias="from", description="First day, YYYY-MM-DD (inclusive).")] = None,
    end: Annotated[str | None, Query(alias="to", description="Last day, YYYY-MM-DD (inclusive).")] = None,
    pipeline_id: Annotated[str | None, Query(description="Only this pipeline.")] = None,
    owner_id: Annotated[str | None, Query(description="Only this owner's deals.")] = None,
    currency: Annotated[str | None, Query(description="Only this currency (e.g. JPY).")] = None,
) -> ForecastResult:
    """The weighted pipeline (open deals' amount × probability) by expected close month, owner and stage, one
    row per currency; and win rate and average sales cycle (days) per stage and per owner, of the deals closed
    in the period (``from``/``to`` filter close dates for the pipeline, closing days for the win rates)."""
    spec = forecast.spec_of(start=start, end=end, pipeline_id=pipeline_id, owner_id=owner_id, currency=currency)
    return forecast.forecast(session, actor=actor, spec=spec)


@deals_router.post("", response_model=DealRead, status_code=201)
def create_deal(data: DealCreate, response: Response, session: DB, actor: APIActor) -> Deal:
    deal = deals.create_deal(session, actor=actor, data=data)
    session.commit()
    with_etag(response, deal.version)
    response.headers["Location"] = f"/api/v1/deals/{deal.id}"
    return deal


@deals_router.get("/{deal_id}", response_model=DealRead)
def get_deal(deal_id: int, response: Response, session: DB, actor: APIActor) -> Deal:
    require(actor, "deals:read")
    deal = deals.get_deal(session, deal_id)
    with_etag(response, deal.version)
    return deal


@deals_router.patch("/{deal_id}", response_model=DealRead)
def update_deal(
    deal_id: int, data: DealUpdate, response: Response, session: DB, actor: APIActor, if_match: IfMatch = None
) -> Deal:
    version = require_precondition(if_match, data.version)
    deal = deals.update_deal(session, actor=actor, deal_id=deal_id, data=data, expected_version=version)
    session.commit()
    with_etag(response, deal.version)
    return deal


@deals_router.post("/{deal_id}/move", response_model=DealRead)
def move_deal(
    deal_id: int, data: DealMove, response: Response, session: DB, actor: APIActor, if_match: IfMatch = None
) -> Deal:
    """Move the deal to another stage of its pipeline; a lost stage needs ``lost_reason``."""
    version = require_precondition(if_match, data.version)
    deal = deals.move_deal(
        session,
        actor=actor,
        deal_id=deal_id,
        stage_id=data.stage_id,
        lost_reason=data.lost_reason,
        expected_version=version,
        body_version=data.version,
    )
    session.commit()
    with_etag(response, deal.version)
    return deal


@deals_router.get("/{deal_id}/history", response_model=list[StageChangeRead])
def deal_history(deal_id: int, session: DB, actor: APIActor) -> list:
    """The deal's stage changes, oldest first: from, to, when and who."""
    require(actor, "deals:read")
    deals.get_deal(session, deal_id)
    return deals.history(session, deal_id)


@deals_router.delete("/{deal_id}", status_code=204)
def delete_deal(deal_id: int, session: DB, actor: APIActor, if_match: IfMatch = None) -> Response:
    deals.delete_deal(session, actor=actor, deal_id=deal_id, expected_version=require_if_match(if_match))
    session.commit()
    return Response(status_code=204)


@activities_router.get("", response_model=Page[ActivityRead])
def list_activities(
    request: Request, session: DB, actor: APIActor, sort: Sort = None, cursor: Cursor = None, limit: Limit = 50
) -> dict:
    require(actor, "activities:read")
    return _page(session, actor, request, ACTIVITY_FILTERS, Activity, ActivityRead, sort, cursor, limit)


@activities_router.post("", response_model=ActivityRead, status_code=201)
def log_activity(data: ActivityCreate, response: Response, session: DB, actor: APIActor) -> Activity:
    """Log a call, meeting, visit or e-mail on a customer, a company or a deal."""
    activity = activities.log_activity(session, actor=actor, data=data)
    session.commit()
    with_etag(response, activity.version)
    response.headers["Location"] = f"/api/v1/activities/{activity.id}"
    return activity


@activities_router.get("/{activity_id}", response_model=ActivityRead)
def get_activity(activity_id: int, response: Response, session: DB, actor: APIActor) -> Activity:
    require(actor, "activities:read")
    activity = activities.get_activity(session, activity_id)
    with_etag(response, activity.version)
    return activity


@activities_router.patch("/{activity_id}", response_model=ActivityRead)
def update_activity(
    activity_id: int, data: ActivityUpdate, response: Response, session: DB, actor: APIActor, if_match: IfMatch = None
) -> Activity:
    version = require_precondition(if_match, data.version)
    activity = activities.update_activity(
        session, actor=actor, activity_id=activity_id, data=data, expected_version=version
    )
    session.commit()
    with_etag(response, activity.version)
    return activity


@activities_router.delete("/{activity_id}", status_code=204)
def delete_activity(activity_id: int, session: DB, actor: APIActor, if_match: IfMatch = None) -> Response:
    activities.delete_activity(
        session, actor=actor, activity_id=activity_id, expected_version=require_if_match(if_match)
    )
    session.commit()
    return Response(status_code=204)


@tasks_router.get("", response_model=Page[TaskRead])
def list_tasks(
    request: Request, session: DB, actor: APIActor, sort: Sort = None, cursor: Cursor = None, limit: Limit = 50
) -> dict:
    """Tasks, filtered by ``owner_id``, ``status``, ``due_at__lt`` ... and ``editable=true``."""
    require(actor, "tasks:read")
    return _page(session, actor, request, TASK_FILTERS, Task, TaskRead, sort, cursor, limit)


@tasks_router.post("", response_model=TaskRead, status_code=201)
def create_task(data: TaskCreate, response: Response, session: DB, actor: APIActor) -> Task:
    task = activities.create_task(session, actor=actor, data=data)
    session.commit()
    with_etag(response, task.version)
    response.headers["Location"] = f"/api/v1/tasks/{task.id}"
    return task


@tasks_router.get("/{task_id}", response_model=TaskRead)
def get_task(task_id: int, response: Response, session: DB, actor: APIActor) -> Task:
    require(actor, "tasks:read")
    task = activities.get_task(session, task_id)
    with_etag(response, task.version)
    return task


@tasks_router.patch("/{task_id}", response_model=TaskRead)
def update_task(
    task_id: int, data: TaskUpdate, response: Response, session: DB, actor: APIActor, if_match: IfMatch = None
) -> Task:
    version = require_precondition(if_match, data.version)
    task = activities.update_task(session, actor=actor, task_id=task_id, data=data, expected_version=version)
    session.commit()
    with_etag(response, task.version)
    return task


teams_router = APIRouter(prefix="/teams", tags=["teams"])


@teams_router.get("", response_model=list[TeamRead])
def list_teams(session: DB, actor: APIActor) -> list[dict]:
    """Teams and their members (a rep edits the deals of their teammates)."""
    require(actor, "deals:read")
    return [{"id": t.id, "name": t.name, "member_ids": m} for t, m in teams.list_teams(session)]


@teams_router.post("", response_model=TeamRead, status_code=201)
def create_team(data: TeamCreate, session: DB, actor: APIActor) -> dict:
    team = teams.create_team(session, actor=actor, name=data.name, member_ids=data.member_ids)
    session.commit()
    return {"id": team.id, "name": team.name, "member_ids": teams.members(session, team.id)}


@teams_router.put("/{team_id}/members", response_model=TeamRead)
def set_team_members(team_id: int, data: TeamMembers, session: DB, actor: APIActor) -> dict:
    """Replace the team's members."""
    member_ids = teams.set_members(session, actor=actor, team_id=team_id, member_ids=data.member_ids)
    session.commit()
    team = next(t for t, _ in teams.list_teams(session) if t.id == team_id)
    return {"id": team.id, "name": team.name, "member_ids": member_ids}
