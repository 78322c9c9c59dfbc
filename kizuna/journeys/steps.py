"""Step types: a registry, so that steps of later capabilities ("create a task for the owner", "open an inquiry")
plug in with ``register_step`` without touching the engine.

A step type is its settings (a Pydantic model with ``id``, ``type`` and its own fields), a handler that runs the
step for a batch of enrollments standing at it (all of them at once: a branch is one SQL query for the batch, a
send one ``queue_many``), and optionally a ``resume`` handler for enrollments whose wait at the step has ended.
A handler answers, for each enrollment, where it goes: ``Next(step)``, ``Wait(until)`` or ``End(status)``.
Everything a handler writes goes into the engine's transaction, so a batch's effects commit together under its
lease or not at all.

The built-in types (wait, branch, split, send, tag, attribute, exit) are registered by ``handlers.py``.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, Protocol, get_args

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator
from sqlalchemy.orm import Session

from kizuna.auth.permissions import Actor
from kizuna.customers.schemas import Stage

STAGES: tuple[str, ...] = get_args(Stage)
StepId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_\-]{1,64}$")]
Scalar = bool | int | float | str | None
_DURATION = re.compile(r"^P(?:(\d+)W)?(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?$")
_CLOCK = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
MAX_WAIT = dt.timedelta(days=3650)


class StepModel(BaseModel):
    """The settings every step has; a step type adds its own fields."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: StepId
    type: str
    # A short label shown on the diagram instead of the type (optional).
    label: str = Field(default="", max_length=100)

    def successors(self) -> list[tuple[str, str]]:
        """(field, step id) for every step this one can lead to (``next`` by default)."""
        following = getattr(self, "next", None)
        return [("next", following)] if following else []


# --- what a handler answers ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Next:
    step: str


@dataclass(frozen=True)
class Wait:
    until: dt.datetime


@dataclass(frozen=True)
class End:
    status: str  # completed | exited | failed
    reason: str | None = None


Outcome = Next | Wait | End


@dataclass
class Run:
    """One enrollment at a step, as the engine hands it to a handler (a split sets ``variant`` / ``holdout``)."""

    id: int
    customer_id: int
    journey_id: int
    version_id: int
    step: str
    status: str
    entered_at: dt.datetime
    variant: str | None = None
    holdout: bool = False


@dataclass
class StepContext:
    """What a handler may use: the engine's session and clock, the journey and version, a per-batch cache."""

    session: Session
    now: dt.datetime
    journey_id: int
    journey_name: str
    version_id: int
    definition: Any
    actor: Actor
    cache: dict[str, Any] = field(default_factory=dict)


class StepHandler(Protocol):
    def __call__(self, ctx: StepContext, step: Any, runs: list[Run]) -> Mapping[int, Outcome]: ...


@dataclass(frozen=True)
class StepType:
    name: str
    model: type[StepModel]
    run: StepHandler
    # A waiting enrollment whose time came; None: it moves on to the step's ``next``.
    resume: StepHandler | None = None
    # Whether the step (with these settings) makes a customer wait: a loop must pass one such step.
    pauses: Callable[[Any], bool] = field(default=lambda step: False)


_TYPES: dict[str, StepType] = {}


def register_step(
    type_name: str,
    handler: StepHandler,
    *,
    model: type[StepModel],
    resume: StepHandler | None = None,
    pauses: Callable[[Any], bool] | None = None,
) -> StepType:
    """Add a step type (``task``, ``inquiry`` ... later); registering the same name twice replaces it."""
    step_type = StepType(name=type_name, model=model, run=handler, resume=resume, pauses=pauses or (lambda step: False))
    _TYPES[type_name] = step_type
    return step_type


def step_type(type_name: str) -> StepType | None:
    _load_builtins()
    return _TYPES.get(type_name)


# The order the builder offers the built-in types in; types registered later follow, by name.
_ORDER = ("wait", "branch", "split", "send", "tag", "attribute", "exit")


def step_types() -> list[str]:
    _load_builtins()
    return sorted(_TYPES, key=lambda name: (_ORDER.index(name) if name in _ORDER else len(_ORDER), name))


def _load_builtins() -> None:
    from kizuna.inquiries import journey_step  # noqa: F401 - registers ``open_inquiry``
    from kizuna.journeys import handlers  # noqa: F401 - registers the built-in types at import


# --- the built-in step settings ------------------------------------------------------------------------------


