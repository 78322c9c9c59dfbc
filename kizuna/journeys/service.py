"""Journeys: create, edit the draft, publish (a new immutable version), pause, resume, archive, enrol customers.

Each write checks the actor's permission and records its audit entry in the caller's transaction; publishing,
pausing, resuming and archiving also write an outbox message (``journey.published`` ...), so that KPI charts can
mark when a journey changed. The edge commits.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from kizuna.auth import audit
from kizuna.auth.permissions import Actor, require
from kizuna.db import utcnow
from kizuna.errors import Conflict, NotFound, ValidationError
from kizuna.journeys import enroll as enrolment
from kizuna.journeys import validation
from kizuna.journeys.definition import (
    DateTrigger,
    Definition,
    DormancyTrigger,
    EventTrigger,
    SegmentTrigger,
    parse_definition,
)
from kizuna.journeys.models import OPEN_STATUSES, Journey, JourneyEnrollment, JourneyVersion
from kizuna.outbox.service import emit

MAX_MANUAL = 100_000


def starter(name: str) -> dict[str, Any]:
    """The definition a journey made in the UI starts from: entered by hand, straight to the exit."""
    return {
        "name": name,
        "trigger": {"type": "manual"},
        "start": "exit",
        "steps": [{"id": "exit", "type": "exit"}],
        "layout": {"__trigger": {"x": 20, "y": 40}, "exit": {"x": 260, "y": 40}},
    }


# --- reading ---------------------------------------------------------------------------------------------------


def list_journeys(session: Session, *, actor: Actor) -> list[Journey]:
    require(actor, "journeys:read")
    return list(session.scalars(select(Journey).order_by(Journey.name, Journey.id)))


def get_journey(session: Session, journey_id: int, *, actor: Actor) -> Journey:
    require(actor, "journeys:read")
    journey = session.get(Journey, journey_id)
    if journey is None:
        raise NotFound(f"journey {journey_id} not found", key="journeys.not_found", params={"id": journey_id})
    return journey


def get_by_name(session: Session, name: str, *, actor: Actor) -> Journey:
    require(actor, "journeys:read")
    journey = session.scalar(select(Journey).where(Journey.name == name))
    if journey is None:
        raise NotFound(f"there is no journey named '{name}'", key="journeys.not_found_name", params={"name": name})
    return journey


def versions(session: Session, journey_id: int, *, actor: Actor) -> list[JourneyVersion]:
    get_journey(session, journey_id, actor=actor)
    return list(
        session.scalars(
            select(JourneyVersion).where(JourneyVersion.journey_id == journey_id).order_by(JourneyVersion.version)
        )
    )


def live_version(session: Session, journey: Journey) -> JourneyVersion | None:
    return session.get(JourneyVersion, journey.live_version_id) if journey.live_version_id else None


def has_unpublished_changes(session: Session, journey: Journey) -> bool:
    live = live_version(session, journey)
    return live is None or live.definition != journey.draft


def validate(session: Session, raw: Any, *, actor: Actor) -> list[dict[str, Any]]:
    """Every problem of a definition (empty: it can be saved and published)."""
    require(actor, "journeys:read")
    return [p.as_dict() for p in validation.problems(session, raw)]


# --- writing ---------------------------------------------------------------------------------------------------


def _check_name(session: Session, name: str, journey_id: int | None = None) -> None:
    taken = session.scalar(select(Journey.id).where(Journey.name == name, Journey.id != (journey_id or 0)))
    if taken is not None:
        raise Conflict(
            f"a journey named '{name}' already exists", field="name", key="journeys.name_taken", params={"name": name}
        )


def create_journey(session: Session, *, actor: Actor, definition: Any) -> Journey:
    """A draft journey from a definition (checked whole: a definition with a problem is refused)."""
    require(actor, "journeys:write")
    parsed = validation.check(session, definition)
    _check_name(session, parsed.name)
    now = utcnow()
    journey = Journey(
        name=parsed.name,
        description=parsed.description,
        status="draft",
        draft=parsed.as_json(),
        created_at=now,
        updated_at=now,
        updated_by=actor.label,
    )
    session.add(journey)
    session.flush()
    audit.record(
        session, actor=actor, action="journey.create", entity_type="journey", entity_id=journey.id, summary=journey.name
    )
    return journey


def update_draft(session: Session, journey_id: int, *, actor: Actor, definition: Any) -> Journey:
    """Replace the draft (customers inside keep the version they entered; publish to make the draft live)."""
    require(actor, "journeys:write")
    journey = get_journey(session, journey_id, actor=actor)
    if journey.status == "archived":
        raise Conflict(f"journey {journey_id} is archived", key="journeys.archived", params={"id": journey_id})
    parsed = validation.check(session, definition)
    _check_name(session, parsed.name, journey.id)
    new = parsed.as_json()
    if new == journey.draft:
        return journey
    before = {"name": journey.name, "draft": journey.draft}
    journey.name, journey.description, journey.draft = parsed.name, parsed.description, new
    journey.updated_at, journey.updated_by = utcnow(), actor.label
    audit.record(
        session,
        actor=actor,
        action="journey.update",
        entity_type="journey",
        entity_id=journey.id,
        summary=journey.name,
        details={"name": [before["name"], journey.name]} if before["name"] != journey.name else None,
    )
    return journey


def _trigger_columns(definition: Definition) -> tuple[str, str | None]:
    trigger = definition.trigger
    if isinstance(trigger, EventTrigger):
        return trigger.type, trigger.event
    if isinstance(trigger, SegmentTrigger):
        return trigger.type, str(trigger.segment)
    return trigger.type, None


def _announce(session: Session, journey: Journey, topic: str, actor: Actor, version: int | None) -> None:
    payload = {"journey_id": journey.id, "name": journey.name, "version": version, "status": journey.status}
    emit(session, topic, payload, origin=actor.origin)
    audit.record(
        session,
        actor=actor,
        action=topic,
        entity_type="journey",
        entity_id=journey.id,
        summary=journey.name,
        details={"version": version, "status": journey.status},
    )


def publish(session: Session, journey_id: int, *, actor: Actor) -> JourneyVersion:
    """Make the draft live: a new version when it differs from the live one; new customers enter it."""
    require(actor, "journeys:write")
    journey = get_journey(session, journey_id, actor=actor)
    if journey.status == "archived":
        raise Conflict(f"journey {journey_id} is archived", key="journeys.archived", params={"id": journey_id})
    definition = validation.check(session, journey.draft)
    version = live_version(session, journey)
    if version is None or version.definition != journey.draft:
        highest = select(func.coalesce(func.max(JourneyVersion.version), 0))
        number = int(session.scalar(highest.where(JourneyVersion.journey_id == journey.id)) or 0)
        version = JourneyVersion(
            journey_id=journey.id,
            version=number + 1,
            definition=journey.draft,
            published_at=utcnow(),
            published_by=actor.label,
        )
        session.add(version)
        session.flush()
    elif journey.status == "live":
        return version
    journey.live_version_id = version.id
    journey.status = "live"
    journey.trigger_type, journey.trigger_key = _trigger_columns(definition)
    journey.goal_event = definition.goal.event if definition.goal else None
    journey.updated_at, journey.updated_by = utcnow(), actor.label
    _announce(session, journey, "journey.published", actor, version.version)
    if isinstance(definition.trigger, (DateTrigger, DormancyTrigger)):
        from kizuna.journeys.scans import ensure_scheduled

        ensure_scheduled(session)
    return version


def _set_status(session: Session, journey_id: int, *, actor: Actor, status: str, allowed: tuple[str, ...]) -> Journey:
    require(actor, "journeys:write")
    journey = get_journey(session, journey_id, actor=actor)
    if journey.status == status:
        return journey
    if journey.status not in allowed:
        raise Conflict(
            f"journey {journey_id} is {journey.status}; it cannot become {status}",
            key="journeys.bad_status",
            params={"id": journey_id, "status": journey.status, "wanted": status},
        )
    journey.status = status
    journey.updated_at, journey.updated_by = utcnow(), actor.label
    version = live_version(session, journey)
    topic = {"paused": "journey.paused", "live": "journey.resumed", "archived": "journey.archived"}[status]
    _announce(session, journey, topic, actor, version.version if version else None)
    if status == "live" and journey.trigger_type in ("date", "dormancy"):
        from kizuna.journeys.scans import ensure_scheduled

        ensure_scheduled(session)
    return journey


def pause(session: Session, journey_id: int, *, actor: Actor) -> Journey:
    """Stop enrolling and moving customers; they stay where they are until the journey is resumed."""
    return _set_status(session, journey_id, actor=actor, status="paused", allowed=("live",))


def resume(session: Session, journey_id: int, *, actor: Actor) -> Journey:
    return _set_status(session, journey_id, actor=actor, status="live", allowed=("paused",))


def archive(session: Session, journey_id: int, *, actor: Actor) -> Journey:
    """End the journey: customers still inside leave it (exited); its history and numbers stay."""
    journey = _set_status(session, journey_id, actor=actor, status="archived", allowed=("draft", "live", "paused"))
    session.execute(
        update(JourneyEnrollment)
        .where(JourneyEnrollment.journey_id == journey.id, JourneyEnrollment.status.in_(OPEN_STATUSES))
        .values(status="exited", finished_at=utcnow(), next_at=None, last_error="journey archived")
        .execution_options(synchronize_session=False)
    )
    return journey


@dataclass(frozen=True)
class Applied:
    journey: Journey
    version: JourneyVersion
    created: bool
    new_version: bool


def apply(session: Session, *, actor: Actor, definition: Any) -> Applied:
    """Create the journey the definition names, or make the definition its new draft, and publish it."""
    require(actor, "journeys:write")
    parsed = parse_definition(definition)
    existing = session.scalar(select(Journey).where(Journey.name == parsed.name))
    if existing is None:
        journey = create_journey(session, actor=actor, definition=definition)
        created = True
    else:
        journey = update_draft(session, existing.id, actor=actor, definition=definition)
        created = False
    before = journey.live_version_id
    version = publish(session, journey.id, actor=actor)
    return Applied(journey, version, created, version.id != before)


@dataclass(frozen=True)
class Enrolled:
    enrolled: int
    skipped: int


def enroll_customers(session: Session, journey_id: int, *, actor: Actor, customer_ids: list[int]) -> Enrolled:
    """Put customers into a live journey by hand or through the API (any trigger), by its re-entry rule."""
    require(actor, "journeys:write")
    journey = get_journey(session, journey_id, actor=actor)
    if journey.status != "live" or journey.live_version_id is None:
        raise Conflict(
            f"journey {journey_id} is {journey.status}: only a live journey takes customers",
            key="journeys.not_live",
            params={"id": journey_id, "status": journey.status},
        )
    ids = sorted(set(customer_ids))
    if not ids or len(ids) > MAX_MANUAL:
        raise ValidationError(
            f"give 1 to {MAX_MANUAL:,} customer ids", field="customer_ids", key="journeys.enroll_count"
        )
    from kizuna.journeys.engine import definition_of

    definition = definition_of(session, journey.live_version_id)
    key = f"manual:{uuid.uuid4().hex[:16]}"
    count = enrolment.enroll(
        session,
        journey_id=journey.id,
        version_id=journey.live_version_id,
        definition=definition,
        entries=[enrolment.Entry(customer_id=i, entry_key=key) for i in ids],
    )
    audit.record(
        session,
        actor=actor,
        action="journey.enroll",
        entity_type="journey",
        entity_id=journey.id,
        summary=journey.name,
        details={"asked": len(ids), "enrolled": count, "ids": ids[:100]},
    )
    return Enrolled(enrolled=count, skipped=len(ids) - count)
