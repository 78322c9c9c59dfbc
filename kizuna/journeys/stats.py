"""What a journey did: per step entered / waiting / completed / left, per send step what the messages became, the
paths customers took (funnel and Sankey), and the A/B/n test with its significance and the uplift over the
holdout.

Everything is read from three places: the step log (arrivals, and the step each came from), where the
enrollments stand now, and the ``messages`` rows the send steps queued (``source = 'journey'``, ``source_id``,
``source_step``, ``variant``), whose status and open / click / unsubscribe / bounce stamps the sender keeps.
Steps are counted by id across versions (a step keeps its id when the journey is edited).

Significance: a two-proportion z-test of each variant against the first (the control), and a chi-square test
across all of them (scipy); the same z-test compares the customers who went on past the split with the holdout.
The measured rate is the goal's conversion when the journey has a goal, else the share of customers who clicked.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from kizuna.analytics.significance import chi_square, two_proportion
from kizuna.auth.permissions import Actor, require
from kizuna.journeys.definition import Definition, parse_definition
from kizuna.journeys.models import Journey, JourneyEnrollment, JourneyStep, JourneyVersion
from kizuna.messaging.models import Message

E = JourneyEnrollment
SEND_FIELDS = ("queued", "sent", "delivered", "opened", "clicked", "unsubscribed", "failed", "skipped")


@dataclass
class StepStats:
    step: str
    type: str
    label: str
    entered: int = 0
    due: int = 0  # enrolled here and about to run (the start, before the engine's next pass)
    waiting: int = 0
    completed: int = 0
    failed: int = 0
    exited: int = 0
    converted: int = 0
    messages: dict[str, int] | None = None

    @property
    def dropped(self) -> int:
        return self.failed + self.exited


@dataclass
class VariantStats:
    name: str
    customers: int
    successes: int
    sent: int = 0
    opened: int = 0
    clicked: int = 0
    z: float | None = None
    p_value: float | None = None

    @property
    def rate(self) -> float:
        return self.successes / self.customers if self.customers else 0.0


@dataclass
class Uplift:
    treated: VariantStats
    holdout: VariantStats
    absolute: float
    relative: float | None
    z: float | None
    p_value: float | None


@dataclass
class JourneyStats:
    journey_id: int
    name: str
    version: int | None
    statuses: dict[str, int]
    steps: list[StepStats]
    links: list[tuple[str, str, int]]
    metric: str  # converted | clicked
    variants: list[VariantStats] = field(default_factory=list)
    chi2_p_value: float | None = None
    uplift: Uplift | None = None

    @property
    def enrolled(self) -> int:
        return sum(self.statuses.values())

    def step(self, step_id: str) -> StepStats | None:
        return next((s for s in self.steps if s.step == step_id), None)


def path_order(definition: Definition) -> list[str]:
    """The steps in the order a customer meets them (breadth first from the start)."""
    order = [definition.start]
    for step_id in order:
        for _, target in definition.steps[step_id].successors():
            if target not in order:
                order.append(target)
    return order + [s for s in definition.steps if s not in order]


def journey_stats(session: Session, journey_id: int, *, actor: Actor) -> JourneyStats:
    require(actor, "journeys:read")
    journey = session.get(Journey, journey_id)
    if journey is None:
        from kizuna.errors import NotFound

        raise NotFound(f"journey {journey_id} not found", key="journeys.not_found", params={"id": journey_id})
    live = session.get(JourneyVersion, journey.live_version_id) if journey.live_version_id else None
    definition = parse_definition(live.definition if live else journey.draft)
    steps = {
        sid: StepStats(step=sid, type=definition.steps[sid].type, label=definition.steps[sid].label)
        for sid in path_order(definition)
    }

    def at(step_id: str) -> StepStats:
        if step_id not in steps:  # a step of an older version
            steps[step_id] = StepStats(step=step_id, type="", label="")
        return steps[step_id]

    for step_id, count in session.execute(
        select(JourneyStep.step, func.count()).where(JourneyStep.journey_id == journey_id).group_by(JourneyStep.step)
    ):
        at(step_id).entered = count
    statuses: dict[str, int] = {}
    for step_id, status, count in session.execute(
        select(E.step, E.status, func.count()).where(E.journey_id == journey_id).group_by(E.step, E.status)
    ):
        statuses[status] = statuses.get(status, 0) + count
        here = at(step_id)
        if status == "active":
            here.due += count
        elif status in ("waiting", "failed", "exited", "converted"):
            setattr(here, status, getattr(here, status) + count)
    for s in steps.values():
        s.completed = max(0, s.entered - s.waiting - s.failed - s.exited - s.converted)
    links = [
        (src, dst, count)
        for src, dst, count in session.execute(
            select(JourneyStep.from_step, JourneyStep.step, func.count())
            .where(JourneyStep.journey_id == journey_id, JourneyStep.from_step.is_not(None))
            .group_by(JourneyStep.from_step, JourneyStep.step)
        )
    ]
    _messages(session, journey_id, steps, definition)
    out = JourneyStats(
        journey_id=journey.id,
        name=journey.name,
        version=None,
        statuses=statuses,
        steps=list(steps.values()),
        links=links,
        metric="converted" if definition.goal is not None else "clicked",
    )
    if live is not None:
        out.version = live.version
    _experiment(session, journey_id, out)
    return out


def _messages(session: Session, journey_id: int, steps: dict[str, StepStats], definition: Definition) -> None:
    m = Message

    def count(condition: Any) -> Any:
        return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)

    rows = session.execute(
        select(
            m.source_step,
            count(m.status.in_(("queued", "sending"))),
            count(m.status == "sent"),
            count((m.status == "sent") & m.bounced_at.is_(None)),
            count(m.opened_at.is_not(None)),
            count(m.clicked_at.is_not(None)),
            count(m.unsubscribed_at.is_not(None)),
            count(m.status == "failed"),
            count(m.status == "skipped"),
        )
        .where(m.source == "journey", m.source_id == journey_id)
        .group_by(m.source_step)
    )
    for row in rows:
        if row[0] in steps:
            steps[row[0]].messages = dict(zip(SEND_FIELDS, (int(v) for v in row[1:]), strict=True))
    for s in steps.values():
        if s.type == "send" and s.messages is None:
            s.messages = dict.fromkeys(SEND_FIELDS, 0)


def _experiment(session: Session, journey_id: int, out: JourneyStats) -> None:
    """Variants and holdout: customers, successes (conversions or clickers) and their messages."""
    if out.metric == "converted":
        success = func.coalesce(func.sum(case((E.converted_at.is_not(None), 1), else_=0)), 0)
        groups = session.execute(
            select(E.variant, E.holdout, func.count(), success)
            .where(E.journey_id == journey_id, (E.variant.is_not(None)) | (E.holdout.is_(True)))
            .group_by(E.variant, E.holdout)
        ).all()
    else:
        clicked = select(Message.enrollment_id).where(
            Message.source == "journey", Message.source_id == journey_id, Message.clicked_at.is_not(None)
        )
        success = func.coalesce(func.sum(case((E.id.in_(clicked), 1), else_=0)), 0)
        groups = session.execute(
            select(E.variant, E.holdout, func.count(), success)
            .where(E.journey_id == journey_id, (E.variant.is_not(None)) | (E.holdout.is_(True)))
            .group_by(E.variant, E.holdout)
        ).all()
    sends = {
        variant: (int(sent), int(opened), int(clicks))
        for variant, sent, opened, clicks in session.execute(
            select(
                Message.variant,
                func.count(Message.sent_at),
                func.count(Message.opened_at),
                func.count(Message.clicked_at),
            )
            .where(Message.source == "journey", Message.source_id == journey_id, Message.variant.is_not(None))
            .group_by(Message.variant)
        )
    }
    variants: list[VariantStats] = []
    held: VariantStats | None = None
    for variant, holdout, customers, successes in sorted(groups, key=lambda g: (bool(g[1]), g[0] or "")):
        if holdout:
            held = VariantStats("holdout", int(customers), int(successes))
            continue
        sent, opened, clicks = sends.get(variant, (0, 0, 0))
        variants.append(VariantStats(variant, int(customers), int(successes), sent, opened, clicks))
    out.variants = variants
    if len(variants) > 1:
        control = variants[0]
        for v in variants[1:]:
            v.z, v.p_value = two_proportion(v.successes, v.customers, control.successes, control.customers)
        out.chi2_p_value = chi_square([(v.successes, v.customers) for v in variants])
    if held is not None and variants:
        treated = VariantStats("treated", sum(v.customers for v in variants), sum(v.successes for v in variants))
        z, p = two_proportion(treated.successes, treated.customers, held.successes, held.customers)
        absolute = treated.rate - held.rate
        relative = absolute / held.rate if held.rate else None
        out.uplift = Uplift(treated, held, absolute, relative, z, p)


def step_counts(stats: JourneyStats) -> dict[str, dict[str, Any]]:
    """Per step the numbers the diagram shows on each box."""
    return {
        s.step: {
            "entered": s.entered,
            "waiting": s.waiting + s.due,
            "completed": s.completed,
            "dropped": s.dropped,
            "converted": s.converted,
            "messages": s.messages,
        }
        for s in stats.steps
    }


def summaries(session: Session, *, actor: Actor) -> dict[int, dict[str, int]]:
    """Per journey the number of enrollments in each status (the list page)."""
    require(actor, "journeys:read")
    out: dict[int, dict[str, int]] = {}
    for journey_id, status, count in session.execute(
        select(E.journey_id, E.status, func.count()).group_by(E.journey_id, E.status)
    ):
        out.setdefault(journey_id, {})[status] = int(count)
    return out
