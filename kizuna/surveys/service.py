"""Surveys (create, edit, delete: audited), the links of a customer, and answering through a link.

Answers come from customers through signed links, not from users: like tracked events they are not audited,
but each new or changed answer records a customer event ``nps.answered`` (score, category, comment, survey,
touchpoint), which puts it before journeys (a trigger with ``{"score": {"lte": 6}}`` catches detractors) and webhooks.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from kizuna.auth import audit
from kizuna.auth.permissions import Actor, require
from kizuna.db import check_version, utcnow
from kizuna.errors import Conflict, KizunaError, NotFound, ValidationError
from kizuna.surveys import links
from kizuna.surveys.models import Survey, SurveyResponse
from kizuna.surveys.report import category
from kizuna.surveys.schemas import LinksRead, ScoreLink, SurveyCreate, SurveyUpdate

EVENT = "nps.answered"
# Who records an answer: the customer, through a public link (live activity, as the tracking endpoints are).
RESPONDENT = Actor.system("surveys", origin="tracking")
_EDITABLE = ("name", "question_ja", "question_en", "touchpoint", "active", "link_days")


class SurveyClosed(KizunaError):
    status_code = 410
    code = "survey_closed"


def list_surveys(session: Session, *, actor: Actor) -> list[Survey]:
    require(actor, "surveys:read")
    return list(session.scalars(select(Survey).order_by(Survey.active.desc(), Survey.name)))


def get_survey(session: Session, survey_id: int, *, actor: Actor | None = None) -> Survey:
    if actor is not None:
        require(actor, "surveys:read")
    survey = session.get(Survey, survey_id)
    if survey is None:
        raise NotFound(f"survey {survey_id} not found", field="survey_id")
    return survey


def _name_taken(session: Session, name: str, *, other_than: int | None = None) -> bool:
    query = select(Survey.id).where(Survey.name == name)
    if other_than is not None:
        query = query.where(Survey.id != other_than)
    return session.scalar(query) is not None


def create_survey(session: Session, *, actor: Actor, data: SurveyCreate) -> Survey:
    require(actor, "surveys:write")
    if _name_taken(session, data.name):
        raise Conflict(f"a survey named {data.name!r} already exists", field="name")
    survey = Survey(**data.model_dump(), created_by=actor.label)
    session.add(survey)
    session.flush()
    audit.record(
        session,
        actor=actor,
        action="survey.create",
        entity_type="survey",
        entity_id=survey.id,
        details={"name": survey.name, "touchpoint": survey.touchpoint, "active": survey.active},
        summary=f"created survey {survey.name}",
    )
    return survey


def update_survey(session: Session, survey_id: int, *, actor: Actor, data: SurveyUpdate) -> Survey:
    require(actor, "surveys:write")
    survey = get_survey(session, survey_id)
    check_version(survey.version, body=data.version)
    values = {k: v for k, v in data.model_dump(exclude_unset=True, exclude={"version"}).items() if v is not None}
    if "name" in values and _name_taken(session, values["name"], other_than=survey.id):
        raise Conflict(f"a survey named {values['name']!r} already exists", field="name")
    before = {k: getattr(survey, k) for k in _EDITABLE}
    for name, value in values.items():
        setattr(survey, name, value)
    diff = audit.changes(before, {k: getattr(survey, k) for k in _EDITABLE})
    if diff:
        session.flush()  # bumps the version (optimistic locking)
        audit.record(
            session,
            actor=actor,
            action="survey.update",
            entity_type="survey",
            entity_id=survey.id,
            details={"changes": diff},
            summary=f"edited survey {survey.name}",
        )
    return survey


def delete_survey(session: Session, survey_id: int, *, actor: Actor) -> None:
    """Delete a survey and its answers (a survey only paused keeps them: set ``active`` false instead)."""
    require(actor, "surveys:write")
    survey = get_survey(session, survey_id)
    answered = session.scalar(select(SurveyResponse.id).where(SurveyResponse.survey_id == survey.id).limit(1))
    audit.record(
        session,
        actor=actor,
        action="survey.delete",
        entity_type="survey",
        entity_id=survey.id,
        details={"name": survey.name, "had_answers": answered is not None},
        summary=f"deleted survey {survey.name}",
    )
    session.delete(survey)


def active_link_days(session: Session) -> dict[int, int]:
    """Active survey id -> link_days: what ``nps_links`` in a batch of messages may name."""
    rows = session.execute(select(Survey.id, Survey.link_days).where(Survey.active.is_(True)))
    return {survey_id: days for survey_id, days in rows}


def make_links(
    session: Session,
    *,
    actor: Actor,
    survey_id: int,
    customer_id: int,
    base_url: str,
    send_key: str | None = None,
    now: dt.datetime | None = None,
) -> LinksRead:
    """The 11 links of a customer for another tool (a mail tool, a receipt printer, a chat)."""
    from kizuna.customers.service import resolve_id

    require(actor, "surveys:write")
    survey = get_survey(session, survey_id)
    if not survey.active:
        raise SurveyClosed(f"survey {survey.name!r} is not active; activate it before sending links", field="survey_id")
    try:
        customer_id = resolve_id(session, customer_id)
    except NotFound as exc:
        raise ValidationError(f"customer {customer_id} does not exist", field="customer_id") from exc
    key = send_key or f"link:{uuid.uuid4().hex}"
    expires = links.expiry(now or utcnow(), survey.link_days)
    found = links.score_urls(base_url, links.token(survey.id, customer_id, key, expires))
    return LinksRead(
        survey_id=survey.id,
        customer_id=customer_id,
        send_key=key,
        expires_at=expires,
        links=[ScoreLink(**item) for item in found],
    )


def _source_of(session: Session, send_key: str) -> tuple[str, int | None]:
    """Where a link came from: the campaign or journey whose message had this delivery key, else ``link``."""
    from kizuna.messaging.models import Message

    found = session.execute(select(Message.source, Message.source_id).where(Message.delivery_key == send_key)).first()
    if found is not None and found.source in ("campaign", "journey"):
        return found.source, found.source_id
    return "link", None


def open_link(
    session: Session, token_text: str, *, now: dt.datetime | None = None
) -> tuple[Survey, links.Claim, SurveyResponse | None]:
    """What the survey page shows for a link: the survey and the answer already given through it, if any.
    Reads only. ``keys.BadToken`` / ``LinkExpired`` for a bad link, ``NotFound`` when the survey was deleted."""
    claim = links.read(token_text, now=now)
    survey = session.get(Survey, claim.survey_id)
    if survey is None:
        raise NotFound("this survey no longer exists")
    return survey, claim, _existing(session, claim, _customer(session, claim))


def _customer(session: Session, claim: links.Claim) -> int:
    from kizuna.customers.service import resolve_id

    # A customer merged since the link was sent answers as the survivor (whose answers the merge moved).
    return resolve_id(session, claim.customer_id)


def _existing(session: Session, claim: links.Claim, customer_id: int) -> SurveyResponse | None:
    return session.scalar(
        select(SurveyResponse).where(
            SurveyResponse.survey_id == claim.survey_id,
            SurveyResponse.customer_id == customer_id,
            SurveyResponse.send_key == claim.send_key,
        )
    )


def answer(
    session: Session, token_text: str, *, score: int, comment: str = "", now: dt.datetime | None = None
) -> tuple[SurveyResponse, bool]:
    """Record the answer given through a link; returns (response, created). A second answer through the same
    link updates the first. The caller commits (and on SQLite holds the write lock)."""
    if isinstance(score, bool) or not isinstance(score, int) or not 0 <= score <= 10:
        raise ValidationError(
            f"the score must be a whole number from 0 to 10, not {score!r}", field="score", key="surveys.error.score"
        )
    comment = (comment or "").strip()
    if len(comment) > 5000:
        raise ValidationError(
            "the comment is longer than 5,000 characters", field="comment", key="surveys.error.comment_long"
        )
    if "\x00" in comment:
        raise ValidationError(
            "the comment contains a NUL character", field="comment", key="surveys.error.comment_invalid"
        )
    survey, claim, existing = open_link(session, token_text, now=now)
    if not survey.active:
        raise SurveyClosed("this survey is closed")
    customer_id = _customer(session, claim)
    now = now or utcnow()
    created = existing is None
    if existing is None:
        source, source_id = _source_of(session, claim.send_key)
        response = SurveyResponse(
            survey_id=survey.id,
            customer_id=customer_id,
            score=score,
            comment=comment,
            touchpoint=survey.touchpoint,
            source=source,
            source_id=source_id,
            send_key=claim.send_key,
            answered_at=now,
            updated_at=now,
        )
        try:
            with session.begin_nested():
                session.add(response)
        except IntegrityError:
            # The same link answered at the same moment in another request: that one's row is updated instead.
            created = False
            existing = _existing(session, claim, customer_id)
            if existing is None:
                raise
    changed = created
    if existing is not None:
        response = existing
        changed = (response.score, response.comment) != (score, comment)
        if changed:
            response.score = score
            response.comment = comment
            response.answers += 1
            response.updated_at = now
    session.flush()
    if changed:
        _record_event(session, survey, response, changed_answer=not created, at=now)
    return response, created


def _record_event(
    session: Session, survey: Survey, response: SurveyResponse, *, changed_answer: bool, at: dt.datetime
) -> None:
    from kizuna.events import service as events
    from kizuna.events.schemas import EventCreate

    properties: dict[str, Any] = {
        "score": response.score,
        "category": category(response.score),
        # What the customer wrote, for what follows the answer: an open_inquiry step puts it into the ticket.
        "comment": response.comment,
        "survey_id": survey.id,
        "survey": survey.name,
        "touchpoint": response.touchpoint,
        "response_id": response.id,
        "source": response.source,
        "changed": changed_answer,
    }
    events.record_event(
        session,
        actor=RESPONDENT,
        data=EventCreate(
            customer_id=response.customer_id,
            type=EVENT,
            # The answer is given on Kizuna's survey page.
            channel="web",
            source="survey",
            occurred_at=at,
            properties=properties,
        ),
    )


def list_responses(
    session: Session, survey_id: int, *, actor: Actor, limit: int = 100, before_id: int | None = None
) -> list[SurveyResponse]:
    """Answers newest first, ``limit`` at a time (``before_id``: the last id of the previous page)."""
    require(actor, "surveys:read")
    get_survey(session, survey_id)
    if not 1 <= limit <= 1000:
        raise ValidationError("limit must be between 1 and 1000", field="limit")
    query = select(SurveyResponse).where(SurveyResponse.survey_id == survey_id)
    if before_id is not None:
        query = query.where(SurveyResponse.id < before_id)
    return list(session.scalars(query.order_by(SurveyResponse.id.desc()).limit(limit)))


def latest_comments(session: Session, survey_id: int, *, limit: int = 20) -> list[SurveyResponse]:
    return list(
        session.scalars(
            select(SurveyResponse)
            .where(SurveyResponse.survey_id == survey_id, SurveyResponse.comment != "")
            .order_by(SurveyResponse.updated_at.desc(), SurveyResponse.id.desc())
            .limit(limit)
        )
    )


def before_merge(session: Session, *, survivor_id: int, merged_id: int) -> int:
    """Make room for the merged customer's answers on the survivor: where both answered one survey under the same
    send key (a key a tool chose for everyone it sent to), the newer answer stays and the older goes, so that the
    link stays counted once. Returns how many answers were dropped. Called by ``merge_customers`` before it moves
    the rows."""
    from sqlalchemy import delete
    from sqlalchemy.orm import aliased

    mine, theirs = aliased(SurveyResponse), aliased(SurveyResponse)
    pairs = session.execute(
        select(mine.id, mine.updated_at, theirs.id, theirs.updated_at)
        .join(
            theirs,
            (theirs.survey_id == mine.survey_id)
            & (theirs.send_key == mine.send_key)
            & (theirs.customer_id == merged_id),
        )
        .where(mine.customer_id == survivor_id)
    ).all()
    older = [kept_id if kept_at < moved_at else moved_id for kept_id, kept_at, moved_id, moved_at in pairs]
    if older:
        session.execute(
            delete(SurveyResponse).where(SurveyResponse.id.in_(older)).execution_options(synchronize_session=False)
        )
    return len(older)
