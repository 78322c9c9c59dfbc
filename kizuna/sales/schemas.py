"""Request and response shapes of pipelines, deals, activities and tasks (the API's and the UI forms')."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, Field

from kizuna.schemas import (
    Currency,
    FreeJSON,
    FreeText,
    Input,
    MoneyIn,
    MoneyOut,
    OptionalFreeText,
    Output,
    StoredJSON,
    Text,
    UTCTime,
)

StageKind = Literal["open", "won", "lost"]
ActivityKind = Literal["call", "meeting", "visit", "email"]
TaskStatus = Literal["open", "done", "cancelled"]


class StageIn(Input):
    name: Text = Field(min_length=1, max_length=200)
    name_en: Text | None = Field(default=None, max_length=200)
    probability: int = Field(default=0, ge=0, le=100)
    kind: StageKind = "open"


class StageUpdate(Input):
    """A stage's new name, English name, probability or kind (only the given fields change)."""

    name: Text | None = Field(default=None, min_length=1, max_length=200)
    name_en: Text | None = Field(default=None, max_length=200)
    probability: int | None = Field(default=None, ge=0, le=100)
    kind: StageKind | None = None


class StageMove(Input):
    position: int = Field(ge=0, description="The stage's new place in board order (0 = first column).")


class PipelineCreate(Input):
    name: Text = Field(min_length=1, max_length=200)
    name_en: Text | None = Field(default=None, max_length=200)
    stages: list[StageIn] = Field(min_length=1, max_length=50, description="The stages in board order.")


class StageRead(Output):
    id: int
    pipeline_id: int
    name: str
    name_en: str | None
    position: int
    probability: int
    kind: str


class PipelineRead(Output):
    id: int
    name: str
    name_en: str | None
    is_default: bool
    stages: list[StageRead]
    version: int


class DealCreate(Input):
    name: Text = Field(min_length=1, max_length=300)
    pipeline_id: int | None = Field(default=None, description="Defaults to the stage's pipeline, else the default one.")
    stage_id: int | None = Field(default=None, description="Defaults to the pipeline's first stage.")
    customer_id: int | None = None
    company_id: int | None = None
    amount: MoneyIn = Field(default=Decimal(0), ge=0)
    currency: Currency = "JPY"
    probability: int | None = Field(default=None, ge=0, le=100, description="Defaults to the stage's probability.")
    expected_close_date: dt.date | None = None
    owner_id: int | None = Field(default=None, description="Defaults to the user creating the deal.")
    lost_reason: FreeText | None = Field(default=None, max_length=2000)
    attributes: FreeJSON | None = None


class DealUpdate(Input):
    """Changes to a deal's fields; the stage moves with ``DealMove`` (it has rules of its own)."""

    name: Text | None = Field(default=None, min_length=1, max_length=300)
    customer_id: int | None = None
    company_id: int | None = None
    amount: MoneyIn | None = Field(default=None, ge=0)
    currency: Currency | None = None
    probability: int | None = Field(default=None, ge=0, le=100)
    expected_close_date: dt.date | None = None
    owner_id: int | None = None
    lost_reason: FreeText | None = Field(default=None, max_length=2000)
    attributes: FreeJSON | None = None
    version: int | None = None


class DealMove(Input):
    stage_id: int
    lost_reason: FreeText | None = Field(default=None, max_length=2000, description="Required for a lost stage.")
    version: int | None = None


class DealRead(Output):
    id: int
    name: str
    pipeline_id: int
    stage_id: int
    customer_id: int | None
    company_id: int | None
    amount: MoneyOut
    currency: str
    probability: int
    expected_close_date: dt.date | None
    owner_id: int | None
    lost_reason: str | None
    closed_at: dt.datetime | None
    attributes: StoredJSON
    created_at: dt.datetime
    updated_at: dt.datetime
    version: int


class StageChangeRead(Output):
    id: int
    deal_id: int
    from_stage_id: int | None
    to_stage_id: int | None
    changed_at: dt.datetime
    actor_user_id: int | None
    actor: str


class ActivityCreate(Input):
    kind: ActivityKind
    subject: Text = Field(min_length=1, max_length=300)
    notes: OptionalFreeText = Field(default=None, max_length=20000)
    occurred_at: UTCTime | None = Field(default=None, description="Defaults to now.")
    duration_minutes: int | None = Field(default=None, ge=0, le=24 * 60)
    customer_id: int | None = None
    company_id: int | None = None
    deal_id: int | None = None


class ActivityUpdate(Input):
    kind: ActivityKind | None = None
    subject: Text | None = Field(default=None, min_length=1, max_length=300)
    notes: OptionalFreeText = Field(default=None, max_length=20000)
    occurred_at: UTCTime | None = None
    duration_minutes: int | None = Field(default=None, ge=0, le=24 * 60)
    version: int | None = None


class ActivityRead(Output):
    id: int
    kind: str
    subject: str
    notes: str
    occurred_at: dt.datetime
    duration_minutes: int | None
    customer_id: int | None
    company_id: int | None
    deal_id: int | None
    user_id: int | None
    created_at: dt.datetime
    version: int


class TaskCreate(Input):
    title: Text = Field(min_length=1, max_length=300)
    notes: OptionalFreeText = Field(default=None, max_length=20000)
    due_at: UTCTime | None = None
    remind_at: UTCTime | None = None
    owner_id: int | None = Field(default=None, description="Defaults to the user creating the task.")
    customer_id: int | None = None
    company_id: int | None = None
    deal_id: int | None = None


class TaskUpdate(Input):
    title: Text | None = Field(default=None, min_length=1, max_length=300)
    notes: OptionalFreeText = Field(default=None, max_length=20000)
    due_at: UTCTime | None = None
    remind_at: UTCTime | None = None
    owner_id: int | None = None
    status: TaskStatus | None = None
    version: int | None = None


class TaskRead(Output):
    id: int
    title: str
    notes: str
    due_at: dt.datetime | None
    remind_at: dt.datetime | None
    reminded_at: dt.datetime | None = Field(default=None, description="When the worker sent the reminder.")
    owner_id: int | None
    status: str
    completed_at: dt.datetime | None
    customer_id: int | None
    company_id: int | None
    deal_id: int | None
    created_at: dt.datetime
    updated_at: dt.datetime
    version: int


class TeamCreate(Input):
    name: Text = Field(min_length=1, max_length=200)
    member_ids: list[int] = Field(default_factory=list, max_length=1000)


class TeamMembers(Input):
    member_ids: list[int] = Field(max_length=1000)


class TeamRead(Output):
    id: int
    name: str
    member_ids: list[int]


class CalendarFeedRead(BaseModel):
    """The feed URL: ``url`` is given only when it is created (only its hash is stored)."""

    active: bool
    prefix: str | None = None
    created_at: str | None = None
    last_used_at: str | None = None
    url: str | None = None
