"""Request and response shapes of the segments API."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from kizuna.schemas import Text


class SegmentCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Text = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=2000)
    kind: Literal["dynamic", "static"] = "dynamic"
    rule: Any = Field(default=None, description="The rule of a dynamic segment (see the README's rule language).")


class SegmentUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Text | None = Field(default=None, min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=2000)
    rule: Any = None


class StaticBuild(BaseModel):
    """Where a static list's members come from: exactly one of the fields."""

    model_config = ConfigDict(extra="forbid")

    customer_ids: list[int] | None = Field(default=None, max_length=1_000_000)
    csv: str | None = Field(default=None, description="A CSV of customer ids or e-mails (one per row).")
    segment_id: int | None = Field(default=None, description="Snapshot of another segment's current members.")
    filter: dict[str, str] | None = Field(default=None, description="Snapshot of a customer-list filter.")


class SegmentRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    description: str
    kind: str
    rule: dict[str, Any] | None
    source: dict[str, Any]
    member_count: int
    refreshed_at: dt.datetime | None
    full_refreshed_at: dt.datetime | None
    created_at: dt.datetime
    updated_at: dt.datetime


class RefreshRead(BaseModel):
    segment_id: int
    mode: str
    entered: int
    exited: int
    member_count: int
    evaluated: int | None
    seconds: float


class MemberRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    full_name: str
    email: str | None
    prefecture: str | None


class MembersPage(BaseModel):
    items: list[MemberRead]
    next_after: int | None


class PreviewRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rule: Any


class PreviewRead(BaseModel):
    count: int
    sample: list[MemberRead]


class HistoryRow(BaseModel):
    customer_id: int
    full_name: str
    entered_at: dt.datetime
    exited_at: dt.datetime | None


class BuildRead(RefreshRead):
    unmatched: list[str] = Field(default_factory=list)
