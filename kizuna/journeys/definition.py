"""A journey's definition: JSON (or the same structure in YAML) validated into a trigger, steps and a goal.

Every problem found is reported, each with the step it is about and the path of the bad part
(``steps.b1.condition.all[0].attribute``), so that the builder shows it at that step and the API names it. The
shape is checked here; what needs the database (segments and templates that exist, conditions that compile) is
checked by ``validation.py``. The graph must hold together: every ``next`` names a step, every step can be
reached from the start, and every loop passes a wait (a loop without one would spin forever in one batch).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Discriminator, Field, PositiveInt, StringConstraints, field_validator
from pydantic import ValidationError as PydanticError

from kizuna.errors import ValidationError
from kizuna.journeys.steps import StepId, StepModel, parse_clock, step_type, step_types
from kizuna.segments import rules

# Outbox topics an event trigger or a goal can name directly; any other name is an event type
# (``event.recorded`` messages: page_view, signup ...).
TOPIC_EVENTS = ("order.completed",)
# Event types as the events API and the tracking API keep them ("Order Completed").
_NAME = r"^[^\x00-\x1f\x7f]{1,200}$"
EventName = Annotated[str, StringConstraints(pattern=_NAME)]
_PROPERTY = r"^[A-Za-z0-9_\-]{1,64}$"
DATE_ATTRIBUTES = ("birth_date",)


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a definition: the step it is about (None: the journey as a whole)."""

    step: str | None
    path: str
    message: str
    code: str = "invalid"
    params: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"step": self.step, "path": self.path, "message": self.message, "code": self.code}


class JourneyDefinitionError(ValidationError):
    """A definition that cannot be saved or published; ``problems`` lists every problem found."""

    def __init__(self, problems: list[Problem]) -> None:
        first = problems[0]
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        text = "; ".join(f"{p.path}: {p.message}" for p in problems[:5])
        super().__init__(
            f"journey definition: {text}{more}",
            field=first.path,
            key=f"journeys.problem.{first.code}",
            params={"step": first.step or "", "path": first.path, "problem": first.message, **first.params},
        )
        self.problems = problems


# --- triggers and goal ---------------------------------------------------------------------------------------


