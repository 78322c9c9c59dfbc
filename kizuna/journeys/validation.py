"""The checks of a definition that need the database: the segments and templates it names exist (and a template
is for the step's channel), and every branch condition compiles, exactly as the engine will compile it."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from kizuna.journeys.definition import Definition, JourneyDefinitionError, Problem, SegmentTrigger, parse_definition
from kizuna.messaging.models import Template
from kizuna.segments import compile as compiler
from kizuna.segments import rules
from kizuna.segments.models import Segment


def problems(session: Session, raw: Any) -> list[Problem]:
    """Every problem of a definition, shape and references alike ([] when it can be published)."""
    try:
        definition = parse_definition(raw)
    except JourneyDefinitionError as exc:
        return exc.problems
    return reference_problems(session, definition)


def check(session: Session, raw: Any) -> Definition:
    """The parsed definition, or ``JourneyDefinitionError`` naming every problem."""
    definition = parse_definition(raw)
    found = reference_problems(session, definition)
    if found:
        raise JourneyDefinitionError(found)
    return definition


def reference_problems(session: Session, definition: Definition) -> list[Problem]:
    found: list[Problem] = []
    trigger = definition.trigger
    if isinstance(trigger, SegmentTrigger) and session.get(Segment, trigger.segment) is None:
        found.append(
            Problem(
                None,
                "trigger.segment",
                f"there is no segment {trigger.segment}",
                "unknown_segment",
                {"segment": trigger.segment},
            )
        )
    names = {s.template for s in definition.steps.values() if s.type == "send"}
    templates = {
        name: channel
        for name, channel in session.execute(
            select(Template.name, Template.channel).where(Template.name.in_(sorted(names)))
        )
    }
    for step in definition.steps.values():
        where = f"steps.{step.id}"
        if step.type == "send":
            name, channel = step.template, step.channel  # type: ignore[attr-defined]
            if name not in templates:
                found.append(
                    Problem(
                        step.id,
                        f"{where}.template",
                        f"there is no template named '{name}'",
                        "unknown_template",
                        {"template": name},
                    )
                )
            elif templates[name] != channel:
                found.append(
                    Problem(
                        step.id,
                        f"{where}.template",
                        f"template '{name}' is for {templates[name]}, not {channel}",
                        "template_channel",
                        {"template": name, "channel": channel},
                    )
                )
        if step.type == "branch":
            rule = rules.parse_rule(step.condition)  # type: ignore[attr-defined]
            try:
                compiler.check_references(session, rule)
                compiler.condition(rule, correlate=True)
            except rules.SegmentRuleError as exc:
                path = f"{where}.condition" + (
                    f".{exc.path}" if exc.path and not exc.path.startswith("[") else exc.path
                )
                found.append(Problem(step.id, path, f"not a valid segment rule: {exc.problem}", "condition"))
    return found
