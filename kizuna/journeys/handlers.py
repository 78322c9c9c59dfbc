"""The built-in step types: wait, branch, split, send, tag, attribute and exit, each run for a whole batch.

- wait: ``duration`` (0 passes straight on) or ``until`` a time of day in the customer's own time zone.
- branch: the condition is a segment rule, compiled once and evaluated for the batch's customers in one query.
- split: A/B/n by weight, with an optional holdout; the draw is a hash of the enrollment id and the step, so a
  batch run again after a crash puts everyone in the same variant. Held-out customers get nothing more and stay
  until the goal's window has passed (so that their conversions are counted as the others' are), then exit.
- send: one message per customer through ``messaging.queue.queue_many`` under the key
  ``journey:{journey}:enrollment:{enrollment}:step:{step}``; the sender checks consent, suppressions, caps and
  quiet hours at send time and records what it did on the message.
- tag / attribute: set-based changes through ``customers.batch`` (audit and outbox as any other change).
- exit: ends the journey as completed.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Mapping
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import select

from kizuna.config import get_settings
from kizuna.customers import batch
from kizuna.customers.models import Customer
from kizuna.journeys.steps import (
    AttributeStep,
    BranchStep,
    End,
    ExitStep,
    Next,
    Outcome,
    Run,
    SendStep,
    SplitStep,
    StepContext,
    TagStep,
    Wait,
    WaitStep,
    parse_clock,
    register_step,
)
from kizuna.messaging.models import Template
from kizuna.messaging.queue import NewMessage, queue_many
from kizuna.segments import compile as compiler
from kizuna.segments import rules

_CHUNK = 5000


def forward(step: Any) -> Outcome:
    """On to the step's ``next``; a step without one ends the journey there."""
    following = getattr(step, "next", None)
    return Next(following) if following else End("completed")


def message_key(journey_id: int, enrollment_id: int, step_id: str) -> str:
    return f"journey:{journey_id}:enrollment:{enrollment_id}:step:{step_id}"


# --- time zones ------------------------------------------------------------------------------------------------


def _zone(name: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(name or get_settings().default_timezone)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo(get_settings().default_timezone)


def customer_zones(ctx: StepContext, customer_ids: list[int]) -> dict[int, ZoneInfo]:
    """Each customer's time zone (their ``timezone``, else KIZUNA_DEFAULT_TIMEZONE), read once per batch."""
    known: dict[int, ZoneInfo] = ctx.cache.setdefault("zones", {})
    missing = sorted({i for i in customer_ids if i not in known})
    for start in range(0, len(missing), _CHUNK):
        chunk = missing[start : start + _CHUNK]
        for customer_id, name in ctx.session.execute(
            select(Customer.id, Customer.timezone).where(Customer.id.in_(chunk))
        ):
            known[customer_id] = _zone(name)
    default = _zone(None)
    return {i: known.get(i, default) for i in customer_ids}


def next_clock(now: dt.datetime, clock: dt.time, zone: ZoneInfo) -> dt.datetime:
    """The next time the wall clock in ``zone`` shows ``clock`` after ``now`` (today's, if still ahead), in UTC."""
    local = now.astimezone(zone)
    at = dt.datetime.combine(local.date(), clock, tzinfo=zone)
    if at <= local:
        at = dt.datetime.combine(local.date() + dt.timedelta(days=1), clock, tzinfo=zone)
    return at.astimezone(dt.UTC)


# --- wait ------------------------------------------------------------------------------------------------------


def run_wait(ctx: StepContext, step: WaitStep, runs: list[Run]) -> Mapping[int, Outcome]:
    span = step.span
    if span is not None:
        if not span:
            return {r.id: forward(step) for r in runs}
        until = ctx.now + span
        return {r.id: Wait(until) for r in runs}
    clock = parse_clock(step.until or "")
    zones = customer_zones(ctx, [r.customer_id for r in runs])
    return {r.id: Wait(next_clock(ctx.now, clock, zones[r.customer_id])) for r in runs}


def _wait_pauses(step: WaitStep) -> bool:
    span = step.span
    return span is None or span > dt.timedelta(0)


# --- branch ----------------------------------------------------------------------------------------------------


def run_branch(ctx: StepContext, step: BranchStep, runs: list[Run]) -> Mapping[int, Outcome]:
    cache = ctx.cache.setdefault("conditions", {})
    key = (ctx.version_id, step.id)
    if key not in cache:
        cache[key] = compiler.condition(rules.parse_rule(step.condition), correlate=True)
    condition = cache[key]
    ids = sorted({r.customer_id for r in runs})
    matched: set[int] = set()
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start : start + _CHUNK]
        matched.update(
            ctx.session.scalars(
                select(Customer.id).where(Customer.id.in_(chunk), Customer.status == "active", condition)
            )
        )
    out: dict[int, Outcome] = {}
    for r in runs:
        target = step.yes if r.customer_id in matched else step.no
        out[r.id] = Next(target) if target else End("completed")
    return out


