"""The data of the journey pages: the list with its counts, and the builder (the draft, the live version, the
choices its settings offer: templates and segments, and the live counts of each step). One function per page,
so the web layer asks here instead of reading other domains' tables."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from kizuna.auth.permissions import Actor, require
from kizuna.journeys import service, stats
from kizuna.journeys.models import Journey, JourneyVersion
from kizuna.journeys.steps import step_types
from kizuna.messaging.models import Template
from kizuna.segments.models import Segment


@dataclass(frozen=True)
class ListRow:
    journey: Journey
    live_version: int | None
    trigger: str | None
    enrolled: int
    open: int
    converted: int
    failed: int


def list_page(session: Session, *, actor: Actor) -> list[ListRow]:
    counts = stats.summaries(session, actor=actor)
    versions = {i: v for i, v in session.execute(select(JourneyVersion.id, JourneyVersion.version))}
    rows = []
    for j in service.list_journeys(session, actor=actor):
        c = counts.get(j.id, {})
        rows.append(
            ListRow(
                journey=j,
                live_version=versions.get(j.live_version_id) if j.live_version_id else None,
                trigger=j.trigger_type or (j.draft.get("trigger") or {}).get("type"),
                enrolled=sum(c.values()),
                open=c.get("active", 0) + c.get("waiting", 0),
                converted=c.get("converted", 0),
                failed=c.get("failed", 0),
            )
        )
    return rows


@dataclass(frozen=True)
class BuilderPage:
    journey: Journey
    live_version: JourneyVersion | None
    versions: list[JourneyVersion]
    unpublished: bool
    stats: stats.JourneyStats
    choices: dict[str, Any]


def choices(session: Session) -> dict[str, Any]:
    """What a step's settings can name: templates (by channel), segments, and the step types."""
    return {
        "templates": [
            {"name": name, "channel": channel}
            for name, channel in session.execute(select(Template.name, Template.channel).order_by(Template.name))
        ],
        "segments": [
            {"id": i, "name": name}
            for i, name in session.execute(select(Segment.id, Segment.name).order_by(Segment.name))
        ],
        "types": step_types(),
    }


def builder_page(session: Session, journey_id: int, *, actor: Actor) -> BuilderPage:
    require(actor, "journeys:read")
    journey = service.get_journey(session, journey_id, actor=actor)
    return BuilderPage(
        journey=journey,
        live_version=service.live_version(session, journey),
        versions=service.versions(session, journey_id, actor=actor),
        unpublished=service.has_unpublished_changes(session, journey),
        stats=stats.journey_stats(session, journey_id, actor=actor),
        choices=choices(session),
    )
