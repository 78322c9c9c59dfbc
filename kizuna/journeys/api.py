"""``/api/v1/journeys``: list, create, read, edit the draft, publish, pause, resume, archive, validate, enrol
customers and read the numbers."""

from __future__ import annotations

from fastapi import APIRouter
from sqlalchemy.orm import Session

from kizuna.auth.permissions import Actor
from kizuna.journeys import service
from kizuna.journeys import stats as journey_stats
from kizuna.journeys.models import Journey
from kizuna.journeys.schemas import (
    DefinitionBody,
    EnrollBody,
    EnrollRead,
    JourneyRead,
    JourneySummary,
    StatsRead,
    StepStatsRead,
    UpliftRead,
    ValidationRead,
    VariantRead,
    VersionRead,
)
from kizuna.web.deps import DB, APIActor

router = APIRouter(prefix="/journeys", tags=["journeys"])


def _read(session: Session, journey: Journey, actor: Actor) -> JourneyRead:
    live = service.live_version(session, journey)
    return JourneyRead(
        id=journey.id,
        name=journey.name,
        description=journey.description,
        status=journey.status,
        draft=journey.draft,
        live_version=live.version if live else None,
        live_definition=live.definition if live else None,
        unpublished_changes=service.has_unpublished_changes(session, journey),
        versions=[VersionRead.model_validate(v) for v in service.versions(session, journey.id, actor=actor)],
        created_at=journey.created_at,
        updated_at=journey.updated_at,
    )


@router.get("", response_model=list[JourneySummary])
def list_journeys(session: DB, actor: APIActor) -> list[JourneySummary]:
    counts = journey_stats.summaries(session, actor=actor)
    out = []
    for j in service.list_journeys(session, actor=actor):
        c = counts.get(j.id, {})
        live = service.live_version(session, j)
        out.append(
            JourneySummary(
                id=j.id,
                name=j.name,
                status=j.status,
                live_version=live.version if live else None,
                trigger=j.trigger_type or (j.draft.get("trigger") or {}).get("type"),
                enrolled=sum(c.values()),
                open=c.get("active", 0) + c.get("waiting", 0),
                converted=c.get("converted", 0),
            )
        )
    return out


@router.post("", response_model=JourneyRead, status_code=201)
def create_journey(session: DB, actor: APIActor, body: DefinitionBody) -> JourneyRead:
    """Create a draft journey (publish it to start enrolling)."""
    journey = service.create_journey(session, actor=actor, definition=body.definition)
    session.commit()
    return _read(session, journey, actor)


@router.post("/validate", response_model=ValidationRead)
def validate(session: DB, actor: APIActor, body: DefinitionBody) -> ValidationRead:
    """Every problem of a definition, each naming its step and path, without saving anything."""
    problems = service.validate(session, body.definition, actor=actor)
    return ValidationRead(valid=not problems, problems=problems)  # type: ignore[arg-type]


@router.get("/{journey_id}", response_model=JourneyRead)
def get_journey(session: DB, actor: APIActor, journey_id: int) -> JourneyRead:
    return _read(session, service.get_journey(session, journey_id, actor=actor), actor)


@router.put("/{journey_id}", response_model=JourneyRead)
def update_draft(session: DB, actor: APIActor, journey_id: int, body: DefinitionBody) -> JourneyRead:
    """Replace the draft; a live journey keeps running its published version until the draft is published."""
    journey = service.update_draft(session, journey_id, actor=actor, definition=body.definition)
    session.commit()
    return _read(session, journey, actor)


@router.post("/{journey_id}/publish", response_model=JourneyRead)
def publish(session: DB, actor: APIActor, journey_id: int) -> JourneyRead:
    """Make the draft live (a new version when it changed); customers already inside keep their version."""
    service.publish(session, journey_id, actor=actor)
    session.commit()
    return _read(session, service.get_journey(session, journey_id, actor=actor), actor)


@router.post("/{journey_id}/pause", response_model=JourneyRead)
def pause(session: DB, actor: APIActor, journey_id: int) -> JourneyRead:
    journey = service.pause(session, journey_id, actor=actor)
    session.commit()
    return _read(session, journey, actor)


@router.post("/{journey_id}/resume", response_model=JourneyRead)
def resume(session: DB, actor: APIActor, journey_id: int) -> JourneyRead:
    journey = service.resume(session, journey_id, actor=actor)
    session.commit()
    return _read(session, journey, actor)


@router.post("/{journey_id}/archive", response_model=JourneyRead)
def archive(session: DB, actor: APIActor, journey_id: int) -> JourneyRead:
    journey = service.archive(session, journey_id, actor=actor)
    session.commit()
    return _read(session, journey, actor)


@router.post("/{journey_id}/enrollments", response_model=EnrollRead)
def enroll(session: DB, actor: APIActor, journey_id: int, body: EnrollBody) -> EnrollRead:
    """Enrol customers by id (a manual or API entry, whatever the trigger); the re-entry rule applies."""
    result = service.enroll_customers(session, journey_id, actor=actor, customer_ids=body.customer_ids)
    session.commit()
    return EnrollRead(enrolled=result.enrolled, skipped=result.skipped)


def stats_read(found: journey_stats.JourneyStats) -> StatsRead:
    def variant(v: journey_stats.VariantStats) -> VariantRead:
        return VariantRead(
            name=v.name,
            customers=v.customers,
            successes=v.successes,
            rate=v.rate,
            sent=v.sent,
            opened=v.opened,
            clicked=v.clicked,
            z=v.z,
            p_value=v.p_value,
        )

    uplift = found.uplift
    return StatsRead(
        journey_id=found.journey_id,
        name=found.name,
        version=found.version,
        enrolled=found.enrolled,
        statuses=found.statuses,
        metric=found.metric,
        steps=[
            StepStatsRead(
                step=s.step,
                type=s.type,
                entered=s.entered,
                due=s.due,
                waiting=s.waiting,
                completed=s.completed,
                failed=s.failed,
                exited=s.exited,
                converted=s.converted,
                dropped=s.dropped,
                messages=s.messages,
            )
            for s in found.steps
        ],
        links=found.links,
        variants=[variant(v) for v in found.variants],
        chi2_p_value=found.chi2_p_value,
        uplift=None
        if uplift is None
        else UpliftRead(
            treated=variant(uplift.treated),
            holdout=variant(uplift.holdout),
            absolute=uplift.absolute,
            relative=uplift.relative,
            z=uplift.z,
            p_value=uplift.p_value,
        ),
    )


@router.get("/{journey_id}/stats", response_model=StatsRead)
def stats(session: DB, actor: APIActor, journey_id: int) -> StatsRead:
    """Per step entered / waiting / completed / dropped and message outcomes; paths; A/B results and uplift."""
    return stats_read(journey_stats.journey_stats(session, journey_id, actor=actor))