class _Part(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Comparison(_Part):
    """A numeric property filter, e.g. ``{"score": {"lte": 6}}`` (an NPS detractor's answer)."""

    lt: float | None = None
    lte: float | None = None
    gt: float | None = None
    gte: float | None = None

    @field_validator("lt", "lte", "gt", "gte")
    @classmethod
    def _finite(cls, value: float | None) -> float | None:
        if value is not None and value != value or value in (float("inf"), float("-inf")):
            raise ValueError("a bound must be a finite number")
        return value

    def model_post_init(self, _context: Any) -> None:
        if all(v is None for v in (self.lt, self.lte, self.gt, self.gte)):
            raise ValueError("a comparison needs at least one of lt, lte, gt, gte")

    def holds(self, value: Any) -> bool:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        return (
            (self.lt is None or value < self.lt)
            and (self.lte is None or value <= self.lte)
            and (self.gt is None or value > self.gt)
            and (self.gte is None or value >= self.gte)
        )


Property = bool | int | float | str | Comparison


class EventTrigger(_Part):
    type: Literal["event"]
    event: EventName
    properties: dict[Annotated[str, StringConstraints(pattern=_PROPERTY)], Property] = Field(
        default_factory=dict, max_length=20
    )
    # Events written by imports and other backfills are history, not something a customer just did.
    include_backfill: bool = False


class SegmentTrigger(_Part):
    type: Literal["segment_entered", "segment_exited"]
    segment: PositiveInt
    # The first refresh of a new segment "enters" every customer it finds: a fact about the segment, not
    # something the customers did, so it enrols nobody unless asked.
    include_initial: bool = False


class DateTrigger(_Part):
    type: Literal["date"]
    attribute: Annotated[str, StringConstraints(pattern=r"^(birth_date|attributes\.[A-Za-z0-9_\-]{1,64})$")]
    offset_days: int = Field(default=0, ge=-3650, le=3650)
    at: str = "09:00"
    # Every year on the day (a birthday) or once on the date itself (a renewal date). Default: yearly for
    # birth_date, once for the others.
    yearly: bool | None = None

    @field_validator("at")
    @classmethod
    def _clock(cls, value: str) -> str:
        parse_clock(value)
        return value

    @property
    def every_year(self) -> bool:
        return self.yearly if self.yearly is not None else self.attribute in DATE_ATTRIBUTES


class DormancyTrigger(_Part):
    type: Literal["dormancy"]
    days: PositiveInt = Field(le=3650)


class ManualTrigger(_Part):
    type: Literal["manual"]


Trigger = Annotated[
    EventTrigger | SegmentTrigger | DateTrigger | DormancyTrigger | ManualTrigger, Discriminator("type")
]
TRIGGER_TYPES = ("event", "segment_entered", "segment_exited", "date", "dormancy", "manual")


class Goal(_Part):
    event: EventName
    within_days: PositiveInt = Field(default=30, le=3650)


class _Envelope(_Part):
    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
    description: str = Field(default="", max_length=2000)
    trigger: Trigger
    reentry: Literal["never", "after_exit"] = "never"
    reentry_after_days: int = Field(default=0, ge=0, le=3650)
    goal: Goal | None = None
    start: StepId
    steps: list[dict[str, Any]] = Field(min_length=1, max_length=200)
    layout: dict[str, dict[str, Any]] = Field(default_factory=dict)


@dataclass(frozen=True)
class Definition:
    """A valid definition: the envelope's fields and the steps parsed by their types, by id."""

    name: str
    description: str
    trigger: Any
    reentry: str
    reentry_after_days: int
    goal: Goal | None
    start: str
    steps: dict[str, StepModel]
    layout: dict[str, dict[str, Any]]

    def step(self, step_id: str) -> StepModel:
        return self.steps[step_id]

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "description": self.description,
            "trigger": self.trigger.model_dump(mode="json", exclude_none=True),
            "reentry": self.reentry,
            "reentry_after_days": self.reentry_after_days,
            "start": self.start,
            "steps": [
                s.model_dump(mode="json", exclude_none=True, exclude_defaults=False) for s in self.steps.values()
            ],
            "layout": self.layout,
        }
        if self.goal is not None:
            out["goal"] = self.goal.model_dump(mode="json")
        for step in out["steps"]:
            if not step.get("label"):
                step.pop("label", None)
        return out


def _where(loc: tuple[Any, ...]) -> str:
    parts = [p for p in loc if not (isinstance(p, str) and p.startswith(("function-", "json-")))]
    if len(parts) > 1 and parts[0] == "trigger" and parts[1] in TRIGGER_TYPES:
        del parts[1]  # the union's tag: "trigger.at", not "trigger.date.at"
    return rules.path_of(tuple(parts))


def _message(error: dict[str, Any]) -> str:
    message, _, _ = rules._problem(error)
    return message


def parse_definition(raw: Any) -> Definition:
    """A valid definition from JSON text or decoded JSON; ``JourneyDefinitionError`` lists every problem."""
    if isinstance(raw, (str, bytes)):
        try:
            raw = json.loads(raw)
        except ValueError as exc:
            raise JourneyDefinitionError([Problem(None, "", f"is not valid JSON ({exc})", "malformed")]) from exc
    try:
        envelope = _Envelope.model_validate(raw)
    except PydanticError as exc:
        problems = [
            Problem(None, _where(tuple(e["loc"])), _message(e), "invalid") for e in exc.errors(include_url=False)
        ]
        raise JourneyDefinitionError(problems) from exc
    problems: list[Problem] = []
    steps: dict[str, StepModel] = {}
    for index, raw_step in enumerate(envelope.steps):
        parsed = _parse_step(index, raw_step, problems)
        if parsed is None:
            continue
        if parsed.id in steps:
            problems.append(
                Problem(parsed.id, f"steps[{index}].id", f"two steps are named '{parsed.id}'", "duplicate_id")
            )
            continue
        steps[parsed.id] = parsed
    if not problems:
        problems.extend(graph_problems(envelope.start, steps))
    if problems:
        raise JourneyDefinitionError(problems)
    return Definition(
        name=envelope.name,
        description=envelope.description,
        trigger=envelope.trigger,
        reentry=envelope.reentry,
        reentry_after_days=envelope.reentry_after_days,
        goal=envelope.goal,
        start=envelope.start,
        steps=steps,
        layout=envelope.layout,
    )


