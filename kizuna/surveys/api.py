"""``/api/v1/surveys``: surveys (CRUD), their answers, NPS reports, and answer links for other tools."""

from __future__ import annotations

import datetime as dt

from fastapi import APIRouter, Query, Request, Response

from kizuna.auth.permissions import require
from kizuna.config import get_settings
from kizuna.surveys import report, service
from kizuna.surveys.models import SurveyResponse
from kizuna.surveys.schemas import (
    Breakdown,
    LinkRequest,
    LinksRead,
    NPSReport,
    ResponseRead,
    SurveyCreate,
    SurveyRead,
    SurveyUpdate,
)
from kizuna.web.deps import DB, APIActor

router = APIRouter(prefix="/surveys", tags=["surveys"])


def response_read(r: SurveyResponse) -> ResponseRead:
    return ResponseRead.model_validate({**{c: getattr(r, c) for c in ResponseRead.model_fields if c != "category"},
                                        "category": report.category(r.score)})  # fmt: skip


def public_base(request: Request) -> str:
    """Where links lead: ``KIZUNA_PUBLIC_URL``, else the address this request came to."""
    return get_settings().public_url or str(request.base_url)


@router.get("", response_model=list[SurveyRead])
def list_surveys(session: DB, actor: APIActor) -> list[SurveyRead]:
    return [SurveyRead.model_validate(s) for s in service.list_surveys(session, actor=actor)]


@router.post("", response_model=SurveyRead, status_code=201)
def create_survey(session: DB, actor: APIActor, data: SurveyCreate) -> SurveyRead:
    survey = service.create_survey(session, actor=actor, data=data)
    session.commit()
    return SurveyRead.model_validate(survey)


@router.get("/{survey_id}", response_model=SurveyRead)
def get_survey(session: DB, actor: APIActor, survey_id: int) -> SurveyRead:
    return SurveyRead.model_validate(service.get_survey(session, survey_id, actor=actor))


@router.patch("/{survey_id}", response_model=SurveyRead)
def update_survey(session: DB, actor: APIActor, survey_id: int, data: SurveyUpdate) -> SurveyRead:
    survey = service.update_survey(session, survey_id, actor=actor, data=data)
    session.commit()
    return SurveyRead.model_validate(survey)


@router.delete("/{survey_id}", status_code=204)
def delete_survey(session: DB, actor: APIActor, survey_id: int) -> Response:
    service.delete_survey(session, survey_id, actor=actor)
    session.commit()
    return Response(status_code=204)


@router.get("/{survey_id}/responses", response_model=list[ResponseRead])
def list_responses(
    session: DB,
    actor: APIActor,
    survey_id: int,
    limit: int = Query(default=100, ge=1, le=1000),
    before_id: int | None = Query(default=None, description="The last id of the previous page."),
) -> list[ResponseRead]:
    """Answers, newest first; each link's current answer once."""
    rows = service.list_responses(session, survey_id, actor=actor, limit=limit, before_id=before_id)
    return [response_read(r) for r in rows]


@router.get("/{survey_id}/nps", response_model=NPSReport)
def nps(
    session: DB,
    actor: APIActor,
    survey_id: int,
    by: Breakdown = "month",
    start: dt.date | None = Query(default=None, alias="from", description="First day (inclusive)."),
    end: dt.date | None = Query(default=None, alias="to", description="Last day (inclusive)."),
) -> NPSReport:
    """NPS (% promoters 9-10 minus % detractors 0-6) overall and by month, segment, touchpoint or owner, of the
    answers given in a period (days in the configured time zone) or ever."""
    require(actor, "surveys:read")
    service.get_survey(session, survey_id)
    return report.report(session, survey_id, by=by, start=start, end=end)


@router.post("/{survey_id}/links", response_model=LinksRead)
def links(session: DB, actor: APIActor, request: Request, survey_id: int, data: LinkRequest) -> LinksRead:
    """The 11 signed answer links (scores 0-10) of a customer, for a tool that sends them itself. Opening a
    link records nothing; the answer is recorded when the customer submits the page."""
    return service.make_links(
        session,
        actor=actor,
        survey_id=survey_id,
        customer_id=data.customer_id,
        send_key=data.send_key,
        base_url=public_base(request),
    )