# --- split -----------------------------------------------------------------------------------------------------


def draw(enrollment_id: int, step_id: str) -> float:
    """A number in [0, 1) fixed by the enrollment and the step: the same draw on every run."""
    digest = hashlib.blake2b(f"{enrollment_id}:{step_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def choose(step: SplitStep, enrollment_id: int) -> tuple[str | None, str | None]:
    """(variant name, next step) for one enrollment; (None, None) for the holdout group."""
    u = draw(enrollment_id, step.id)
    held = step.holdout / 100
    if u < held:
        return None, None
    u = (u - held) / (1 - held)
    total = sum(v.weight for v in step.variants)
    edge = 0.0
    for variant in step.variants:
        edge += variant.weight / total
        if u < edge:
            return variant.name, variant.next
    last = step.variants[-1]
    return last.name, last.next


def run_split(ctx: StepContext, step: SplitStep, runs: list[Run]) -> Mapping[int, Outcome]:
    goal = getattr(ctx.definition, "goal", None)
    out: dict[int, Outcome] = {}
    for r in runs:
        name, target = choose(step, r.id)
        if name is None:
            r.holdout = True
            r.variant = None
            window_end = r.entered_at + dt.timedelta(days=goal.within_days) if goal is not None else None
            out[r.id] = Wait(window_end) if window_end and window_end > ctx.now else End("exited", "holdout")
            continue
        r.variant = name
        out[r.id] = Next(target) if target else End("completed")
    return out


def resume_split(ctx: StepContext, step: SplitStep, runs: list[Run]) -> Mapping[int, Outcome]:
    """The holdout's goal window has passed without a conversion."""
    return {r.id: End("exited", "holdout") for r in runs}


# --- send ------------------------------------------------------------------------------------------------------


def _template_ids(ctx: StepContext, names: list[str]) -> dict[str, tuple[int, str]]:
    known: dict[str, tuple[int, str]] = ctx.cache.setdefault("templates", {})
    missing = [n for n in names if n not in known]
    if missing:
        for template_id, name, channel in ctx.session.execute(
            select(Template.id, Template.name, Template.channel).where(Template.name.in_(missing))
        ):
            known[name] = (template_id, channel)
    return known


def run_send(ctx: StepContext, step: SendStep, runs: list[Run]) -> Mapping[int, Outcome]:
    found = _template_ids(ctx, [step.template]).get(step.template)
    if found is None:
        reason = f"step '{step.id}': there is no template named '{step.template}'"
        return {r.id: End("failed", reason) for r in runs}
    template_id, _ = found
    queue_many(
        ctx.session,
        [
            NewMessage(
                key=message_key(ctx.journey_id, r.id, step.id),
                customer_id=r.customer_id,
                channel=step.channel,
                kind=step.kind,
                source="journey",
                source_id=ctx.journey_id,
                source_step=step.id,
                variant=r.variant,
                enrollment_id=r.id,
                template_id=template_id,
                context={"journey": ctx.journey_name},
            )
            for r in runs
        ],
    )
    return {r.id: forward(step) for r in runs}


# --- tag, attribute, exit ----------------------------------------------------------------------------------------


def run_tag(ctx: StepContext, step: TagStep, runs: list[Run]) -> Mapping[int, Outcome]:
    batch.change_tags(
        ctx.session, actor=ctx.actor, customer_ids=[r.customer_id for r in runs], add=step.add, remove=step.remove
    )
    return {r.id: forward(step) for r in runs}


def run_attribute(ctx: StepContext, step: AttributeStep, runs: list[Run]) -> Mapping[int, Outcome]:
    batch.set_attributes(ctx.session, actor=ctx.actor, customer_ids=[r.customer_id for r in runs], values=step.set)
    return {r.id: forward(step) for r in runs}


def run_exit(ctx: StepContext, step: ExitStep, runs: list[Run]) -> Mapping[int, Outcome]:
    return {r.id: End("completed") for r in runs}


register_step("wait", run_wait, model=WaitStep, pauses=_wait_pauses)
register_step("branch", run_branch, model=BranchStep)
register_step("split", run_split, model=SplitStep, resume=resume_split)
register_step("send", run_send, model=SendStep)
register_step("tag", run_tag, model=TagStep)
register_step("attribute", run_attribute, model=AttributeStep)
register_step("exit", run_exit, model=ExitStep)