def _parse_step(index: int, raw: dict[str, Any], problems: list[Problem]) -> StepModel | None:
    step_id = raw.get("id") if isinstance(raw.get("id"), str) else None
    where = f"steps.{step_id}" if step_id else f"steps[{index}]"
    kind = raw.get("type")
    found = step_type(kind) if isinstance(kind, str) else None
    if found is None:
        problems.append(
            Problem(
                step_id,
                f"{where}.type",
                f"unknown step type {kind!r}; one of {', '.join(step_types())}",
                "unknown_type",
                {"type": str(kind)},
            )
        )
        return None
    try:
        step = found.model.model_validate(raw)
    except PydanticError as exc:
        for e in exc.errors(include_url=False):
            inner = _where(tuple(e["loc"]))
            problems.append(Problem(step_id, f"{where}.{inner}" if inner else where, _message(e), "invalid"))
        return None
    condition = getattr(step, "condition", None)
    if step.type == "branch":
        try:
            rules.parse_rule(condition)
        except rules.SegmentRuleError as exc:
            path = f"{where}.condition" + (f".{exc.path}" if exc.path and not exc.path.startswith("[") else exc.path)
            problems.append(Problem(step_id, path, f"not a valid segment rule: {exc.problem}", "condition"))
            return None
    return step


def graph_problems(start: str, steps: dict[str, StepModel]) -> list[Problem]:
    """Dangling references, steps the start cannot reach, and loops that pass no wait."""
    problems: list[Problem] = []
    if start not in steps:
        problems.append(Problem(None, "start", f"the start names no step ('{start}')", "dangling", {"target": start}))
        return problems
    for step in steps.values():
        for name, target in step.successors():
            if target not in steps:
                problems.append(
                    Problem(
                        step.id,
                        f"steps.{step.id}.{name}",
                        f"step '{step.id}' leads to '{target}', which is not a step",
                        "dangling",
                        {"target": target},
                    )
                )
    if problems:
        return problems
    reached = {start}
    todo = [start]
    while todo:
        for _, target in steps[todo.pop()].successors():
            if target not in reached:
                reached.add(target)
                todo.append(target)
    for step_id in steps:
        if step_id not in reached:
            problems.append(
                Problem(
                    step_id, f"steps.{step_id}", f"step '{step_id}' cannot be reached from the start", "unreachable"
                )
            )
    loop = _loop_without_wait(steps)
    if loop:
        shown = " → ".join([*loop, loop[0]])
        problems.append(
            Problem(
                loop[0],
                f"steps.{loop[0]}",
                f"the loop {shown} passes no wait: add a wait with a duration to it",
                "loop",
                {"loop": shown},
            )
        )
    return problems


def _loop_without_wait(steps: dict[str, StepModel]) -> list[str]:
    """A cycle among the steps that do not pause (depth-first search), or []."""

    def pauses(step: StepModel) -> bool:
        found = step_type(step.type)
        return found is not None and found.pauses(step)

    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(step_id: str) -> list[str]:
        state[step_id] = 1
        path.append(step_id)
        for _, target in steps[step_id].successors():
            if pauses(steps[target]):
                continue
            if state.get(target) == 1:
                return path[path.index(target) :]
            if target not in state:
                found = visit(target)
                if found:
                    return found
        path.pop()
        state[step_id] = 2
        return []

    for step_id, step in steps.items():
        if step_id not in state and not pauses(step):
            found = visit(step_id)
            if found:
                return found
    return []


class _Loader(yaml.SafeLoader):
    """YAML 1.2 booleans: only true and false. YAML 1.1 (PyYAML's default) reads ``yes:`` / ``no:`` as booleans,
    which would turn a branch's ``yes`` and ``no`` keys into True and False."""


_BOOL = "tag:yaml.org,2002:bool"
_Loader.yaml_implicit_resolvers = {
    first: [(tag, pattern) for tag, pattern in resolvers if tag != _BOOL]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(_BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))


def load_yaml(text: str) -> dict[str, Any]:
    """A definition written as YAML (the same structure as the JSON)."""
    try:
        data = yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader with YAML 1.2 booleans
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise JourneyDefinitionError([Problem(None, "", f"is not valid YAML{where}", "malformed")]) from exc
    if not isinstance(data, dict):
        raise JourneyDefinitionError([Problem(None, "", "a journey file holds one mapping (name, trigger, steps ...)")])
    return data
