"""Request and response shapes of the journeys API. A definition is the JSON described in the README (the
YAML file of ``kizuna journeys apply`` has the same structure); it is validated by ``definition.py``."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class DefinitionBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    definition: dict[str, Any] = Field(description="The journey definition: name, trigger, start, steps ...")


class VersionRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    version: int
    published_at: dt.datetime
    published_by: str


class JourneyRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    description: str
    status: str
    draft: dict[str, Any]
    live_version: int | None = None
    live_definition: dict[str, Any] | None = None
    unpublished_changes: bool = False
    versions: list[VersionRead] = Field(default_factory=list)
    created_at: dt.datetime
    updated_at: dt.datetime


class JourneySummary(BaseModel):
    id: int
    name: str
    status: str
    live_version: int | None
    trigger: str | None
    enrolled: int
    open: int
    converted: int


class Problem(BaseModel):
    step: str | None
    path: str
    message: str
    code: str


class ValidationRead(BaseModel):
    valid: bool
    problems: list[Problem]


class EnrollBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    customer_ids: list[int] = Field(min_length=1, max_length=100_000)


class EnrollRead(BaseModel):
    enrolled: int
    skipped: int


class StepStatsRead(BaseModel):
    step: str
    type: str
    entered: int
    due: int
    waiting: int
    completed: int
    failed: int
    exited: int
    converted: int
    dropped: int
    messages: dict[str, int] | None


class VariantRead(BaseModel):
    name: str
    customers: int
    successes: int
    rate: float
    sent: int
    opened: int
    clicked: int
    z: float | None
    p_value: float | None


class UpliftRead(BaseModel):
    treated: VariantRead
    holdout: VariantRead
    absolute: float
    relative: float | None
    z: float | None
    p_value: float | None


class StatsRead(BaseModel):
    journey_id: int
    name: str
    version: int | None
    enrolled: int
    statuses: dict[str, int]
    metric: str
    steps: list[StepStatsRead]
    links: list[tuple[str, str, int]]
    variants: list[VariantRead]
    chi2_p_value: float | None
    uplift: UpliftRead | None