def parse_duration(value: Any) -> dt.timedelta:
    """``P1D``, ``PT2H30M``, ``P1W`` or ``{"days": 1, "hours": 0, "minutes": 0}`` as a time span."""
    if isinstance(value, Mapping):
        unknown = set(value) - {"days", "hours", "minutes"}
        if unknown:
            raise ValueError(f"unknown part {sorted(unknown)[0]!r}; use days, hours and minutes")
        parts = {}
        for name in ("days", "hours", "minutes"):
            amount = value.get(name, 0)
            if isinstance(amount, bool) or not isinstance(amount, int) or amount < 0:
                raise ValueError(f"{name} must be a whole number, 0 or more")
            parts[name] = amount
        span = dt.timedelta(**parts)
    elif isinstance(value, str):
        match = _DURATION.match(value)
        if match is None or value in ("P", "PT") or value.endswith("T"):
            raise ValueError(f"'{value}' is not a duration such as P1D, PT2H or P1DT30M")
        weeks, days, hours, minutes, seconds = (int(x) if x else 0 for x in match.groups())
        span = dt.timedelta(weeks=weeks, days=days, hours=hours, minutes=minutes, seconds=seconds)
    else:
        raise ValueError('must be a duration such as "P1D" or {"days": 1}')
    if span > MAX_WAIT:
        raise ValueError("waits at most 3650 days")
    return span


def parse_clock(value: str) -> dt.time:
    match = _CLOCK.match(value)
    if match is None:
        raise ValueError(f"'{value}' is not a time of day such as 09:00")
    return dt.time(int(match.group(1)), int(match.group(2)))


class WaitStep(StepModel):
    type: Literal["wait"]
    duration: Any = None
    until: str | None = None
    next: StepId | None = None

    @field_validator("duration")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        if value is not None:
            parse_duration(value)
        return value

    @field_validator("until")
    @classmethod
    def _until(cls, value: str | None) -> str | None:
        if value is not None:
            parse_clock(value)
        return value

    @model_validator(mode="after")
    def _one(self) -> WaitStep:
        if (self.duration is None) == (self.until is None):
            raise ValueError("give either duration (such as P1D) or until (a time of day such as 09:00)")
        return self

    @property
    def span(self) -> dt.timedelta | None:
        return parse_duration(self.duration) if self.duration is not None else None


class BranchStep(StepModel):
    type: Literal["branch"]
    # A segment rule (kizuna/segments/rules.py), checked by definition.py so its errors name their path.
    condition: Any
    yes: StepId | None = None
    no: StepId | None = None

    def successors(self) -> list[tuple[str, str]]:
        return [(name, target) for name, target in (("yes", self.yes), ("no", self.no)) if target]


class Variant(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=32)
    weight: float = Field(gt=0, le=10_000)
    next: StepId | None = None


class SplitStep(StepModel):
    type: Literal["split"]
    variants: list[Variant] = Field(min_length=1, max_length=10)
    # Percent of the customers reaching the split who are held out: they get nothing more and are measured
    # against the others (uplift).
    holdout: float = Field(default=0, ge=0, lt=100)

    @field_validator("variants")
    @classmethod
    def _names(cls, value: list[Variant]) -> list[Variant]:
        names = [v.name for v in value]
        if len(set(names)) != len(names):
            raise ValueError("variant names must differ")
        return value

    def successors(self) -> list[tuple[str, str]]:
        return [(f"variants[{i}].next", v.next) for i, v in enumerate(self.variants) if v.next]


class SendStep(StepModel):
    type: Literal["send"]
    channel: Literal["email", "line", "webhook"] = "email"
    template: str = Field(min_length=1, max_length=200)
    kind: Literal["marketing", "service"] = "marketing"
    next: StepId | None = None


class TagStep(StepModel):
    type: Literal["tag"]
    add: list[Annotated[str, StringConstraints(min_length=1, max_length=100)]] = Field(default=[], max_length=20)
    remove: list[Annotated[str, StringConstraints(min_length=1, max_length=100)]] = Field(default=[], max_length=20)
    next: StepId | None = None

    @model_validator(mode="after")
    def _something(self) -> TagStep:
        if not self.add and not self.remove:
            raise ValueError("name a tag to add or to remove")
        return self


# Customer columns an attribute step may set; any other name is a custom attribute (``attributes.<name>``).
ATTRIBUTE_COLUMNS = ("lifecycle_stage",)
_ATTRIBUTE = re.compile(r"^(attributes\.)?[A-Za-z0-9_\-]{1,64}$")


class AttributeStep(StepModel):
    type: Literal["attribute"]
    set: dict[str, Scalar] = Field(min_length=1, max_length=20)
    next: StepId | None = None

    @field_validator("set")
    @classmethod
    def _names(cls, value: dict[str, Scalar]) -> dict[str, Scalar]:
        for name in value:
            if not _ATTRIBUTE.match(name):
                raise ValueError(f"attribute name '{name}' must be letters, digits, _ or - (at most 64)")
        if "lifecycle_stage" in value and value["lifecycle_stage"] not in STAGES:
            raise ValueError(f"lifecycle_stage must be one of {', '.join(STAGES)}")
        return value


class ExitStep(StepModel):
    type: Literal["exit"]
